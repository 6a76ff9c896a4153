# CodeQual server image: `docker build -t codequal:0.1.0 .` from the repository root.
#
# Two stages: the first builds the package from this repository into a virtual environment,
# the second copies only that environment onto a slim Python with git (the analysis pipeline
# clones and diffs repositories) and tini (reaps the git processes the server spawns).
# The server runs as an unprivileged user with its data under /var/lib/codequal, the only
# path it writes besides /tmp, so the root filesystem can be mounted read-only.

FROM python:3.11-slim AS build
# The image installs exactly what uv.lock pins (the versions CI tested), without the test tools.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    UV_PROJECT_ENVIRONMENT=/opt/codequal UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy UV_NO_CACHE=1
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
RUN pip install uv==0.13.9 \
    && uv sync --locked --no-dev --no-editable

FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 codequal \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/codequal \
        --shell /usr/sbin/nologin codequal \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/codequal
COPY --from=build /opt/codequal /opt/codequal

# HOME is the data dir so git finds a writable home under a read-only root filesystem.
ENV PATH=/opt/codequal/bin:$PATH \
    HOME=/var/lib/codequal \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CODEQUAL_DATA_DIR=/var/lib/codequal \
    CODEQUAL_PORT=8080 \
    CODEQUAL_LOG_FORMAT=json

# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/codequal
EXPOSE 8080

# Liveness only (the process answers); readiness (/ready) is for orchestrators to ask.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CODEQUAL_PORT', '8080') + '/live', timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["codequal", "serve", "--host", "0.0.0.0"]

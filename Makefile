# The README's two commands: `make run` and `make test`. Both install from uv.lock first, so a
# clean clone gets exactly the versions CI tested.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
# uv uses this machine's Python (never downloads one) and the lock as it is (--locked fails
# when pyproject.toml and uv.lock disagree instead of re-resolving behind your back).
# Bytecode is compiled at install, ours included: where PYTHONDONTWRITEBYTECODE is set (as on
# CI machines and in many images) Python never caches it, and `codequal serve` spent ~6 s of
# every start compiling (ready in 9-10 s instead of 3.6 s on this 2-core machine).
SYNC := $(UV) sync --locked --python $(PYTHON) --compile-bytecode
COMPILE_OURS := $(BIN)/python -m compileall -q src > /dev/null
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test install install-dev lint typecheck unit sentry2 bench docs lock deps-latest \
	deps-lowest clean

# uv itself, pinned, in a small venv of its own (outside .venv, which uv keeps in step with the lock).
$(UV):
	@$(PYTHON) -c 'import sys; sys.exit("CodeQual needs Python 3.11 or newer; set PYTHON=python3.11" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet uv==$(UV_VERSION)

# What the server needs and nothing else; --inexact leaves the test tools of an earlier
# `make test` in place instead of removing them.
install: $(UV)
	$(SYNC) --no-dev --inexact --quiet
	$(COMPILE_OURS)

install-dev: $(UV)
	$(SYNC) --group dev --quiet
	$(COMPILE_OURS)
	UV_PROJECT_ENVIRONMENT=.venv-sentry2 $(SYNC) --group dev --group sentry2 --quiet

run: install
	$(BIN)/codequal serve

test: install-dev lint typecheck unit sentry2

lint: install-dev
	$(BIN)/ruff check src tests bench loadtest
	$(BIN)/ruff format --check src tests bench loadtest

typecheck: install-dev
	$(BIN)/mypy

unit: install-dev
	$(BIN)/pytest

# The tests that touch sentry-sdk again, with the 2.x client and forwarder.
SENTRY_TESTS := tests/integration/test_errors_sentry.py tests/integration/test_ingest_sentry.py \
	tests/integration/test_sink_sentry.py tests/unit/test_ingest_sentry.py \
	tests/integration/test_sentry_versions.py
sentry2: install-dev
	.venv-sentry2/bin/pytest -p no:cacheprovider $(SENTRY_TESTS)

bench: install-dev
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

docs: install-dev
	$(BIN)/codequal metrics list --format markdown > docs/metrics.md

# After editing dependencies in pyproject.toml: resolve again and commit uv.lock with it.
lock: $(UV)
	$(UV) lock --python $(PYTHON)

# The newest releases pyproject.toml allows, in a scratch venv, through lint, types and tests:
# a breaking release is found here before users find it. deps-lowest does the same with the
# oldest releases of our direct dependencies (tests only: old linters judge differently).
deps-latest deps-lowest: $(UV)
	rm -rf .venv-$(@:deps-%=%)
	$(UV) venv --quiet --python $(PYTHON) .venv-$(@:deps-%=%)
	$(UV) pip install --quiet --python .venv-$(@:deps-%=%) \
		$(if $(filter deps-lowest,$@),--resolution lowest-direct,--upgrade) -e . --group dev
	$(UV) pip freeze --python .venv-$(@:deps-%=%) > .venv-$(@:deps-%=%)/resolved.txt
	$(if $(filter deps-latest,$@),.venv-latest/bin/ruff check src tests bench loadtest)
	$(if $(filter deps-latest,$@),.venv-latest/bin/mypy)
	.venv-$(@:deps-%=%)/bin/pytest -p no:cacheprovider

clean:
	rm -rf .uv $(VENV) .venv-sentry2 .venv-latest .venv-lowest .codequal .pytest_cache \
		.mypy_cache .ruff_cache

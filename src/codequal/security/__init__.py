"""Authentication core: JWT verification, token minting, the embedded secret. No web framework.

The HTTP glue lives in :mod:`codequal.api.auth`; service keys are stored by
:mod:`codequal.security.key_store`.
"""

from __future__ import annotations

from codequal.exceptions import AuthError
from codequal.security.keyfiles import is_asymmetric
from codequal.security.secret import SECRET_FILE, load_or_create_secret
from codequal.security.tokens import (
    ALL_SCOPES,
    LEEWAY_SECONDS,
    REASONS,
    SCOPE_ANALYSES_WRITE,
    SCOPE_INGEST_WRITE,
    SCOPE_MONITORING_ADMIN,
    SCOPE_MONITORING_READ,
    Principal,
    TokenVerifier,
    mint_token,
    parse_scopes,
)

__all__ = [
    "ALL_SCOPES",
    "LEEWAY_SECONDS",
    "REASONS",
    "SCOPE_ANALYSES_WRITE",
    "SCOPE_INGEST_WRITE",
    "SCOPE_MONITORING_ADMIN",
    "SCOPE_MONITORING_READ",
    "SECRET_FILE",
    "AuthError",
    "Principal",
    "TokenVerifier",
    "is_asymmetric",
    "load_or_create_secret",
    "mint_token",
    "parse_scopes",
]

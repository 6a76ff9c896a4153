"""JWT verification and minting, with the algorithm fixed by configuration.

The accepted algorithm and key come from the settings, never from the token: a token whose
header names another algorithm (``none``, or HS256 "signed" with the RSA public key used as an
HMAC secret) is refused before any signature check. Time checks take an explicit ``now`` so the
server's clock is injectable and tests never sleep.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jwt
from jwt.types import Options

from codequal.exceptions import AuthError
from codequal.security.keyfiles import Algorithm, VerifyKey, check_secret, load_keys

if TYPE_CHECKING:
    from codequal.config import Settings

SCOPE_MONITORING_READ = "monitoring:read"
SCOPE_MONITORING_ADMIN = "monitoring:admin"  # acknowledge / silence / resolve, manage channels
SCOPE_ANALYSES_WRITE = "analyses:write"
SCOPE_INGEST_WRITE = "ingest:write"
ALL_SCOPES: tuple[str, ...] = (
    SCOPE_MONITORING_READ,
    SCOPE_MONITORING_ADMIN,
    SCOPE_ANALYSES_WRITE,
    SCOPE_INGEST_WRITE,
)

# Every value AuthError.reason, and so the reason label of codequal_auth_failures_total, takes.
REASONS: tuple[str, ...] = (
    "missing",
    "malformed",
    "algorithm",
    "signature",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "missing_claim",
    "unknown_key",
    "revoked",
    "metrics_token",
    "scope",
    "rate_limited",
)

LEEWAY_SECONDS = 30.0
# Far above any real token; refuses oversized headers before any base64 or JSON work.
MAX_TOKEN_LENGTH = 8192
# Tokens whose signature and claims verified, remembered so that a client presenting the same
# token on every request (a dashboard, a scraper) pays the signature check once: ~0.1 ms each.
VERIFIED_CACHE_SIZE = 256


@dataclass(frozen=True)
class Principal:
    """Who made a request and what they may do."""

    subject: str
    scopes: frozenset[str]
    via: Literal["jwt", "key"]
    key_id: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def parse_scopes(values: str | Iterable[str]) -> frozenset[str]:
    """Scopes from ``"a b"``, ``"a,b"`` or several such strings; unknown ones raise ValueError."""
    items = [values] if isinstance(values, str) else list(values)
    found = frozenset(s for item in items for s in item.replace(",", " ").split())
    unknown = sorted(found.difference(ALL_SCOPES))
    if unknown:
        raise ValueError(
            f"unknown scope {', '.join(unknown)}: valid scopes are {', '.join(ALL_SCOPES)}"
        )
    return found


class TokenVerifier:
    """Verifies bearer JWTs with one configured algorithm and its key(s)."""

    def __init__(
        self,
        algorithm: Algorithm,
        keys: Mapping[str | None, VerifyKey],
        *,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = LEEWAY_SECONDS,
    ) -> None:
        if not keys:
            raise ValueError("a TokenVerifier needs at least one key")
        self.algorithm = algorithm
        self._keys = dict(keys)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        # token -> (claims, principal). Only verified tokens enter; the time checks run anew on
        # every use. Reads take no lock (one dict lookup); writes do, to evict safely.
        self._verified: dict[str, tuple[dict[str, Any], Principal]] = {}
        self._verified_lock = threading.Lock()
        # exp and nbf are checked by _check_times against the injected clock, not PyJWT's.
        self._options: Options = {
            "require": ["exp", "sub"],
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": issuer is not None,
            "verify_aud": audience is not None,
        }

    @classmethod
    def from_settings(cls, settings: Settings, secret: str | None = None) -> TokenVerifier:
        """Build from ``CODEQUAL_JWT_*``; ``secret`` is the HS256 secret when none is configured.

        Raises ConfigError naming the variable when the key material is unusable.
        """
        algorithm, keys = load_keys(settings, secret)
        return cls(algorithm, keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    def verify(self, token: str, now: float | None = None) -> Principal:
        """The principal a token names; AuthError with a bounded reason when it is not valid."""
        now = time.time() if now is None else now
        known = self._verified.get(token)
        if known is not None:
            # The signature, algorithm, issuer and audience of these exact bytes verified
            # before, and none of them can change; expiry and not-before can, so check again.
            _check_times(known[0], now, self._leeway)
            return known[1]
        key = self._key_for(_header(token))
        claims = self._decode(token, key)
        _check_times(claims, now, self._leeway)
        principal = _principal(claims)
        with self._verified_lock:
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]  # the oldest goes first
            self._verified[token] = (claims, principal)
        return principal

    def _key_for(self, header: Mapping[str, Any]) -> VerifyKey:
        alg = header.get("alg")
        if alg != self.algorithm:
            raise AuthError(
                "algorithm",
                f"the token is signed with {_shorten(alg)}; this server accepts only "
                f"{self.algorithm}",
            )
        if len(self._keys) == 1:
            # One configured key (a secret, a PEM key or a one-key JWKS): kid is irrelevant.
            return next(iter(self._keys.values()))
        kid = header.get("kid")
        if kid is None:
            raise AuthError("unknown_key", "the token has no kid and the key set holds several")
        key = self._keys.get(kid)
        if key is None:
            raise AuthError("unknown_key", f"no key with kid {_shorten(kid)} is configured")
        return key

    def _decode(self, token: str, key: VerifyKey) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options=self._options,
            )
        except jwt.InvalidSignatureError:
            raise AuthError("signature", "the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            reason = {"iss": "issuer", "aud": "audience"}.get(exc.claim, "missing_claim")
            raise AuthError(reason, f"the token has no {exc.claim} claim") from None
        except jwt.InvalidIssuerError:
            raise AuthError("issuer", "the token's issuer (iss) is not accepted") from None
        except jwt.InvalidAudienceError:
            raise AuthError("audience", "the token's audience (aud) is not accepted") from None
        except jwt.InvalidTokenError:
            raise AuthError("malformed", "the token's claims cannot be decoded") from None
        return claims


def mint_token(
    secret: str,
    subject: str,
    scopes: Iterable[str],
    ttl: float,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token for ``subject`` with ``scopes``, valid for ``ttl`` seconds from ``now``."""
    check_secret(secret, "the JWT secret")
    if ttl <= 0:
        raise ValueError("a token's time to live must be positive")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": " ".join(sorted(parse_scopes(scopes))),
        "iat": issued,
        "exp": issued + math.ceil(ttl),
    }
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


# -- verification steps ------------------------------------------------------------------------
def _shorten(value: Any) -> str:
    # Header values are attacker-controlled; keep what reaches messages and logs short.
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise AuthError("malformed", "the bearer token is not a JWT (header.payload.signature)")
    try:
        return jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError("malformed", "the token's header is not valid base64url JSON") from None


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    try:
        # JSON integers are unbounded: float() overflows on 1e400-sized ones.
        number = float(value) if isinstance(value, int | float) else math.nan
    except OverflowError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise AuthError("malformed", f"the token's {name} claim is not a number")
    return number


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    exp = _number(claims, "exp")
    if exp + leeway <= now:
        raise AuthError("expired", f"the token expired {now - exp:.0f} s ago")
    if claims.get("nbf") is not None:
        nbf = _number(claims, "nbf")
        if nbf - leeway > now:
            wait = f"{nbf - now:.0f} s"
            raise AuthError("not_yet_valid", f"the token is not valid for another {wait}")


def _principal(claims: Mapping[str, Any]) -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise AuthError("malformed", "the token's sub claim must be a non-empty string")
    scope = claims.get("scope") or ""
    if not isinstance(scope, str):
        raise AuthError("malformed", "the token's scope claim must be a space-separated string")
    return Principal(subject=subject, scopes=frozenset(scope.split()), via="jwt")

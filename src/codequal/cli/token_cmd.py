"""``codequal token create``: mint an HS256 bearer token with the server's secret.

Only the token goes to stdout, so ``TOKEN=$(codequal token create --scope monitoring:read)``
works; everything else goes to stderr.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from codequal.cli.common import EXIT_USAGE, config_options, settings_or_exit
from codequal.cli.keys_cmd import scope_option
from codequal.config import Settings
from codequal.exceptions import ConfigError
from codequal.security.keyfiles import is_asymmetric
from codequal.security.secret import load_or_create_secret
from codequal.security.tokens import mint_token

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = 365 * 86400
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")


def parse_ttl(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``1h`` or ``7d``; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a number with s, m, h or d, like 1h")
    seconds = float(match[1]) * UNITS[match[2] or "s"]
    if not 0 < seconds <= MAX_TTL:
        raise ValueError(f"{text!r} is out of range: a token lives from 1 s to 365 d")
    return seconds


def _ttl(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    try:
        return parse_ttl(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _subject(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("the subject must not be empty")
    return value.strip()


def _secret(settings: Settings) -> str:
    if is_asymmetric(settings) or settings.jwt_algorithm not in (None, "HS256"):
        click.echo(
            "codequal: this server verifies tokens with a public key (CODEQUAL_JWT_PUBLIC_KEY "
            "or CODEQUAL_JWT_JWKS), so tokens must come from the issuer that holds the "
            "private key.",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    return load_or_create_secret(settings.data_dir)


@click.group("token")
def token() -> None:
    """Bearer tokens (JWT) for the API."""


@token.command("create")
@config_options
@scope_option
@click.option(
    "--ttl", default="1h", show_default=True, callback=_ttl, help="Lifetime: 90s, 15m, 1h, 7d."
)
@click.option(
    "--subject", default="cli", show_default=True, callback=_subject, help="Who it is for (sub)."
)
def create(
    config_file: Path | None,
    data_dir: Path | None,
    scopes: frozenset[str],
    ttl: float,
    subject: str,
) -> None:
    """Print a token signed with the server's secret (the same one `codequal serve` uses)."""
    settings = settings_or_exit(config_file, data_dir=data_dir)
    try:
        minted = mint_token(
            _secret(settings),
            subject,
            scopes,
            ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except ConfigError as exc:
        click.echo(f"codequal: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(minted)

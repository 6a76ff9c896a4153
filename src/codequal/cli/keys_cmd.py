"""``codequal keys``: service keys for machine clients (create once, list, revoke)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import sqlalchemy as sa

from codequal.cli.common import EXIT_USAGE, config_options, settings_or_exit
from codequal.security.tokens import ALL_SCOPES, parse_scopes
from codequal.storage.db import open_database
from codequal.storage.keys import KINDS, KeyStore, ServiceKey
from codequal.telemetry.logging import iso_timestamp

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILURE = 1


def _scopes(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> frozenset[str]:
    try:
        granted = parse_scopes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not granted:
        raise click.BadParameter(f"give at least one of {', '.join(ALL_SCOPES)}")
    return granted


def scope_option(fn: F) -> F:
    """``--scope``, repeatable, each a scope or a space/comma-separated list; at least one."""
    return click.option(
        "--scope",
        "scopes",
        multiple=True,
        required=True,
        callback=_scopes,
        help=f"One of {', '.join(ALL_SCOPES)}; repeat it, or separate with spaces or commas.",
    )(fn)


@contextlib.contextmanager
def _key_store(config_file: Path | None, data_dir: Path | None) -> Iterator[KeyStore]:
    settings = settings_or_exit(config_file, data_dir=data_dir)
    db = open_database(settings.resolved_database_url)
    try:
        db.migrate()
        yield KeyStore(db)
    except sa.exc.SQLAlchemyError as exc:
        # First line only: the rest is the SQL and its parameters.
        click.echo(f"codequal: cannot use the database: {str(exc).splitlines()[0]}", err=True)
        sys.exit(EXIT_FAILURE)
    finally:
        db.dispose()


@click.group("keys")
def keys() -> None:
    """Service keys: bearer credentials for CI systems and other services."""


@keys.command("create")
@config_options
@click.option("--name", required=True, help="A unique name, such as the client it is for.")
@scope_option
@click.option("--kind", type=click.Choice(KINDS), default="service", show_default=True)
@click.option("--project-id", type=int, default=None, help="For sentry keys: the project.")
def create(
    *,
    config_file: Path | None,
    data_dir: Path | None,
    name: str,
    scopes: frozenset[str],
    kind: str,
    project_id: int | None,
) -> None:
    """Create a key and print its token, once: only a hash of it is stored."""
    with _key_store(config_file, data_dir) as store:
        try:
            record, token = store.create(name, scopes, kind=kind, project_id=project_id)
        except ValueError as exc:
            click.echo(f"codequal: {exc}", err=True)
            sys.exit(EXIT_USAGE)
    click.echo(f"created {record.kind} key {record.name!r} (id {record.key_id})")
    click.echo(f"scopes: {' '.join(sorted(record.scopes))}")
    click.echo("the token below is shown only now; store it where the client can read it:")
    click.echo(token)


def _when(ts: float | None) -> str:
    return iso_timestamp(ts) if ts is not None else "-"


def _row(key: ServiceKey) -> dict[str, Any]:
    return {
        "id": key.key_id,
        "name": key.name,
        "kind": key.kind,
        "scopes": " ".join(sorted(key.scopes)),
        "created": _when(key.created_at),
        "last used": _when(key.last_used_at),
        "revoked": _when(key.revoked_at),
    }


@keys.command("list")
@config_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
def list_keys(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List keys with their scopes and last use (secrets are never stored, so never shown)."""
    with _key_store(config_file, data_dir) as store:
        rows = [_row(key) for key in store.list()]
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    elif not rows:
        click.echo("no service keys; create one with `codequal keys create`")
    else:
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
        click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
        for row in rows:
            click.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())


@keys.command("revoke")
@config_options
@click.argument("name_or_id")
def revoke(config_file: Path | None, data_dir: Path | None, name_or_id: str) -> None:
    """Revoke a key by name or id: clients using it get 401 from now on."""
    with _key_store(config_file, data_dir) as store:
        try:
            key = store.revoke(name_or_id)
        except LookupError as exc:
            click.echo(f"codequal: {exc.args[0]}", err=True)
            sys.exit(EXIT_USAGE)
    click.echo(f"revoked key {key.name!r} (id {key.key_id}) at {_when(key.revoked_at)}")

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

from codequal.cli.common import EXIT_USAGE, config_options, open_store, settings_or_exit
from codequal.security.key_store import KINDS, KeyStore, ServiceKey
from codequal.security.tokens import ALL_SCOPES, SCOPE_INGEST_WRITE, parse_scopes
from codequal.vocabulary import iso_timestamp

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


def _optional_scopes(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> frozenset[str]:
    # Optional only for --sentry-dsn, which implies ingest:write; create checks the rest.
    return _scopes(ctx, param, value) if value else frozenset()


@contextlib.contextmanager
def _key_store(config_file: Path | None, data_dir: Path | None) -> Iterator[KeyStore]:
    settings = settings_or_exit(config_file, data_dir=data_dir)
    db = open_store(settings)
    try:
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
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    callback=_optional_scopes,
    help=f"One of {', '.join(ALL_SCOPES)}; repeat it, or separate with spaces or commas. "
    "Required, except with --sentry-dsn (which implies ingest:write).",
)
@click.option("--kind", type=click.Choice(KINDS), default=None, help="service (default) or sentry.")
@click.option("--project-id", type=int, default=None, help="For sentry keys: the project.")
@click.option(
    "--sentry-dsn",
    is_flag=True,
    help="Create a sentry key (ingest:write, a new project id unless --project-id is given) "
    "and print the DSN for sentry-sdk on the last line.",
)
def create(
    *,
    config_file: Path | None,
    data_dir: Path | None,
    name: str,
    scopes: frozenset[str],
    kind: str | None,
    project_id: int | None,
    sentry_dsn: bool,
) -> None:
    """Create a key and print its token, once: only a hash of it is stored."""
    kind, scopes = _kind_and_scopes(kind, scopes, sentry_dsn)
    with _key_store(config_file, data_dir) as store:
        if sentry_dsn and project_id is None:
            project_id = _next_project_id(store)
        try:
            record, token = store.create(name, scopes, kind=kind, project_id=project_id)
        except ValueError as exc:
            click.echo(f"codequal: {exc}", err=True)
            sys.exit(EXIT_USAGE)
    click.echo(f"created {record.kind} key {record.name!r} (id {record.key_id})")
    click.echo(f"scopes: {' '.join(sorted(record.scopes))}")
    if not sentry_dsn:
        click.echo("the token below is shown only now; store it where the client can read it:")
        click.echo(token)
        return
    settings = settings_or_exit(config_file, data_dir=data_dir)
    click.echo(f"project id: {record.project_id}")
    click.echo("the DSN below is shown only now; give it to sentry-sdk (sentry_sdk.init(dsn=...)):")
    click.echo(sentry_dsn_url(token, settings.host, settings.port, record.project_id or 0))


def _kind_and_scopes(
    kind: str | None, scopes: frozenset[str], sentry_dsn: bool
) -> tuple[str, frozenset[str]]:
    """The kind and scopes to create, or a usage error for a combination that makes no sense."""
    if not sentry_dsn:
        if not scopes:
            raise click.UsageError("Missing option '--scope'.")
        return kind or "service", scopes
    if kind not in (None, "sentry"):
        raise click.UsageError("--sentry-dsn creates a sentry key; leave out --kind")
    # A DSN is handed to every client of a project (even browsers): it may only send events.
    if scopes - {SCOPE_INGEST_WRITE}:
        raise click.UsageError(f"a sentry key has only the {SCOPE_INGEST_WRITE} scope")
    return "sentry", frozenset({SCOPE_INGEST_WRITE})


def _next_project_id(store: KeyStore) -> int:
    used = [k.project_id for k in store.list() if k.kind == "sentry" and k.project_id]
    return max(used, default=0) + 1


def sentry_dsn_url(token: str, host: str, port: int, project_id: int) -> str:
    """``http://<key>@<host>:<port>/<project id>``: the form sentry-sdk parses."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a bind-all address is not reachable as such
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{token}@{host}:{port}/{project_id}"


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

"""``fabric token``: create, list and revoke the gateway's API tokens on the metadata DB."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from fabric_core import tokens
from fabric_core.db import session_scope
from fabric_core.errors import FabricError
from fabric_core.models import ApiToken, AuditEvent
from fabric_core.paging import MAX_LIMIT, Page
from fabric_core.runtime import create_runtime
from fabric_core.settings import get_settings

token_app = typer.Typer(help="API tokens of the gateway (stored in the metadata DB).")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@contextmanager
def _session() -> Iterator[Session]:
    runtime = create_runtime(get_settings())
    try:
        with session_scope(runtime.session_factory) as session:
            yield session
    finally:
        runtime.close()


def _operator() -> str:
    return f"cli:{getpass.getuser()}"[:128]


def _audit(session: Session, action: str, object_id: int) -> None:
    """The CLI writes the same audit events as the API (it changes the same tokens)."""
    session.add(
        AuditEvent(
            token_name=_operator(),
            client="cli",
            method="CLI",
            route=f"fabric token {action.split('_')[0]}",
            action=action,
            object_id=str(object_id),
            status=0,
            request_id="cli",
        )
    )


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token.")],
    role: Annotated[str, typer.Option("--role", help="viewer, editor or admin.")],
) -> None:
    """Create a token and print it once (it cannot be shown again)."""
    try:
        role_value = tokens.parse_role(role)
        if not name.strip() or len(name) > 128:
            raise _fail("--name must have 1 to 128 characters")
        with _session() as session:
            token, value = tokens.create_token(
                session, name=name.strip(), role=role_value, created_by=_operator()
            )
            _audit(session, "create_token", token.id)
            token_id = token.id
    except FabricError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"token {token_id} '{name.strip()}' ({role_value.value}); store it now:")
    typer.echo(value)


@token_app.command("list")
def list_all() -> None:
    """Every token (never its value)."""
    try:
        with _session() as session:
            lines = [
                f"{t.id:>5}  {t.role:7}  {'revoked' if t.revoked_at else 'active ':7}  {t.name}"
                for t in _every_token(session)
            ]
    except FabricError as exc:
        raise _fail(exc.message) from None
    typer.echo("   id  role     state    name")
    for line in lines:
        typer.echo(line)


def _every_token(session: Session) -> Iterator[ApiToken]:
    page = Page(limit=MAX_LIMIT)
    while batch := tokens.list_tokens(session, page).items:
        yield from batch
        page = Page(limit=MAX_LIMIT, offset=page.offset + MAX_LIMIT)


@token_app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(help="The token's id (fabric token list).")]):
    """Revoke a token: the next request that presents it is refused."""
    try:
        with _session() as session:
            token = tokens.revoke_token(session, token_id)
            _audit(session, "revoke_token", token.id)
            name = token.name
    except FabricError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"token {token_id} '{name}' revoked")

"""`planta token create|revoke|list`: API tokens for people and systems (MES, scripts).

Managing tokens is an admin act. On the command line the local user owns the project files and
is trusted as admin (as for `planta promote`); each create and revoke is recorded in the audit
trail under that user (``PLANTA_USER`` or the OS user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table, tr

if TYPE_CHECKING:
    from planta.services.workspace import Workspace
    from planta.store.tokens import TokenStore

token_app = typer.Typer(help="Create, revoke and list API tokens (each with a role).",
                        no_args_is_help=True)

# English in --json (scripts read it); said in the CLI's language on the console.
ONCE_WARNING = ("Copy this token now: it will not be shown again (planta keeps only a hash). "
                "Give each person their own token, named after them, so that the audit trail "
                "says who did what; never share one token between people.")


def _open() -> tuple[Workspace, TokenStore]:
    from planta.services.workspace import Workspace
    from planta.store.tokens import TokenStore

    ws = Workspace.open()
    return ws, TokenStore(ws.store, ws.audit)


@token_app.command("create")
@handle_errors
def create(name: str = typer.Option(..., "--name", help="Who holds it: a person (ana.garcia) "
                                    "or a system (mes-line-3)."),
           role: str = typer.Option(..., "--role", help="viewer, operator, approver or admin."),
           as_json: bool = JSON_OPTION) -> None:
    """Create a token and print its secret once."""
    ws, store = _open()
    try:
        token, secret = store.create(name, role, actor=ws.actor)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "token": token.to_dict(), "secret": secret,
                    "warning": ONCE_WARNING})
        return
    console.print(tr("cli.token.created", name=token.name, role=token.role.value,
                     id=token.id), markup=False, soft_wrap=True)
    console.print(f"\n    {secret}\n", markup=False, soft_wrap=True)
    console.print(f"[yellow]{tr('cli.token.once')}[/]", soft_wrap=True)
    console.print(tr("cli.token.header"), markup=False, soft_wrap=True)


@token_app.command("revoke")
@handle_errors
def revoke(name_or_id: str = typer.Argument(..., help="The token's name or id."),
           as_json: bool = JSON_OPTION) -> None:
    """Revoke a token: requests with it are refused from then on."""
    from planta.store.tokens import CACHE_TTL_S

    ws, store = _open()
    try:
        revoked = store.revoke(name_or_id, actor=ws.actor)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "name_or_id": name_or_id, "revoked": revoked})
    elif revoked:
        console.print(tr("cli.token.revoked", name=name_or_id, seconds=f"{CACHE_TTL_S:.0f}"),
                      markup=False, soft_wrap=True)
    else:
        console.print(tr("cli.token.was_revoked", name=name_or_id), markup=False,
                      soft_wrap=True)


@token_app.command("list")
@handle_errors
def list_tokens(show_all: bool = typer.Option(False, "--all", help="Include revoked tokens."),
                as_json: bool = JSON_OPTION) -> None:
    """List tokens: name, role, who created them, when last used. Never the secrets."""
    ws, store = _open()
    try:
        items = store.list(include_revoked=show_all)
    finally:
        ws.close()
    if as_json:
        print_json([t.to_dict() for t in items])
        return
    if not items:
        console.print(tr("cli.token.none"), markup=False)
        return

    def when(value: object) -> str:
        return "" if value is None else f"{value:%Y-%m-%d %H:%M}"

    # The id is in --json; the table keeps to what fits a plant PC's terminal.
    columns = [tr(f"cli.token.col.{c}") for c in ("name", "role", "token", "created", "by",
                                                  "last_used")]
    if show_all:
        columns.append(tr("cli.token.col.revoked"))
    rows = [[t.name, t.role.value, t.shown, when(t.created_at), t.created_by,
             when(t.last_used_at)] + ([when(t.revoked_at)] if show_all else [])
            for t in items]
    console.print(table(tr("cli.token.title"), columns, rows))


__all__ = ["ONCE_WARNING", "create", "list_tokens", "revoke", "token_app"]

"""The admin's tokens page: list, create (the secret shown once), revoke.

    GET  /ui/tokens                     tokens.html   every token, never a secret
    POST /ui/tokens                     tokens.html   a new token, its secret shown on this
                                                      answer only, with the warning
    POST /ui/tokens/{token_id}/revoke   → 303 /ui/tokens?revoked={id}

Admin only (the page is hidden from the navigation of everyone else, and refused with 403).
Everything goes through the server's own :class:`planta.store.tokens.TokenStore`, so the audit
trail gets the same ``token_create`` and ``token_revoke`` events as ``planta token``, under the
admin's name, and a revoked token is refused by this server at once (by another server within
:data:`planta.store.tokens.CACHE_TTL_S` seconds).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from planta.core.lifecycle import Role
from planta.errors import InputError, NotFoundError, PlantaError
from planta.server.errors import status_of
from planta.server.guard import require
from planta.store.ids import is_id
from planta.store.tokens import CACHE_TTL_S, MAX_NAME_CHARS, ROLES
from planta.ui.view import View


def _store(view: View) -> Any:
    if view.rt.tokens is None:  # pragma: no cover - every server has one
        raise NotFoundError(view.t("tokens.no_store"))
    return view.rt.tokens


def _when(value: Any) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"


def tokens(view: View) -> dict[str, Any]:
    """Every token, newest first: name, role, created (by), last used, revoked (by)."""
    revoked_id = (view.request.query_params.get("revoked") or "").strip()[:40]
    rows = [{"id": tk.id, "name": tk.name, "role": tk.role.value, "shown": tk.shown,
             "created": _when(tk.created_at), "created_by": tk.created_by,
             "last_used": _when(tk.last_used_at), "revoked": _when(tk.revoked_at),
             "revoked_by": tk.revoked_by, "active": tk.is_active}
            for tk in reversed(_store(view).list(include_revoked=True))]
    revoked = next((r for r in rows if r["id"] == revoked_id), None)
    return {"tokens": rows, "roles": [(r.value, view.t(f"tokens.role_{r.value}")) for r in ROLES], "created": None, "error": None,
            "revoked": revoked, "ttl": f"{CACHE_TTL_S:.0f}", "max_name": MAX_NAME_CHARS,
            "name": "", "role": Role.OPERATOR.value}


async def _form(view: View) -> dict[str, str]:
    form = await view.request.form(max_files=0, max_fields=4)
    return {k: v.strip() for k, v in form.items() if isinstance(v, str)}


async def create(view: View) -> Response:
    """Create a token; the answer shows its secret, once."""
    principal = require(view.request.scope["state"], Role.ADMIN, view.t("tokens.doing"))
    form = await _form(view)
    name, role = form.get("name", "")[:MAX_NAME_CHARS + 1], form.get("role", "")
    store = _store(view)
    try:
        token, secret = await run_in_threadpool(
            lambda: store.create(name, role, actor=principal.name))
    except PlantaError as exc:
        ctx = await run_in_threadpool(tokens, view)
        ctx.update(error={"message": exc.message, "hint": exc.hint}, name=name, role=role)
        return view.render("tokens.html", ctx, status=status_of(exc))
    ctx = await run_in_threadpool(tokens, view)
    ctx["created"] = {"name": token.name, "role": token.role.value, "secret": secret}
    return view.render("tokens.html", ctx)


async def revoke(view: View, token_id: str) -> Response:
    """Revoke one token after the box "whoever uses it is locked out" was ticked."""
    principal = require(view.request.scope["state"], Role.ADMIN, view.t("tokens.doing"))
    form = await _form(view)
    if not is_id(token_id):
        raise NotFoundError(view.t("tokens.unknown", id=token_id[:40]))
    if form.get("confirm") != "yes":
        raise InputError(view.t("tokens.confirm_missing"))
    store = _store(view)
    await run_in_threadpool(lambda: store.revoke(token_id.upper(), actor=principal.name))
    return RedirectResponse(f"/ui/tokens?revoked={token_id.upper()}", status_code=303)


__all__ = ["create", "revoke", "tokens"]

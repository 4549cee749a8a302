"""What every UI page gets: the caller, the language, the runtime, and one way to draw HTML.

A :class:`View` is built once per request by :mod:`planta.ui.router`; page loaders and form
actions read from it and hand a template its context. Templates are Jinja2 with autoescaping
on, and every page answers with a Content-Security-Policy that allows only this server's own
styles and scripts: no CDN, no inline script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from planta.core.lifecycle import Role
from planta.server.guard import Principal
from planta.server.runtime import Runtime
from planta.ui.i18n import LANG_COOKIE, Translate, choose_lang, translator

ENV = Environment(loader=PackageLoader("planta.ui", "templates"),
                  autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
# Pages are drawn on this server from its own files; nothing else may load into them.
HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass
class View:
    """One request as the UI sees it."""

    request: Request
    rt: Runtime
    principal: Principal | None
    lang: str
    t: Translate
    lang_chosen: bool = False   # ?lang= was given: remember it in a cookie

    @classmethod
    def of(cls, request: Request) -> View:
        rt: Runtime = request.app.state.runtime
        query = request.query_params.get("lang")
        lang = choose_lang(query, request.cookies.get(LANG_COOKIE),
                           rt.ws.project.settings.lang)
        return cls(request=request, rt=rt, principal=request.scope["state"].get("principal"),
                   lang=lang, t=translator(lang), lang_chosen=bool(query) and query == lang)

    def can(self, role: Role) -> bool:
        """Whether the caller's role reaches ``role`` (the server checks again on every move)."""
        return self.principal is not None and self.principal.allows(role)

    @property
    def auth_on(self) -> bool:
        return self.rt.options.require_auth

    def render(self, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        """The page ``template`` drawn with ``context`` and what every page shows."""
        from planta.ui.pages import PAGES

        html = ENV.get_template(template).render(
            t=self.t, lang=self.lang, principal=self.principal, auth_on=self.auth_on,
            nav=[p for p in PAGES if p.in_nav and (p.role in (None, Role.VIEWER)
                                                  or self.can(p.role))],
            path=self.request.url.path,
            can_approve=self.can(Role.APPROVER), can_score=self.can(Role.OPERATOR),
            **context)
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        if self.lang_chosen:
            response.set_cookie(LANG_COOKIE, self.lang, max_age=365 * 86400, samesite="strict",
                                httponly=True, secure=self.request.url.scheme == "https")
        return response


__all__ = ["ENV", "HEADERS", "View"]

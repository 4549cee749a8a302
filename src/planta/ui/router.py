"""The UI's routes: a GET route per entry of :data:`planta.ui.pages.PAGES`, and the POSTs of
:mod:`planta.ui.actions`, all under ``/ui``.

A refusal (a planta error: wrong role, unknown use case, a move the lifecycle forbids, a record
the contract refuses) is drawn as a page in plain words with its HTTP status; anything else is
logged with the request id and shown as one line naming that id, never as a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from planta.errors import PlantaError, error_said
from planta.server.errors import status_of
from planta.server.guard import require
from planta.ui import actions, approvals, uploads, whatif, wizard
from planta.ui import alerts as alert_pages
from planta.ui import tokens as token_pages
from planta.ui.pages import PAGES, Page
from planta.ui.view import View

log = logging.getLogger("planta.server")

STATIC_DIR = Path(__file__).with_name("static")

router = APIRouter(include_in_schema=False)


async def _answer(view: View, work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except PlantaError as exc:
        status = status_of(exc)
        return view.render("error.html", error_said(exc, view.t) | {"status": status},
                           status=status)
    except Exception as exc:  # the UI is an entry point: one line for the user, the log keeps why
        request_id = view.request.scope["state"].get("request_id")
        log.error("UI request %s %s failed: %s", view.request.method, view.request.url.path,
                  exc, exc_info=True, extra={"request_id": request_id})
        return view.render("error.html", {"message": view.t("error.unexpected"),
                                          "hint": view.t("error.request_id", id=request_id),
                                          "status": 500}, status=500)


def _page_route(page: Page) -> Callable[..., Awaitable[Response]]:
    async def show(request: Request) -> Response:
        view = View.of(request)

        async def work() -> Response:
            if page.role is not None:
                require(request.scope["state"], page.role, view.t(page.title_key))
            context = await run_in_threadpool(partial(page.load, view, **request.path_params))
            return view.render(page.template, dict(context))

        return await _answer(view, work)

    show.__name__ = f"ui_{page.template.removesuffix('.html')}"
    return show


for _page in PAGES:
    router.add_api_route(_page.path, _page_route(_page), methods=["GET"],
                         response_class=Response)


def _action(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    async def run(request: Request) -> Response:
        view = View.of(request)
        params: dict[str, Any] = dict(request.path_params)
        if "version" in params:
            try:
                params["version"] = int(params["version"])
            except ValueError:
                params["version"] = 0  # the registry says "no such version" in plain words
        return await _answer(view, lambda: handler(view, **params))

    run.__name__ = f"ui_{handler.__name__}"
    return run


router.add_api_route("/ui/usecases/{name}/versions/{version}/promote",
                     _action(actions.promote), methods=["POST"])
router.add_api_route("/ui/usecases/{name}/rollback", _action(actions.rollback),
                     methods=["POST"])
router.add_api_route("/ui/usecases/{name}/score", _action(actions.score), methods=["POST"])
router.add_api_route("/ui/login", _action(actions.login), methods=["POST"])
router.add_api_route("/ui/logout", _action(actions.logout), methods=["POST"])
router.add_api_route("/ui/usecases/{name}/batch", _action(uploads.submit_batch),
                     methods=["POST"])
router.add_api_route("/ui/usecases/{name}/feedback", _action(uploads.submit_feedback),
                     methods=["POST"])
router.add_api_route("/ui/tokens", _action(token_pages.create), methods=["POST"])
router.add_api_route("/ui/tokens/{token_id}/revoke", _action(token_pages.revoke),
                     methods=["POST"])
wizard.add_routes(router, _action)  # upload, create, train, progress JSON
alert_pages.add_routes(router, _action)  # acknowledge / resolve an alert
# Approval moves of the version page, and what-if on the score page.
router.add_api_route("/ui/usecases/{name}/versions/{version}/move", _action(approvals.move),
                     methods=["POST"])
router.add_api_route("/ui/usecases/{name}/whatif", _action(whatif.whatif), methods=["POST"])

__all__ = ["STATIC_DIR", "router"]

"""Model versions over HTTP: list them, fetch and upload bundles, and move them through the
lifecycle (promote, decline, canary, shadow, stop, rollback) with the caller's role.

Names in paths are matched against the registry, never joined into a file path: a bundle is
read from the content-addressed artifact store by the digest the registry holds.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from planta.core.lifecycle import Action, Role, State
from planta.errors import IntegrityError, NotFoundError, PlantaError
from planta.server.body import content_type, read_json
from planta.server.errors import HTTPProblem
from planta.server.guard import Principal, require
from planta.server.routes.v1 import json_response, runtime
from planta_edge.bundle import read_bundle

router = APIRouter(tags=["model versions"])

_BUNDLE_TYPES = ("application/octet-stream", "application/zip", "application/x-planta-bundle")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# No registry holds more versions; a larger number would overflow the store's INTEGER column.
MAX_VERSION = 2**31 - 1
MOVES: dict[str, tuple[State, Action]] = {
    "promote": (State.PRODUCTION, Action.PROMOTE),
    "decline": (State.REJECTED, Action.DECLINE),
    "canary": (State.CANARY, Action.CANARY),
    "shadow": (State.SHADOW, Action.SHADOW),
    "stop": (State.CANDIDATE, Action.STOP),
}


def _usecase(request: Request, name: str) -> str:
    rt = runtime(request)
    if not _NAME.match(name) or name not in rt.ws.project.usecase_names:
        raise HTTPProblem(404, f"There is no use case {name[:100]!r} in this project.",
                          rule="not_found")
    return name


def _version(name: str, version: int) -> int:
    if not 1 <= version <= MAX_VERSION:
        raise NotFoundError(f"Use case {name[:100]!r} has no model version {str(version)[:30]}.",
                            hint=f"List them with GET /v1/usecases/{name[:100]}/versions.")
    return version


@router.get("/v1/usecases/{name}/versions", summary="Every model version of a use case")
async def list_versions(request: Request, name: str) -> Response:
    require(request.scope["state"], Role.VIEWER, "reading model versions")
    rt = runtime(request)
    models = await run_in_threadpool(rt.ws.registry.list_models, _usecase(request, name))
    return json_response({"usecase": name, "versions": [m.to_dict() for m in models]})


@router.get("/v1/usecases/{name}/versions/{version}", summary="One model version")
async def get_version(request: Request, name: str, version: int) -> Response:
    require(request.scope["state"], Role.VIEWER, "reading model versions")
    rt = runtime(request)
    mv = await run_in_threadpool(rt.ws.registry.get_model, _usecase(request, name),
                                 _version(name, version))
    return json_response(mv.to_dict())


@router.get("/v1/usecases/{name}/versions/{version}/bundle",
            summary="Download a version's bundle (for devices and other hubs)")
async def get_bundle(request: Request, name: str, version: int) -> Response:
    require(request.scope["state"], Role.VIEWER, "downloading bundles")
    rt = runtime(request)
    mv = await run_in_threadpool(rt.ws.registry.get_model, _usecase(request, name),
                                 _version(name, version))
    data = await run_in_threadpool(rt.ws.artifacts.get_bytes, mv.bundle_digest)
    return Response(data, media_type="application/octet-stream", headers={
        "content-disposition": f'attachment; filename="{name}-v{mv.version}.planta"',
        "x-planta-sha256": mv.bundle_digest, "etag": f'"{mv.bundle_digest}"'})


@router.post("/v1/usecases/{name}/bundles", status_code=201,
             summary="Upload a bundle built elsewhere; verified before it is registered")
async def upload_bundle(request: Request, name: str) -> Response:
    principal = require(request.scope["state"], Role.APPROVER, "uploading bundles")
    rt = runtime(request)
    usecase = _usecase(request, name)
    if content_type(request) not in _BUNDLE_TYPES:
        raise HTTPProblem(415, "Upload the bundle file itself as application/octet-stream.",
                          rule="unsupported_media_type")
    data = await request.body()
    return json_response(await run_in_threadpool(_register, rt, usecase, data, principal), 201)


def _register(rt: Any, usecase: str, data: bytes, principal: Principal) -> dict[str, Any]:
    bundle = read_bundle(data)  # hashes, seal, size and path checks: refuses before storing
    if bundle.usecase != usecase:
        raise IntegrityError(f"This bundle was built for use case {bundle.usecase!r}, not "
                             f"{usecase!r}.", hint="Upload it to the use case it was built for.")
    _check_loads(bundle)
    metrics = bundle.json("metrics.json") if "metrics.json" in bundle.members else {}
    gate = metrics.get("gate") if isinstance(metrics.get("gate"), dict) else {}
    digest = rt.ws.artifacts.put_bytes(data)
    lineage = bundle.json("lineage.json") if "lineage.json" in bundle.members else {}
    mv = rt.ws.registry.register_model(
        usecase=usecase, dataset_version=None, bundle_digest=digest, bundle_size=len(data),
        metrics=metrics.get("holdout") or {}, gate=gate or {"passed": False, "reasons": [
            "imported bundle without a gate verdict"]},
        trained_by=str(lineage.get("trained_by") or bundle.manifest.get("created_by") or
                       "unknown"),
        summary={"imported": True, "imported_by": principal.name,
                 "source_version": bundle.version, "estimator": lineage.get("estimator")})
    rt.ws.audit.append("import_bundle", f"usecase/{usecase}/model/{mv.version}", principal.name,
                       {"bundle_sha256": digest, "source_version": bundle.version,
                        "state": mv.state})
    return {"usecase": usecase, "version": mv.version, "state": mv.state,
            "bundle_sha256": digest}


def _check_loads(bundle: Any) -> None:
    """Refuse a bundle whose members are not all JSON or a model library's text format (a
    pickle, a binary), or whose model planta's own readers cannot load. Sealed and hashed
    proves only that the file is whole, not that it was made by planta."""
    from planta.services.predict import Scorer

    odd = sorted(n for n in bundle.members if not n.endswith((".json", ".txt")))
    if odd:
        raise IntegrityError(f"The bundle holds member(s) {odd[:5]} that are neither JSON nor "
                             "a model library's text format; planta bundles hold only those.",
                             hint="Upload a bundle made by `planta train` or downloaded from "
                                  "another planta server.")
    try:
        Scorer.from_bundle(bundle)
    except PlantaError:
        raise
    except Exception as exc:  # the model libraries' own parsers refuse in their own ways
        raise IntegrityError(f"The bundle's model cannot be loaded ({type(exc).__name__}: "
                             f"{str(exc)[:200]}).", hint="Upload a bundle made by "
                             "`planta train` or downloaded from another planta server.") from None


@router.post("/v1/usecases/{name}/versions/{version}/{action}",
             summary="Move a version: promote, decline, canary, shadow or stop")
async def move(request: Request, name: str, version: int, action: str) -> Response:
    if action not in MOVES:
        raise HTTPProblem(404, f"There is no action {action[:30]!r}; use one of "
                          f"{', '.join(MOVES)}.", rule="not_found")
    # Every move a person makes needs approver (planta.core.lifecycle.RULES): refuse a lower
    # role before reading the body or the version's state, so it learns nothing from a 409.
    principal = require(request.scope["state"], Role.APPROVER, f"moving a version ({action})")
    rt = runtime(request)
    usecase = _usecase(request, name)
    _version(name, version)
    doc = await read_json(request)
    reason, exception, share = _move_body(doc)
    to_state, act = MOVES[action]

    def run() -> dict[str, Any]:
        extra = {"share": share} if act is Action.CANARY and share is not None else {}
        t = rt.ws.registry.move(usecase, version, to_state, action=act, actor=principal.name,
                                role=principal.role, reason=reason, exception=exception,
                                four_eyes=rt.ws.project.settings.four_eyes, **extra)
        rt.hub.refresh()
        return t.to_dict()

    return json_response(await run_in_threadpool(run))


@router.post("/v1/usecases/{name}/rollback",
             summary="Put the previous production version back (takes effect at once)")
async def rollback(request: Request, name: str) -> Response:
    principal = require(request.scope["state"], Role.APPROVER, "rolling back")
    rt = runtime(request)
    usecase = _usecase(request, name)
    reason, _, _ = _move_body(await read_json(request))

    def run() -> dict[str, Any]:
        t = rt.ws.registry.rollback(usecase, actor=principal.name, role=principal.role,
                                    reason=reason)
        rt.hub.refresh()
        return t.to_dict()

    return json_response(await run_in_threadpool(run))


def _move_body(doc: Any) -> tuple[str, bool, float | None]:
    if not isinstance(doc, dict):
        raise HTTPProblem(422, 'Send {"reason": "why"}.', rule="reason_missing")
    reason = doc.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise HTTPProblem(422, "Every move needs a reason; it is kept in the audit trail.",
                          rule="reason_missing")
    exception = doc.get("exception", False)
    if not isinstance(exception, bool):
        raise HTTPProblem(422, '"exception" must be true or false.', rule="type")
    share = doc.get("share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                              or not 0 < share < 1):
        raise HTTPProblem(422, '"share" must be a number between 0 and 1 (0.1 = 10 %).',
                          rule="type")
    return reason.strip(), exception, None if share is None else float(share)


__all__ = ["MAX_VERSION", "MOVES", "router"]

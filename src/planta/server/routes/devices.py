"""Edge devices over HTTP.

    device (its own token)                     people (their tokens and roles)
    POST /v1/edge/predictions   a batch         GET  /v1/devices            viewer
    POST /v1/edge/heartbeat     state → bundle  GET  /v1/devices/{name}     viewer
    GET  /v1/edge/bundle        Range support   POST /v1/devices            admin: enrol
    POST /v1/edge/events        audited         POST /v1/devices/{name}/revoke   admin

A device calls with the token it got at enrolment (``Authorization: Bearer``), which names it;
a revoked device (or token) gets 401. Batches are idempotent on prediction ids, so a device
sends again whatever it did not see acknowledged.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from planta.core.lifecycle import Role
from planta.errors import InputError
from planta.server.body import read_json
from planta.server.errors import HTTPProblem
from planta.server.guard import require
from planta.server.routes.v1 import json_response, runtime
from planta.services.devices import DeviceService
from planta.store.devices import Device, DeviceStore, parse_batch

router = APIRouter(tags=["edge devices"])
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def service(request: Request) -> DeviceService:
    """The app's device service, made on first use."""
    state = request.app.state
    svc: DeviceService | None = getattr(state, "devices", None)
    if svc is None:
        rt = runtime(request)
        svc = DeviceService(rt.ws, DeviceStore(rt.ws.store, rt.ws.audit, rt.tokens))
        state.devices = svc
    return svc


def _device(request: Request, svc: DeviceService) -> Device:
    """The enrolled, active device whose token the request carries; 401 otherwise."""
    auth = request.headers.get("authorization", "")
    secret = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    token = svc.devices.tokens.verify(secret) if secret else None
    device = None if token is None else svc.devices.by_token(token.id)
    if device is None:
        raise HTTPProblem(401, "This call needs an enrolled device's token (unknown or revoked).",
                          rule="device_token_invalid",
                          hint="Enrol the device with `planta devices enrol NAME --usecase U` "
                               "and put the token in its config.")
    return device


@router.post("/v1/edge/predictions", summary="A device's batch of predictions (idempotent)")
async def post_predictions(request: Request) -> Response:
    svc = service(request)
    device = await run_in_threadpool(_device, request, svc)
    body = await read_json(request)
    batch = parse_batch(body, device)
    accepted, duplicates = await run_in_threadpool(svc.devices.add_predictions, device, batch)
    return json_response({"device": device.name, "accepted": accepted,
                          "duplicates": duplicates})


@router.post("/v1/edge/heartbeat", summary="A device's state; answers the approved bundle")
async def heartbeat(request: Request) -> Response:
    svc = service(request)
    device = await run_in_threadpool(_device, request, svc)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InputError("A heartbeat is a JSON object.")
    return json_response(await run_in_threadpool(svc.heartbeat, device, body))


@router.post("/v1/edge/events", summary="What a device reports about updates (audited)")
async def events(request: Request) -> Response:
    svc = service(request)
    device = await run_in_threadpool(_device, request, svc)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        raise InputError('An event is {"event": "...", "detail": {...}}.')
    detail: dict[str, Any] = body["detail"] if isinstance(body.get("detail"), dict) else {}
    await run_in_threadpool(svc.report, device, body["event"], detail)
    return json_response({"ok": True})


@router.get("/v1/edge/bundle", summary="The bundle approved for the calling device (Range)")
async def bundle(request: Request) -> Response:
    svc = service(request)
    device = await run_in_threadpool(_device, request, svc)
    approved, data = await run_in_threadpool(svc.bundle_bytes, device)
    headers = {"accept-ranges": "bytes", "etag": f'"{approved.digest}"',
               "x-planta-sha256": approved.digest, "x-planta-version": str(approved.version)}
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and (if_range is None or if_range.strip('"') == approved.digest):
        match = _RANGE.match(wanted.strip())
        start = int(match.group(1)) if match else -1
        end = int(match.group(2)) if match and match.group(2) else len(data) - 1
        if not match or start >= len(data) or end < start:
            return Response(status_code=416, headers={
                **headers, "content-range": f"bytes */{len(data)}"})
        end = min(end, len(data) - 1)
        return Response(data[start:end + 1], status_code=206,
                        media_type="application/octet-stream",
                        headers={**headers, "content-range": f"bytes {start}-{end}/{len(data)}"})
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.get("/v1/devices", summary="Every enrolled device and how it stands")
async def list_devices(request: Request) -> Response:
    require(request.scope["state"], Role.VIEWER, "reading devices")
    svc = service(request)
    devices = await run_in_threadpool(svc.devices.list)
    return json_response({"devices": [d.to_dict() for d in devices]})


@router.get("/v1/devices/{name}", summary="One device")
async def get_device(request: Request, name: str) -> Response:
    require(request.scope["state"], Role.VIEWER, "reading devices")
    svc = service(request)
    device = await run_in_threadpool(svc.devices.get, name)
    return json_response(device.to_dict())


@router.post("/v1/devices", status_code=201, summary="Enrol a device; its token is shown once")
async def enrol(request: Request) -> Response:
    principal = require(request.scope["state"], Role.ADMIN, "enrolling devices")
    svc = service(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise InputError('Enrol with {"name": "press-07", "usecase": "failure", "group": null}.')
    usecase = str(body.get("usecase") or "")
    if usecase not in svc.ws.project.usecase_names:
        raise InputError(f"There is no use case {usecase[:100]!r} in this project.")
    group = body.get("group")
    device, secret = await run_in_threadpool(
        lambda: svc.devices.enrol(body["name"], usecase, group=group, actor=principal.name))
    return json_response({"device": device.to_dict(), "token": secret}, 201)


@router.post("/v1/devices/{name}/revoke", summary="Revoke a device and its token")
async def revoke(request: Request, name: str) -> Response:
    principal = require(request.scope["state"], Role.ADMIN, "revoking devices")
    svc = service(request)
    changed = await run_in_threadpool(lambda: svc.devices.revoke(name, actor=principal.name))
    return json_response({"device": name, "revoked": changed})


__all__ = ["router", "service"]

"""The Open Inference Protocol (KServe V2, REST), so existing clients such as
``tritonclient[http]`` work unchanged.

A use case is a model; its versions are planta's model versions. A table row maps to one tensor
per contract field, shape ``[n]`` (``[n, 1]`` is accepted too): FP64/FP32/INT* for numbers,
BOOL for yes/no fields, BYTES for categories, text and times. Outputs are ``prediction``
(BYTES for classes, FP64 for regression), ``probability`` (FP64, binary: P(positive);
multiclass: shape ``[n, k]``) and ``prediction_id`` (BYTES). Triton's binary tensor extension
is accepted on input (``Inference-Header-Content-Length``); answers are JSON.

Errors follow the protocol: ``{"error": "<message>"}`` with a 4xx status.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

import planta
from planta.core.lifecycle import Role
from planta.errors import ContractError, NotFoundError, PlantaError
from planta.server.body import content_type, parse_json
from planta.server.errors import HTTPProblem, status_of
from planta.server.guard import require
from planta.server.routes.v1 import runtime
from planta.server.routes.versions import MAX_VERSION
from planta.services.predict import Scorer
from planta_edge.contract import Field

_VERSION = re.compile(r"^[0-9]{1,10}$")
router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])

_NUMERIC = {"FP64": "<f8", "FP32": "<f4", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4",
            "INT16": "<i2", "INT8": "<i1", "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2",
            "UINT8": "<u1", "BOOL": "|b1"}


def _v2_error(exc: BaseException) -> Response:
    status = status_of(exc)
    if isinstance(exc, PlantaError):
        message = exc.message + (f" {exc.hint}" if exc.hint else "")
        if isinstance(exc, ContractError) and exc.violations:
            message = "; ".join(getattr(v, "message", str(v)) for v in exc.violations[:20])
    else:
        message = "planta hit an unexpected problem answering this request."
    return Response(orjson.dumps({"error": message}), status_code=status,
                    media_type="application/json")


def _ok(doc: Any) -> Response:
    return Response(orjson.dumps(doc), media_type="application/json")


def datatype(f: Field) -> str:
    if f.kind in ("number", "integer"):
        return "FP64"
    if f.kind == "boolean":
        return "BOOL"
    return "BYTES"


def model_metadata(scorer: Scorer, versions: list[str]) -> dict[str, Any]:
    outputs: list[dict[str, Any]] = [
        {"name": "prediction", "datatype": "FP64" if scorer.task.value == "regression"
         else "BYTES", "shape": [-1]},
        {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]}]
    if scorer.task.value == "binary":
        outputs.append({"name": "probability", "datatype": "FP64", "shape": [-1]})
    elif scorer.task.value == "multiclass":
        outputs.append({"name": "probability", "datatype": "FP64",
                        "shape": [-1, len(scorer.classes)]})
    return {"name": scorer.usecase, "versions": versions, "platform": "planta",
            "inputs": [{"name": f.name, "datatype": datatype(f), "shape": [-1]}
                       for f in scorer.contract.inputs],
            "outputs": outputs}


@router.get("", summary="Server metadata")
async def server_metadata() -> Response:
    return _ok({"name": "planta", "version": planta.__version__,
                "extensions": ["binary_tensor_data"]})


@router.get("/health/live", summary="Server live")
async def live() -> Response:
    return _ok({"live": True})


@router.get("/health/ready", summary="Server ready")
async def ready(request: Request) -> Response:
    ok = runtime(request).hub.ready
    return Response(orjson.dumps({"ready": ok}), status_code=200 if ok else 503,
                    media_type="application/json")


def _pin(name: str, version: str) -> int:
    """A version in a path as a number; anything else (``²``, 10**30) has no such version."""
    if not _VERSION.match(version) or not 1 <= int(version) <= MAX_VERSION:
        raise NotFoundError(f"Model {name[:100]!r} has no version {version[:20]!r}.")
    return int(version)


def _scorer(request: Request, name: str, version: str | None) -> Scorer:
    rt = runtime(request)
    if version is None:
        return rt.hub.route(name).choose()[0]
    return rt.hub.scorer(name, _pin(name, version))


def _versions(request: Request, name: str) -> list[str]:
    route = runtime(request).hub.route(name)
    return sorted({str(s.version) for s in (route.production, route.canary, route.shadow)
                   if s is not None}, key=int)


@router.get("/models/{name}", summary="Model metadata (the production version)")
async def metadata(request: Request, name: str) -> Response:
    try:
        require(request.scope["state"], Role.VIEWER, "reading model metadata")
        return _ok(model_metadata(_scorer(request, name, None), _versions(request, name)))
    except Exception as exc:
        return _v2_error(exc)


@router.get("/models/{name}/versions/{version}", summary="Model version metadata")
async def version_metadata(request: Request, name: str, version: str) -> Response:
    try:
        require(request.scope["state"], Role.VIEWER, "reading model metadata")
        return _ok(model_metadata(_scorer(request, name, version), [version]))
    except Exception as exc:
        return _v2_error(exc)


@router.get("/models/{name}/ready", summary="Model ready")
async def model_ready(request: Request, name: str) -> Response:
    return await _ready(request, name, None)


@router.get("/models/{name}/versions/{version}/ready", summary="Model version ready")
async def version_ready(request: Request, name: str, version: str) -> Response:
    return await _ready(request, name, version)


async def _ready(request: Request, name: str, version: str | None) -> Response:
    try:
        require(request.scope["state"], Role.VIEWER, "reading model readiness")
        _scorer(request, name, version)
    except Exception as exc:
        if isinstance(exc, HTTPProblem) or status_of(exc) in (401, 403):
            return _v2_error(exc)
        return Response(orjson.dumps({"name": name, "ready": False}), status_code=400,
                        media_type="application/json")
    return _ok({"name": name, "ready": True})


@router.post("/models/{name}/infer", summary="Inference (the production version)")
async def infer(request: Request, name: str) -> Response:
    return await _infer(request, name, None)


@router.post("/models/{name}/versions/{version}/infer", summary="Inference on a version")
async def version_infer(request: Request, name: str, version: str) -> Response:
    return await _infer(request, name, version)


async def _infer(request: Request, name: str, version: str | None) -> Response:
    try:
        rt = runtime(request)
        principal = require(request.scope["state"], Role.OPERATOR, "scoring")
        body = await request.body()
        doc, binary = _split(request, body)
        records, request_id = _records(doc, binary, rt.options.max_records)
        pinned = None if version is None else _pin(name, version)
        answer = await rt.predict(name, records, principal=principal, channel="v2",
                                  version=pinned,
                                  request_id=request.scope["state"].get("request_id"))
    except Exception as exc:
        return _v2_error(exc)
    batch = answer.batch
    n = batch.n
    outputs: list[dict[str, Any]] = []
    if batch.score is not None:
        outputs.append({"name": "prediction", "datatype": "FP64", "shape": [n],
                        "data": batch.score})
    else:
        outputs.append({"name": "prediction", "datatype": "BYTES", "shape": [n],
                        "data": [str(p) for p in batch.prediction]})
    if batch.probability is not None:
        if batch.probability and isinstance(batch.probability[0], dict):
            k = len(batch.probability[0])
            flat = [p for row in batch.probability for p in row.values()]
            outputs.append({"name": "probability", "datatype": "FP64", "shape": [n, k],
                            "data": flat})
        else:
            outputs.append({"name": "probability", "datatype": "FP64", "shape": [n],
                            "data": batch.probability})
    outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [n],
                    "data": answer.ids})
    wanted = doc.get("outputs")
    if isinstance(wanted, list) and wanted:
        names = {o.get("name") for o in wanted if isinstance(o, dict)}
        unknown = names - {o["name"] for o in outputs}
        if unknown:
            return _v2_error(HTTPProblem(400, f"Unknown output(s) requested: "
                                         f"{sorted(map(str, unknown))}.", rule="bad_output"))
        outputs = [o for o in outputs if o["name"] in names]
    out: dict[str, Any] = {"model_name": name, "model_version": str(batch.version),
                           "outputs": outputs}
    if request_id is not None:
        out["id"] = request_id
    return _ok(out)


def _split(request: Request, body: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary tail (Triton's binary tensor data extension)."""
    header = request.headers.get("inference-header-content-length")
    if header is not None:
        if not header.isdigit() or int(header) > len(body):
            raise HTTPProblem(400, "Inference-Header-Content-Length does not fit the body.",
                              rule="bad_header_length")
        cut = int(header)
        doc = parse_json(body[:cut])
        tail = body[cut:]
    else:
        kind = content_type(request)
        if kind not in ("application/json", "application/octet-stream", ""):
            raise HTTPProblem(415, f"Content type {kind!r} is not accepted; send "
                              "application/json.", rule="unsupported_media_type")
        doc = parse_json(body)
        tail = b""
    if not isinstance(doc, dict):
        raise HTTPProblem(400, "The inference request must be a JSON object.",
                          rule="malformed_request")
    return doc, tail


def _records(doc: dict[str, Any], tail: bytes, max_records: int
             ) -> tuple[list[dict[str, Any]], str | None]:
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise HTTPProblem(400, 'The request needs an "inputs" list with one tensor per field.',
                          rule="inputs_missing")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise HTTPProblem(400, '"id" must be a string.', rule="bad_id")
    columns: dict[str, list[Any]] = {}
    offset = 0
    n: int | None = None
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise HTTPProblem(400, f"Input {i} must be an object with a name.",
                              rule="bad_tensor")
        name, dtype = tensor["name"], tensor.get("datatype")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) \
                or len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise HTTPProblem(400, f"Input {name!r}: shape must be [n] or [n, 1].",
                              rule="bad_shape")
        size = shape[0]
        params = tensor.get("parameters") or {}
        if isinstance(params, dict) and "binary_data_size" in params:
            length = params["binary_data_size"]
            if not isinstance(length, int) or length < 0 or offset + length > len(tail):
                raise HTTPProblem(400, f"Input {name!r}: binary_data_size does not fit the "
                                  "body.", rule="bad_binary")
            values = _decode(tail[offset:offset + length], dtype, size, name)
            offset += length
        else:
            values = _flatten(tensor.get("data"), name)
        if len(values) != size:
            raise HTTPProblem(400, f"Input {name!r}: shape says {size} values, the data has "
                              f"{len(values)}.", rule="bad_shape")
        if n is None:
            n = size
        elif size != n:
            raise HTTPProblem(400, f"Input {name!r} has {size} rows, the others {n}: every "
                              "field needs one value per row.", rule="bad_shape")
        columns[name] = values
    assert n is not None
    if n == 0:
        raise HTTPProblem(422, "The batch is empty: send at least one row.", rule="empty_batch")
    if n > max_records:
        raise HTTPProblem(413, f"{n:,} rows; the limit is {max_records:,} per request.",
                          rule="batch_too_large")
    names = list(columns)
    cols = [columns[k] for k in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)], request_id


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise HTTPProblem(400, f"Input {name!r} needs a \"data\" list.", rule="bad_tensor")
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        for row in data:
            if not isinstance(row, list) or len(row) != 1:
                raise HTTPProblem(400, f"Input {name!r}: nested data must be [[v], [v], ...].",
                                  rule="bad_shape")
            flat.append(row[0])
        return flat
    return data


def _decode(raw: bytes, dtype: Any, size: int, name: str) -> list[Any]:
    if dtype == "BYTES":
        out: list[Any] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise HTTPProblem(400, f"Input {name!r}: truncated BYTES element.",
                                  rule="bad_binary")
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + length > len(raw):
                raise HTTPProblem(400, f"Input {name!r}: truncated BYTES element.",
                                  rule="bad_binary")
            chunk = raw[pos:pos + length]
            pos += length
            try:
                out.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise HTTPProblem(400, f"Input {name!r}: a BYTES element is not UTF-8 text.",
                                  rule="bad_binary") from None
        return out
    code = _NUMERIC.get(dtype) if isinstance(dtype, str) else None
    if code is None:
        raise HTTPProblem(400, f"Input {name!r}: datatype {dtype!r} is not supported.",
                          rule="bad_datatype")
    width = np.dtype(code).itemsize
    if len(raw) != size * width:
        raise HTTPProblem(400, f"Input {name!r}: {len(raw)} bytes do not hold {size} "
                          f"{dtype} values.", rule="bad_binary")
    values: list[Any] = np.frombuffer(raw, dtype=code).tolist()
    return values


__all__ = ["model_metadata", "router"]

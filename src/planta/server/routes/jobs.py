"""Async jobs over HTTP: submit records or a file, poll, download the result.

Jobs live in the store's durable queue (:mod:`planta.store.jobs`), so a submitted job survives
a server restart; the worker thread the server starts (or ``planta worker``) runs them.

A file can come three ways: ``multipart/form-data`` with a ``file`` part (what a browser or
``curl -F file=@batch.csv`` sends), or the raw bytes with ``Content-Type: text/csv`` /
``application/vnd.apache.parquet`` / ``application/octet-stream`` and ``?filename=batch.csv``.
The file name is only a label: it is checked and never used as a path.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from planta.core.lifecycle import Role
from planta.server.body import content_type, parse_json
from planta.server.errors import HTTPProblem
from planta.server.guard import require
from planta.server.routes.v1 import json_response, runtime
from planta.server.routes.versions import MAX_VERSION
from planta.store.ids import is_id

router = APIRouter(tags=["jobs"])

_RAW_TYPES = {"text/csv": ".csv", "application/vnd.apache.parquet": ".parquet",
              "application/x-parquet": ".parquet", "application/octet-stream": "",
              "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx"}
_MEDIA = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet",
          ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
_OPTION_KEYS = ("version", "range_policy", "extra_policy", "explain", "format")


def _job_doc(job: Any) -> dict[str, Any]:
    doc: dict[str, Any] = job.to_dict()
    doc["links"] = {"self": f"/v1/jobs/{job.id}"}
    if job.status == "done":
        doc["links"]["result"] = f"/v1/jobs/{job.id}/result"
    return doc


@router.post("/v1/usecases/{name}/jobs", status_code=202,
             summary="Submit records or a file for scoring in the background")
async def submit(request: Request, name: str) -> Response:
    from planta.services import jobs as service

    principal = require(request.scope["state"], Role.OPERATOR, "submitting jobs")
    rt = runtime(request)
    rt.hub.route(name)
    kind = content_type(request)
    if kind == "application/json":
        doc = parse_json(await request.body())
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
            raise HTTPProblem(422, 'Send {"records": [...], "options": {...}} or upload a file.',
                              rule="records_missing")
        options = _options(doc.get("options"))
        job = await run_in_threadpool(service.submit_records, rt.ws, name, doc["records"],
                                      caller=principal.name, options=options)
    elif kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=len(_OPTION_KEYS) + 1) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPProblem(422, 'The form needs a "file" part with the data file.',
                                  rule="file_missing")
            data = await upload.read()
            options = _options({k: form[k] for k in _OPTION_KEYS if isinstance(form.get(k), str)})
            await run_in_threadpool(check_expansion, data, rt.options.max_upload_bytes)
            job = await run_in_threadpool(service.submit_file, rt.ws, name,
                                          upload.filename or "upload.csv", data,
                                          caller=principal.name, options=options)
    elif kind in _RAW_TYPES:
        filename = request.query_params.get("filename") or f"upload{_RAW_TYPES[kind] or '.csv'}"
        options = _options({k: v for k, v in request.query_params.items()
                            if k in _OPTION_KEYS})
        data = await request.body()
        await run_in_threadpool(check_expansion, data, rt.options.max_upload_bytes)
        job = await run_in_threadpool(service.submit_file, rt.ws, name, filename, data,
                                      caller=principal.name, options=options)
    else:
        raise HTTPProblem(415, f"Content type {kind or '(none)'!r} is not accepted for jobs.",
                          rule="unsupported_media_type",
                          hint="Send JSON records, a multipart form with a file, or the file "
                               "itself as text/csv or application/vnd.apache.parquet.")
    return json_response(_job_doc(job), 202)


def check_expansion(data: bytes, limit: int) -> None:
    """Refuse (413) a compressed upload that would expand past ``limit`` bytes, the most the
    server takes uncompressed: gzip (``.csv.gz``) is inflated as a stream and counted, a zip
    (``.xlsx``) is judged by its members' declared sizes, which also bound what its reader
    inflates. A decompression bomb is refused here, at the door, not in the worker."""
    total = 0
    if data[:2] == b"\x1f\x8b":
        rest = data
        try:
            while rest:  # one gzip member after another, as `cat a.gz b.gz` makes
                inflater = zlib.decompressobj(wbits=31)
                chunk = rest
                while chunk and not inflater.eof:
                    total += len(inflater.decompress(chunk, 1 << 22))
                    if total > limit:
                        break
                    chunk = inflater.unconsumed_tail
                if total > limit or not inflater.eof:
                    break
                rest = inflater.unused_data
        except zlib.error as exc:
            raise HTTPProblem(422, f"The gzip data of the upload is damaged ({exc}).",
                              rule="bad_file") from None
    elif data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                total = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, ValueError) as exc:
            raise HTTPProblem(422, f"The upload is not a readable zip or Excel file ({exc}).",
                              rule="bad_file") from None
    if total > limit:
        raise HTTPProblem(413, f"The upload expands to more than {limit:,} bytes, the limit "
                          "for an uncompressed upload.", rule="expands_too_much",
                          hint="Split the file, or send it as Parquet.")


def _options(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HTTPProblem(422, '"options" must be an object.', rule="type")
    unknown = sorted(set(raw) - set(_OPTION_KEYS))
    if unknown:
        raise HTTPProblem(422, f"Unknown job option(s) {unknown}; known: "
                          f"{', '.join(_OPTION_KEYS)}.", rule="bad_option")
    out = dict(raw)
    if isinstance(out.get("explain"), str):
        out["explain"] = out["explain"].lower() in ("1", "true", "yes", "on")
    if isinstance(out.get("version"), str) and out["version"].isdigit():
        out["version"] = int(out["version"])
    version = out.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and \
            not 1 <= version <= MAX_VERSION:
        raise HTTPProblem(422, f"Option version={str(version)[:30]} is not a model version "
                          f"(1 to {MAX_VERSION}).", rule="bad_option")
    return out


def _job_id(job_id: str) -> str:
    if not is_id(job_id):
        raise HTTPProblem(404, f"There is no job {job_id[:40]!r}.", rule="not_found")
    return job_id


@router.get("/v1/jobs", summary="Recent jobs")
async def list_jobs(request: Request) -> Response:
    require(request.scope["state"], Role.VIEWER, "reading jobs")
    rt = runtime(request)
    q = request.query_params
    jobs = await run_in_threadpool(rt.jobs.list, q.get("usecase"), q.get("status"))
    return json_response({"jobs": [_job_doc(j) for j in jobs]})


@router.get("/v1/jobs/{job_id}", summary="A job's status")
async def get_job(request: Request, job_id: str) -> Response:
    require(request.scope["state"], Role.VIEWER, "reading jobs")
    rt = runtime(request)
    job = await run_in_threadpool(rt.jobs.get, _job_id(job_id))
    return json_response(_job_doc(job))


@router.get("/v1/jobs/{job_id}/result", summary="Download a finished job's result")
async def get_result(request: Request, job_id: str) -> Response:
    from planta.services.jobs import result_bytes

    require(request.scope["state"], Role.VIEWER, "reading job results")
    rt = runtime(request)
    job = await run_in_threadpool(rt.jobs.get, _job_id(job_id))
    data = await run_in_threadpool(result_bytes, rt.ws, job)
    name = job.result_name or f"{job.id}.json"
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    safe = "".join(c for c in name if c.isalnum() or c in "._-")[:120] or "result"
    return Response(data, media_type=_MEDIA.get(suffix, "application/json"),
                    headers={"content-disposition": f'attachment; filename="{safe}"'})


@router.delete("/v1/jobs/{job_id}", summary="Cancel a queued job")
async def cancel(request: Request, job_id: str) -> Response:
    principal = require(request.scope["state"], Role.OPERATOR, "cancelling jobs")
    rt = runtime(request)
    job = await run_in_threadpool(rt.jobs.cancel, _job_id(job_id), principal.name)
    return json_response(_job_doc(job))


__all__ = ["router"]

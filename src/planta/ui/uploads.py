"""The UI's file uploads: score a whole file as a background job, and send ground truth.

    GET  /ui/usecases/{name}/batch      batch.html     upload form, the use case's recent jobs
    POST /ui/usecases/{name}/batch      → 303 /ui/jobs/{id}   (planta.services.jobs.submit_file)
    GET  /ui/jobs/{job_id}              job.html       status, refreshed until it ends; counts
                                                       in words; the result's download link
    GET  /ui/usecases/{name}/feedback   feedback.html  ground-truth upload form
    POST /ui/usecases/{name}/feedback   feedback.html  "added N, already known M, corrected K"

A batch file goes through the same calls as ``POST /v1/usecases/{name}/jobs`` (the guard's
upload limit, :func:`planta.server.routes.jobs.check_expansion` against decompression bombs,
then :func:`planta.services.jobs.submit_file`); the server's worker thread scores it exactly
like ``planta score``: every row comes back with ``status`` ok or rejected and the reason. The
result is downloaded from ``/v1/jobs/{id}/result`` (the browser's cookie carries the token).

Ground truth is read like ``planta feedback`` reads a file (prediction_id and the value, or
entity + event_time + value) and recorded with :meth:`FeedbackStore.add`, so sending the same
file again changes nothing and corrections leave the same audit event.

An uploaded file's name is a label only: its suffix is matched against an allow-list, the bytes
go to the artifact store (jobs) or to a private temporary directory under a fixed name
(feedback), and the name is never joined into a path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from planta.core.lifecycle import Role
from planta.errors import FileFormatError, InputError, NotFoundError, PlantaError, relabel
from planta.server.errors import status_of
from planta.server.guard import require
from planta.store.ids import is_id
from planta.ui.view import View

# What the batch form offers as the result's format (planta.services.jobs.RESULT_FORMATS),
# spreadsheet-friendly first.
RESULT_FORMATS = ("csv", "xlsx", "parquet")
RANGE_POLICIES = ("reject", "flag", "clip")
# What the file pickers offer; the server checks the suffix again (longest first).
ACCEPT = ".csv,.tsv,.txt,.gz,.xlsx,.parquet"
FEEDBACK_SUFFIXES = (".csv.gz", ".tsv.gz", ".txt.gz", ".parquet", ".xlsx", ".csv", ".tsv",
                     ".txt", ".pq")
RECENT_JOBS = 10
SHOWN_UNKNOWN = 20
# How often (seconds) the job page reloads itself while the job waits or runs.
REFRESH_S = 2
# Text fields the upload forms have besides the file.
_BATCH_FIELDS = ("format", "range_policy")
_FEEDBACK_FIELDS = ("value_column",)
MAX_COLUMN_NAME = 200


def _usecase(view: View, name: str) -> str:
    from planta.ui.pages import usecase_name  # pages lists this module's loaders

    return usecase_name(view, name)


def _label(filename: str | None) -> str:
    """The last part of an uploaded name, printable, at most 200 characters: a label."""
    name = str(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[-200:] or "upload"


async def _upload(view: View, fields: tuple[str, ...]) -> tuple[str, bytes, dict[str, str]]:
    """The form's one file (label, bytes) and its text fields; the guard has capped the body."""
    try:
        async with view.request.form(max_files=1, max_fields=len(fields) + 1) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise InputError(view.t("batch.upload_no_file"))
            data = await upload.read()
            text = {k: v.strip() for k in fields if isinstance(v := form.get(k), str)}
            label = _label(upload.filename)
    except HTTPException as exc:  # a malformed multipart body: Starlette's 400
        raise InputError(view.t("batch.upload_bad_form", why=str(exc.detail)[:200])) from None
    if not data:
        raise FileFormatError(view.t("batch.upload_empty", file=label))
    return label, data, text


def _live(view: View, name: str) -> bool:
    route = view.rt.hub.routing.routes.get(name)
    return route is not None and (route.production or route.canary) is not None


# -- batch scoring ---------------------------------------------------------------------------

def _job_row(view: View, job: Any) -> dict[str, Any]:
    summary = job.summary or {}
    return {"id": job.id, "file": job.input_name, "status": job.status, "caller": job.caller,
            "state": view.t(f"batch.job.state_{job.status}"),
            "created": job.created_at.strftime("%Y-%m-%d %H:%M"),
            "rows": summary.get("rows"), "ok": summary.get("ok"),
            "rejected": summary.get("rejected")}


def batch(view: View, name: str, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The batch page: the upload form and this use case's recent jobs."""
    _usecase(view, name)
    jobs = view.rt.jobs.list(name, None, limit=RECENT_JOBS) if view.rt.jobs is not None else []
    return {"name": name, "live": _live(view, name), "accept": ACCEPT, "error": error,
            "formats": [(f, view.t(f"batch.format_{f}")) for f in RESULT_FORMATS],
            "policies": [(p, view.t(f"batch.policy_{p}")) for p in RANGE_POLICIES],
            "jobs": [_job_row(view, j) for j in jobs if j.kind == "file"]}


async def submit_batch(view: View, name: str) -> Response:
    """Queue the uploaded file as a scoring job; on to its status page (303)."""
    from planta.server.routes.jobs import check_expansion
    from planta.services.jobs import submit_file

    principal = require(view.request.scope["state"], Role.OPERATOR, view.t("batch.doing"))
    await run_in_threadpool(_usecase, view, name)
    rt = view.rt
    try:
        label, data, form = await _upload(view, _BATCH_FIELDS)
        fmt = form.get("format") or RESULT_FORMATS[0]
        policy = form.get("range_policy") or RANGE_POLICIES[0]
        if fmt not in RESULT_FORMATS or policy not in RANGE_POLICIES:
            raise InputError(view.t("batch.bad_option"))
        await run_in_threadpool(check_expansion, data, rt.options.max_upload_bytes)
        job = await run_in_threadpool(
            lambda: submit_file(rt.ws, name, label, data, caller=principal.name,
                                options={"format": fmt, "range_policy": policy}))
    except PlantaError as exc:  # shown above the form, so the user can pick another file
        ctx = await run_in_threadpool(batch, view, name,
                                      {"message": exc.message, "hint": exc.hint})
        return view.render("batch.html", ctx, status=status_of(exc))
    return RedirectResponse(f"/ui/jobs/{job.id}", status_code=303)


def _why(view: View, rule: str) -> str:
    key = f"batch.why.{rule}"
    text = view.t(key)
    return rule if text == key else text


def job(view: View, job_id: str) -> dict[str, Any]:
    """One job's page: its state in words, the counts once done, the download link."""
    if not is_id(job_id) or view.rt.jobs is None:
        raise NotFoundError(view.t("batch.job.unknown", id=job_id[:40]))
    found = view.rt.jobs.get(job_id.upper())
    summary = dict(found.summary or {})
    by_rule = summary.get("rejected_by_rule") or {}
    return {"job": found, "row": _job_row(view, found), "refresh": not found.is_finished,
            "refresh_s": REFRESH_S,
            "result_url": f"/v1/jobs/{found.id}/result" if found.status == "done" else None,
            "result_name": found.result_name,
            "rules": sorted(((_why(view, str(r)), int(n)) for r, n in by_rule.items()
                             if isinstance(n, int)), key=lambda rn: -rn[1]),
            "version": summary.get("model_version")}


# -- ground truth ----------------------------------------------------------------------------

def feedback(view: View, name: str) -> dict[str, Any]:
    """The ground-truth page: the upload form (and, after a POST, what was recorded)."""
    _usecase(view, name)
    uc = view.rt.ws.project.usecase(name)
    return {"name": name, "target": uc.target, "entity": uc.entity, "accept": ACCEPT,
            "result": None, "error": None, "value_column": ""}


def _suffix(view: View, label: str) -> str:
    low = label.lower()
    for suffix in FEEDBACK_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return suffix
    raise FileFormatError(view.t("batch.upload_bad_type", file=label))


def _column(view: View, columns: list[str], wanted: str | None) -> str | None:
    """``wanted`` as the file spells it (exactly, else by its slug), or None."""
    from planta_edge.contract import slugify

    if not wanted:
        return None
    if wanted in columns:
        return wanted
    slugs = {slugify(c): c for c in columns}
    return slugs.get(slugify(wanted))


def read_feedback(view: View, name: str, label: str, data: bytes,
                  value_column: str | None) -> dict[str, Any]:
    """Read an uploaded ground-truth file as ``planta feedback`` does and record it."""
    import pandas as pd

    from planta.services.tables import read_table

    uc = view.rt.ws.project.usecase(name)
    suffix = _suffix(view, label)
    with tempfile.TemporaryDirectory(prefix="planta-feedback-") as tmp:
        path = Path(tmp) / f"upload{suffix}"   # a fixed name: the label never becomes a path
        path.write_bytes(data)
        try:
            frame = read_table(path).frame
        except FileFormatError as exc:
            raise relabel(exc, path.name, label) from None
    columns = [str(c) for c in frame.columns]
    shown = ", ".join(columns)[:500]

    def cells(column: str) -> list[Any]:
        return [None if v is None or (not isinstance(v, (str, bytes, list, dict))
                                      and pd.isna(v)) else v
                for v in frame[column].tolist()]

    if value_column:
        value_col = _column(view, columns, value_column[:MAX_COLUMN_NAME])
        if value_col is None:
            raise InputError(view.t("feedback.no_such_column", column=value_column[:100],
                                    columns=shown))
    else:
        value_col = next((c for c in (_column(view, columns, w)
                                      for w in (uc.target, "label", "value")) if c), None)
        if value_col is None:
            raise InputError(view.t("feedback.no_value_column", target=uc.target,
                                    columns=shown))
    values = cells(value_col)
    id_col = _column(view, columns, "prediction_id")
    if id_col is not None:
        items = [{"prediction_id": p, "value": v}
                 for p, v in zip(cells(id_col), values, strict=True)]
        how = "id"
    else:
        entity_col = _column(view, columns, uc.entity)
        time_col = _column(view, columns, "event_time")
        if entity_col is None or time_col is None:
            raise InputError(view.t("feedback.no_key_columns", entity=uc.entity or "—",
                                    columns=shown))
        items = [{"entity": e, "event_time": t, "value": v} for e, t, v in zip(
            cells(entity_col), cells(time_col), values, strict=True)]
        how = "entity"
    principal = view.principal
    result = view.rt.feedback.add(name, items, actor=principal.name if principal else "anonymous",
                                  source=f"file:{label}")
    return {"file": label, "rows": len(items), "how": how, "value_column": value_col,
            "how_words": view.t(f"feedback.how_{how}"),
            "added": result.added, "unchanged": result.unchanged, "updated": result.updated,
            "unknown": [(i + 1, reason) for i, reason in result.unknown[:SHOWN_UNKNOWN]],
            "n_unknown": len(result.unknown)}


async def submit_feedback(view: View, name: str) -> Response:
    """Record the uploaded ground truth; the page again, with what happened in words."""
    from planta.server.routes.jobs import check_expansion

    require(view.request.scope["state"], Role.OPERATOR, view.t("feedback.doing"))
    ctx = await run_in_threadpool(feedback, view, name)
    if view.rt.feedback is None:  # a server without a prediction log has nothing to match
        raise InputError(view.t("feedback.no_log"))
    try:
        label, data, form = await _upload(view, _FEEDBACK_FIELDS)
        ctx["value_column"] = form.get("value_column", "")[:MAX_COLUMN_NAME]
        await run_in_threadpool(check_expansion, data, view.rt.options.max_upload_bytes)
        ctx["result"] = await run_in_threadpool(read_feedback, view, name, label, data,
                                                ctx["value_column"] or None)
    except PlantaError as exc:
        ctx["error"] = {"message": exc.message, "hint": exc.hint}
        return view.render("feedback.html", ctx, status=status_of(exc))
    return view.render("feedback.html", ctx)


__all__ = ["batch", "feedback", "job", "read_feedback", "submit_batch", "submit_feedback"]

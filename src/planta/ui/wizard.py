"""The use-case wizard: from a plant file to a trained model, without code.

    GET  /ui/wizard                              wizard_start.html  upload a CSV or Excel file
    POST /ui/wizard/upload                       → a draft: the file in a private temp file
    GET  /ui/wizard/{draft}[?target=…&task=…]    wizard_draft.html  preview, columns and kinds,
                                                                    target and task (suggested),
                                                                    objective in plain terms
    POST /ui/wizard/{draft}/create               `planta usecase add` + `planta ingest`
    GET  /ui/usecases/{name}/data                wizard_data.html   the data-quality and leakage
                                                                    report; start training
    POST /ui/usecases/{name}/train               training in a server thread (planta.ui.training)
    GET  /ui/usecases/{name}/training/{id}       wizard_training.html  trials as they finish
    GET  /ui/usecases/{name}/training/{id}.json  the same, polled every second by wizard.js
                                                 (without JavaScript a <noscript> meta refresh)

Roles: creating a use case and training need **operator** or above (the same role that scores
and sends feedback); reading the data report and following a training need viewer. Promoting
what was trained stays with approvers, on the model page.

Creating goes through the same calls as the CLI: ``Project.add_usecase`` with the
``usecase_add`` audit event, then :func:`planta.services.ingest.ingest` (``contract_create``
and ``ingest`` events); the actor is the token's owner. Before anything is written the
target, objective and leak guard are checked on the file, so a refusal changes nothing.

Uploads: the guard limits ``POST /ui/wizard/upload`` to the server's upload limit (not the
10 MB body limit). The file is written to a private folder (0700) as a 0600 file whose name
is the uploaded name cleaned to ``[A-Za-z0-9._-]`` (so the dataset's source reads as the plant
named it; the name is only a label, never a path) and is deleted after ingest, when the draft
is abandoned (:data:`DRAFT_TTL_S`), or when the server stops. Drafts live in the server's
memory and only the person who uploaded one can see it.
"""

from __future__ import annotations

import atexit
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from planta.core.lifecycle import Role
from planta.errors import (
    ConfigError,
    FileFormatError,
    InputError,
    NotFoundError,
    PlantaError,
    error_said,
    relabel,
)
from planta.i18n import said_lines, say
from planta.server.errors import status_of
from planta.server.guard import require
from planta.ui.training import ID_PATTERN, ActingWorkspace, Trainings
from planta.ui.view import View
from planta.ui.words import objective_words

# What may be uploaded (longest first, so ".csv.gz" wins over ".gz"); the suffix on disk comes
# from this tuple, never from the uploaded name.
SUFFIXES = (".csv.gz", ".tsv.gz", ".txt.gz", ".parquet", ".xlsx", ".xlsm", ".csv", ".tsv",
            ".txt")
PREVIEW_ROWS = 10
MAX_DRAFTS = 20
DRAFT_TTL_S = 3600.0
MAX_SUGGESTIONS = 5
BUDGET_DEFAULT_S = 60
BUDGET_MAX_S = 3600
# Column names that usually hold an outcome (English and Spanish).
_OUTCOME_WORDS = re.compile(
    r"fail|fault|defect|scrap|reject|label|target|outcome|class|quality|\bnok\b|\bok\b|"
    r"fallo|falla|defecto|rechazo|aver[ií]a|desecho|calidad|etiqueta", re.IGNORECASE)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_UPLOAD_CHUNK = 1 << 20
_create_lock = threading.Lock()


# --------------------------------------------------------------------------------------------
# pure helpers: kinds, suggestions, objective text


def column_kind(series: pd.Series) -> str:
    """The kind ingest would infer for a feature column (number, integer, boolean, …)."""
    from planta.core.contract import _kind_of

    try:
        return _kind_of(series)[0]
    except (PlantaError, ValueError, TypeError):
        return "text"


def suggest_task(series: pd.Series, kind: str | None = None) -> str:
    """binary for two values, regression for a column of many numbers, else multiclass.

    >>> suggest_task(pd.Series([0, 1, 0])), suggest_task(pd.Series(["a", "b", "c"]))
    ('binary', 'multiclass')
    >>> suggest_task(pd.Series([float(i) / 3 for i in range(50)]))
    'regression'
    """
    kind = kind or column_kind(series)
    distinct = int(series.nunique(dropna=True))
    if distinct <= 2 or kind == "boolean":
        return "binary"
    if kind in ("number", "integer") and distinct > 20:
        return "regression"
    return "multiclass"


def suggest_targets(frame: pd.DataFrame, kinds: Mapping[str, str]) -> list[str]:
    """Columns that look like something to predict, likeliest first: a name like failure,
    defect, scrap or label, and few different values (yes/no first).

    >>> f = pd.DataFrame({"id": range(30), "temp": [i * 1.5 for i in range(30)],
    ...                   "Machine failure": [i % 2 for i in range(30)]})
    >>> suggest_targets(f, {"id": "integer", "temp": "number", "Machine failure": "integer"})
    ['Machine failure']
    """
    scored: list[tuple[float, int, str]] = []
    n = len(frame)
    for i, column in enumerate(frame.columns):
        series = frame[column]
        distinct = int(series.nunique(dropna=True))
        if distinct < 2 or (distinct == n and n > 20):
            continue  # constant or an id: nothing to predict
        score = 0.0
        if _OUTCOME_WORDS.search(str(column)):
            score += 2.0
        if distinct == 2 or kinds.get(str(column)) == "boolean":
            score += 1.5
        elif distinct <= 10:
            score += 1.0
        if score >= 1.0:
            scored.append((-score, i, str(column)))
    return [name for _, _, name in sorted(scored)[:MAX_SUGGESTIONS]]


def _number(raw: str | None) -> float | None:
    text = (raw or "").strip().replace(",", ".").rstrip("%").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _share(pct: float) -> str:
    """80 → '0.80', 85.5 → '0.855' (as the objective grammar writes it)."""
    value = pct / 100
    return f"{value:.2f}" if round(value, 2) == round(value, 10) else f"{value:.4g}"


def objective_text(task: str, form: Mapping[str, str], t: Callable[..., str]) -> str:
    """The spec's objective from the wizard's plain inputs.

    binary: catch at least ``recall`` % of the real cases (and at least ``precision`` % of
    alarms are real) → ``recall>=0.80 and precision>=0.50``; multiclass: right in at least
    ``accuracy`` % → ``accuracy>=0.90``; regression: error at most ``rmse`` → ``rmse<=12``.

    >>> from planta.ui.i18n import translator
    >>> objective_text("binary", {"recall": "80", "precision": "50"}, translator("en"))
    'recall>=0.80 and precision>=0.50'
    >>> objective_text("regression", {"rmse": "12,5"}, translator("en"))
    'rmse<=12.5'
    """
    def pct(key: str, required: bool) -> float | None:
        raw = form.get(key) or ""
        value = _number(raw)
        if value is None and not raw.strip() and not required:
            return None
        if value is None or not 0 < value <= 100:
            raise InputError(t("wizard.bad_percent", value=raw.strip()[:20] or "—"))
        return value

    if task == "binary":
        recall = pct("recall", True)
        precision = pct("precision", False)
        assert recall is not None
        text = f"recall>={_share(recall)}"
        return text + (f" and precision>={_share(precision)}" if precision is not None else "")
    if task == "multiclass":
        accuracy = pct("accuracy", True)
        assert accuracy is not None
        return f"accuracy>={_share(accuracy)}"
    raw = form.get("rmse") or ""
    error = _number(raw)
    if error is None or error <= 0:
        raise InputError(t("wizard.bad_error", value=raw.strip()[:20] or "—"))
    return f"rmse<={error:g}"


# --------------------------------------------------------------------------------------------
# drafts: an uploaded file waiting to become a use case


@dataclass
class Draft:
    id: str
    folder: Path
    path: Path
    label: str
    owner: str
    n_rows: int
    columns: list[dict[str, Any]]
    head: list[list[str]]
    suggestions: list[str]
    format: str
    created: float = field(default_factory=time.monotonic)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Drafts:
    """The uploads waiting in this server's memory (their files in private temp folders)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Draft] = OrderedDict()
        self._lock = threading.Lock()
        atexit.register(self.clear)

    def add(self, draft: Draft) -> None:
        with self._lock:
            self._expire()
            self._items[draft.id] = draft
            while len(self._items) > MAX_DRAFTS:
                self._items.popitem(last=False)[1].discard()

    def get(self, draft_id: str, owner: str) -> Draft | None:
        with self._lock:
            self._expire()
            draft = self._items.get(draft_id)
            return draft if draft is not None and draft.owner == owner else None

    def pop(self, draft_id: str) -> None:
        with self._lock:
            draft = self._items.pop(draft_id, None)
        if draft is not None:
            draft.discard()

    def clear(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), OrderedDict()
        for draft in items:
            draft.discard()

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, d in self._items.items() if now - d.created > DRAFT_TTL_S]:
            self._items.pop(key).discard()


_state_lock = threading.Lock()


def _shared(request: Request) -> tuple[Drafts, Trainings]:
    """This server's drafts and trainings (made on first use, kept on the app)."""
    state = request.app.state
    with _state_lock:
        if getattr(state, "planta_wizard", None) is None:
            state.planta_wizard = (Drafts(), Trainings())
    return state.planta_wizard  # type: ignore[no-any-return]


def _suffix(label: str) -> str | None:
    lower = label.lower()
    return next((s for s in SUFFIXES if lower.endswith(s)), None)


def _stored_name(label: str, suffix: str) -> str:
    stem = Path(label.replace("\\", "/")).name[: -len(suffix)]
    return (_SAFE.sub("_", stem).strip("._-")[:80] or "upload") + suffix


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)[:60]


def inspect_file(path: Path) -> dict[str, Any]:
    """What the preview shows: rows, columns with kinds, the first rows, likely targets."""
    from planta.services.tables import read_table

    read = read_table(path)
    frame = read.frame
    if len(frame) == 0:
        raise FileFormatError(f"{read.name}: the file has a header but no rows.")
    kinds = {str(c): column_kind(frame[c]) for c in frame.columns}
    columns = [{"name": str(c), "kind": kinds[str(c)],
                "distinct": int(frame[c].nunique(dropna=True)),
                "missing": int(frame[c].isna().sum())} for c in frame.columns]
    head = [[_cell(v) for v in row] for row in
            frame.head(PREVIEW_ROWS).itertuples(index=False, name=None)]
    return {"n_rows": int(len(frame)), "columns": columns, "head": head,
            "suggestions": suggest_targets(frame, kinds), "format": read.format.describe()}


# --------------------------------------------------------------------------------------------
# pages (loaders for planta.ui.pages.PAGES)


def start(view: View) -> dict[str, Any]:
    return {"error": None, "suffixes": ", ".join(SUFFIXES)}


def _draft_of(view: View, draft_id: str) -> Draft:
    drafts, _ = _shared(view.request)
    principal = view.principal
    draft = drafts.get(draft_id, principal.name if principal is not None else "")
    if draft is None:
        raise NotFoundError(view.t("wizard.no_draft"), hint=view.t("wizard.no_draft_hint"))
    return draft


def draft(view: View, draft: str, form: Mapping[str, str] | None = None,
          error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    d = _draft_of(view, draft)
    values = dict(form if form is not None else view.request.query_params)
    names = [c["name"] for c in d.columns]
    target = values.get("target") or ""
    if target not in names:
        target = ""
    task = values.get("task") or ""
    suggested_task = None
    if target:
        column = next(c for c in d.columns if c["name"] == target)
        suggested_task = ("binary" if column["distinct"] <= 2 or column["kind"] == "boolean"
                          else "regression" if column["kind"] in ("number", "integer")
                          and column["distinct"] > 20 else "multiclass")
    if task not in ("binary", "multiclass", "regression"):
        task = suggested_task or ""
    name = values.get("name") or (re.sub(r"[^a-z0-9]+", "_", target.lower()).strip("_")[:40]
                                  if target else "")
    if name and not name[0].isalpha():
        name = "uc_" + name
    return {"draft": d, "target": target, "task": task, "suggested_task": suggested_task,
            "name": name, "recall": values.get("recall", "80"),
            "precision": values.get("precision", "50"), "accuracy": values.get("accuracy", "90"),
            "rmse": values.get("rmse", ""), "error": error,
            "columns": d.columns, "suggestions": d.suggestions}


def data(view: View, name: str) -> dict[str, Any]:
    from planta.ui.pages import usecase_name

    usecase_name(view, name)
    ws = view.rt.ws
    uc = ws.project.usecase(name)
    dv = ws.registry.latest_dataset_version(name)
    _, trainings = _shared(view.request)
    running = trainings.running(name)
    out: dict[str, Any] = {"name": name, "task": uc.task.value, "target": uc.target,
                           "objective": objective_words(uc.objective, view.t),
                           "objective_text": uc.objective.text, "dv": dv,
                           "running": running.id if running is not None else None,
                           "budget": BUDGET_DEFAULT_S, "budget_max": BUDGET_MAX_S,
                           "error": None}
    if dv is not None:
        report = dv.report
        out.update(share=f"{(dv.n_rejected / dv.n_rows if dv.n_rows else 0.0):.1%}",
                   findings=said_lines(report, "findings", view.t),
                   exclusions=[e | {"evidence": say(e["evidence_said"], view.t)}
                               if e.get("evidence_said") else e
                               for e in report.get("exclusions") or ()],
                   notes=said_lines(report, "notes", view.t))
    return out


def training(view: View, name: str, training: str) -> dict[str, Any]:
    from planta.ui.pages import usecase_name

    usecase_name(view, name)
    _, trainings = _shared(view.request)
    run = trainings.get(training)
    if run is None or run.usecase != name:
        raise NotFoundError(view.t("wizard.no_training"), hint=view.t("wizard.no_training_hint"))
    return {"name": name, "run": run.snapshot()}


# --------------------------------------------------------------------------------------------
# actions


async def upload(view: View) -> Response:
    """Keep the uploaded file as a draft and show its preview (303), or say why not."""
    principal = require(view.request.scope["state"], Role.OPERATOR, view.t("wizard.doing"))
    drafts, _ = _shared(view.request)
    form = await view.request.form(max_files=1, max_fields=5)
    folder: Path | None = None
    try:
        item = form.get("file")
        if not isinstance(item, UploadFile) or not item.filename:
            raise InputError(view.t("wizard.no_file"))
        label = item.filename.replace("\\", "/").rsplit("/", 1)[-1][:200]
        suffix = _suffix(label)
        if suffix is None:
            raise FileFormatError(view.t("wizard.bad_type", name=label, known=", ".join(SUFFIXES)))
        folder = Path(tempfile.mkdtemp(prefix="planta-wizard-"))   # 0700
        path = folder / _stored_name(label, suffix)
        size = 0
        with path.open("xb") as fh:
            path.chmod(0o600)
            while chunk := await item.read(_UPLOAD_CHUNK):
                size += len(chunk)
                fh.write(chunk)
        if size == 0:
            raise FileFormatError(view.t("wizard.empty", name=label))
        try:
            seen = await run_in_threadpool(inspect_file, path)
        except FileFormatError as exc:  # the reader names the stored file: name the upload
            raise relabel(exc, path.name, label) from None
        draft_id = secrets.token_urlsafe(12)
        drafts.add(Draft(id=draft_id, folder=folder, path=path, label=label,
                         owner=principal.name, **seen))
        folder = None
    except PlantaError as exc:
        return view.render("wizard_start.html", start(view) | {
            "error": error_said(exc, view.t)}, status=status_of(exc))
    finally:
        await form.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return RedirectResponse(f"/ui/wizard/{draft_id}", status_code=303)


def _check(path: Path, usecase: Any) -> None:
    """What ingest will refuse, found before anything is written (a dry run of its checks)."""
    from planta.core.contract import infer_contract
    from planta.core.leakage import find_exclusions
    from planta.services.ingest import _target_header
    from planta.services.tables import read_table

    read = read_table(path)
    header = _target_header(read.frame, usecase.target, read.name)
    found = find_exclusions(read.frame, header, usecase.task, keep=usecase.keep,
                            entity=usecase.entity, time=usecase.time)
    infer_contract(read.frame, usecase, exclusions=found.exclusions)


async def create(view: View, draft: str) -> Response:
    """``planta usecase add`` and ``planta ingest`` from the draft; then the data report."""
    from planta.core.spec import UseCase
    from planta.services.ingest import ingest

    principal = require(view.request.scope["state"], Role.OPERATOR, view.t("wizard.doing"))
    d = _draft_of(view, draft)
    drafts, _ = _shared(view.request)
    raw = await view.request.form(max_files=0, max_fields=20)
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    rt = view.rt
    name = (form.get("name") or "").strip().lower()[:63]

    def run() -> None:
        task = form.get("task") or ""
        target = form.get("target") or ""
        if target not in {c["name"] for c in d.columns}:
            raise InputError(view.t("wizard.pick_target"))
        if task not in ("binary", "multiclass", "regression"):
            raise InputError(view.t("wizard.pick_task"))
        objective = objective_text(task, form, view.t)
        try:  # a name or objective planta.toml would refuse is the form's fault here (400)
            usecase = UseCase.from_dict(name, {"task": task, "target": target,
                                               "objective": objective})
        except ConfigError as exc:
            raise InputError(exc.message, hint=exc.hint) from None
        _check(d.path, usecase)
        ws = ActingWorkspace.of(rt.ws, principal.name)
        with _create_lock:
            if name in ws.project.usecase_names:
                raise InputError(view.t("wizard.exists", name=name))
            ws.project.add_usecase(usecase)
            ws.audit.append("usecase_add", f"usecase/{name}", ws.actor, usecase.to_dict())
        try:
            ingest(ws, name, d.path)
        finally:
            drafts.pop(d.id)   # the file goes: ingested, or to be uploaded again
        rt.hub.refresh()

    try:
        await run_in_threadpool(run)
    except PlantaError as exc:
        if drafts.get(d.id, d.owner) is None:  # ingest itself failed: the use case stands
            raise
        ctx = await run_in_threadpool(draft_page, view, d.id, form, exc)
        return view.render("wizard_draft.html", ctx, status=status_of(exc))
    return RedirectResponse(f"/ui/usecases/{name}/data", status_code=303)


def draft_page(view: View, draft_id: str, form: Mapping[str, str],
               exc: PlantaError) -> dict[str, Any]:
    return draft(view, draft_id, form, error={"message": exc.message, "hint": exc.hint})


async def start_training(view: View, name: str) -> Response:
    """Start training ``name`` in a server thread; to its progress page (303)."""
    from planta.ui.pages import usecase_name

    principal = require(view.request.scope["state"], Role.OPERATOR, view.t("wizard.doing_train"))
    usecase_name(view, name)
    raw = await view.request.form(max_files=0, max_fields=5)
    value = raw.get("budget")
    budget = _number(value if isinstance(value, str) else None)
    _, trainings = _shared(view.request)
    try:
        if budget is None or not 1 <= budget <= BUDGET_MAX_S:
            raise InputError(view.t("wizard.bad_budget", high=BUDGET_MAX_S))
        if view.rt.ws.registry.latest_dataset_version(name) is None:
            raise NotFoundError(view.t("wizard.no_data", name=name))
        run = trainings.start(view.rt.ws, name, budget_s=budget, actor=principal.name,
                              note="trained from the web UI")
    except PlantaError as exc:
        ctx = await run_in_threadpool(data, view, name)
        ctx["error"] = {"message": exc.message, "hint": exc.hint}
        return view.render("wizard_data.html", ctx, status=status_of(exc))
    return RedirectResponse(f"/ui/usecases/{name}/training/{run.id}", status_code=303)


async def progress_json(request: Request) -> Response:
    """The training's latest events as JSON (polled by wizard.js)."""
    view = View.of(request)
    name = request.path_params["name"]
    training_id = request.path_params["training"]
    try:
        require(request.scope["state"], Role.VIEWER, view.t("wizard.nav_training"))
        snap = await run_in_threadpool(training, view, name, training_id)
    except PlantaError as exc:
        return JSONResponse({"ok": False, "error": exc.message}, status_code=status_of(exc),
                            headers={"cache-control": "no-store"})
    run = snap["run"]
    if run["status"] == "done":
        run["model_url"] = f"/ui/usecases/{name}?version={run['version']}"
    return JSONResponse({"ok": True} | run, headers={"cache-control": "no-store"})


class _TrainingId(Convertor[str]):
    """Only a training id: ``…/training/{id}`` must not swallow ``…/training/{id}.json``."""

    regex = ID_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("training_id", _TrainingId())


def add_routes(router: APIRouter,
               action: Callable[[Callable[..., Awaitable[Response]]],
                                Callable[..., Awaitable[Response]]]) -> None:
    """The wizard's POSTs and its JSON route (its pages are in planta.ui.pages.PAGES)."""
    router.add_api_route("/ui/wizard/upload", action(upload), methods=["POST"])
    router.add_api_route("/ui/wizard/{draft}/create", action(create), methods=["POST"])
    router.add_api_route("/ui/usecases/{name}/train", action(start_training), methods=["POST"])
    router.add_api_route("/ui/usecases/{name}/training/{training:training_id}.json",
                         progress_json, methods=["GET"], response_class=Response)


__all__ = ["SUFFIXES", "add_routes", "column_kind", "data", "draft",
           "inspect_file", "objective_text", "start", "suggest_targets", "suggest_task",
           "training"]

"""The UI's pages: one :class:`Page` each, listed in :data:`PAGES`, which also draws the
navigation bar.

    PAGES
      /ui                                     home.html     use cases, live versions, objectives
      /ui/usecases/{name}                     usecase.html  model page: metrics in words, gate,
                                                            importances, lineage, versions, moves
      /ui/usecases/{name}/versions/{v}        version.html  one version in depth, beside
                                                            production; approval moves
      /ui/usecases/{name}/versions/{v}/card   card.html     printable model card
      /ui/usecases/{name}/score               score.html    a form made from the contract
      /ui/audit                               audit.html    the audit trail and its verification
      /ui/usecases/{name}/batch               batch.html    score a file as a job   (ui/uploads.py)
      /ui/jobs/{job_id}                       job.html      a job's state, counts, download
      /ui/usecases/{name}/feedback            feedback.html upload what really happened
      /ui/usecases/{name}/monitoring          monitoring.html drift per input, scores, data
                                                            quality (ui/monitoring.py)
      /ui/usecases/{name}/performance         performance.html measured and estimated
                                                            performance per window (ui/performance.py)
      /ui/alerts                              alerts.html   alerts raised by rules; acknowledge
                                                            or resolve them (ui/alerts.py)
      /ui/tokens                              tokens.html   admin: create, list, revoke tokens
                                                            (ui/tokens.py)
      /ui/devices                             devices.html  edge devices, their outbox and drift
                                                            (ui/devices.py)
      /ui/login                               login.html    keep a token in a cookie

Adding a page (monitoring, devices) is three small steps:

1. write ``templates/<page>.html`` extending ``base.html``;
2. write a loader here, ``def my_page(view: View, **path_params) -> dict``, returning the
   template's context (it runs in a worker thread, so it may read the store; raise a
   :class:`planta.errors.PlantaError` to show a refusal in plain words);
3. append ``Page("nav.my_page", "/ui/my-page", "my_page.html", my_page)`` to :data:`PAGES`
   and add the ``nav.my_page`` key to both ``locale/en.json`` and ``locale/es.json``.

:mod:`planta.ui.router` turns every entry into a GET route, checks the page's ``role`` and
lists the ``in_nav`` ones in the navigation bar, in this order. Forms that change something
POST to :mod:`planta.ui.actions`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from planta.core.lifecycle import Role, State
from planta.errors import NotFoundError
from planta.ui import alerts as alert_pages
from planta.ui import devices as device_pages
from planta.ui import monitoring as monitoring_page
from planta.ui import performance as performance_page
from planta.ui import tokens as token_pages
from planta.ui import uploads, wizard
from planta.ui.view import View
from planta.ui.words import gate_lines, metric_sentences, objective_words

# How many events the audit page lists, and how many importances the model page shows.
AUDIT_ROWS = 200
TOP_IMPORTANCES = 8
# States a version can be promoted from by one click (archived goes back by rollback).
PROMOTABLE = frozenset({State.CANDIDATE.value, State.CANARY.value, State.SHADOW.value,
                        State.REJECTED.value})

Loader = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class Page:
    """One UI page: its navigation label (a catalogue key), path, template and loader."""

    title_key: str
    path: str
    template: str
    load: Loader
    in_nav: bool = True
    role: Role | None = Role.VIEWER     # None: open to anyone the guard lets in (sign-in)


def usecase_name(view: View, name: str) -> str:
    """``name`` if the project has that use case; NotFoundError in plain words otherwise."""
    if name not in view.rt.ws.project.usecase_names:
        raise NotFoundError(view.t("error.no_usecase", name=name[:100]))
    return name


def home(view: View) -> dict[str, Any]:
    ws = view.rt.ws
    rows = []
    for name in ws.project.usecase_names:
        uc = ws.project.usecase(name)
        route = view.rt.hub.routing.routes.get(name)
        live = {} if route is None else {k: s.version for k, s in (
            ("production", route.production), ("canary", route.canary),
            ("shadow", route.shadow)) if s is not None}
        rows.append({"name": name, "task": uc.task.value, "target": uc.target, "live": live,
                     "objective": objective_words(uc.objective, view.t)})
    return {"usecases": rows}


def _contract(view: View, name: str) -> Any:
    route = view.rt.hub.routing.routes.get(name)
    scorer = None if route is None else (route.production or route.canary)
    if scorer is not None:
        return scorer.contract
    from planta.services.ingest import load_contract

    return load_contract(view.rt.ws, name)


def _version_number(view: View, name: str, raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    try:
        number = int(raw)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= 2**31 - 1:
        raise NotFoundError(view.t("error.no_version", name=name, version=str(raw)[:30]))
    return number


def model_context(view: View, name: str, version: Any = None) -> dict[str, Any]:
    """What the model page and the model card show about one version of ``name``."""
    ws = view.rt.ws
    usecase_name(view, name)
    uc = ws.project.usecase(name)
    models = ws.registry.list_models(name)
    aliases = ws.registry.aliases(name)
    wanted = _version_number(view, name, version)
    if wanted is None:
        wanted = aliases.get("production") or (models[-1].version if models else None)
    mv = next((m for m in models if m.version == wanted), None)
    if wanted is not None and mv is None:
        raise NotFoundError(view.t("error.no_version", name=name, version=wanted))
    contract = _contract(view, name)
    fields = {f.name: f for f in contract.fields} if contract is not None else {}
    target = fields.get(uc.target) or next(
        (f for f in fields.values() if f.role == "target"), None)
    target_label = target.display if target is not None else uc.target
    out: dict[str, Any] = {
        "name": name, "task": uc.task.value, "target": target_label,
        "objective": objective_words(uc.objective, view.t), "mv": mv, "aliases": aliases,
        "versions": list(reversed(models)), "promotable": PROMOTABLE,
        "can_rollback": "previous" in aliases,
        "done": view.request.query_params.get("done"),
    }
    if mv is None:
        return out
    summary = mv.summary
    importances = sorted(((fields[k].display if k in fields else k, float(v))
                          for k, v in (summary.get("importances") or {}).items()
                          if isinstance(v, (int, float)) and v > 0),
                         key=lambda kv: -kv[1])[:TOP_IMPORTANCES]
    total = sum(v for _, v in importances) or 1.0
    out.update(
        sentences=metric_sentences(uc.task.value, mv.metrics, view.t, target=target_label,
                                   unit=target.unit if target is not None else None),
        gate_passed=mv.gate_passed, gate=gate_lines(mv.gate, view.t),
        importances=[(label, round(100 * v / total)) for label, v in importances],
        lineage={"dataset_version": mv.dataset_version, "trained_by": mv.trained_by,
                 "created_at": mv.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                 "estimator": summary.get("estimator"), "n_train": summary.get("n_train"),
                 "n_holdout": summary.get("n_holdout"),
                 "imported_by": summary.get("imported_by")},
        transitions=[tr for tr in ws.registry.list_transitions(name, mv.version)],
        fields=[f for f in contract.inputs] if contract is not None else [],
    )
    return out


def usecase(view: View, name: str) -> dict[str, Any]:
    from planta.store.alerts import AlertStore
    from planta.ui.model_detail import detail_context

    ctx = model_context(view, name, view.request.query_params.get("version"))
    active = len(AlertStore(view.rt.ws.store).list(usecase=name, state="active"))
    return {**ctx, **detail_context(view, name, ctx["mv"]), "active_alerts": active}


def version(view: View, name: str, version: str) -> dict[str, Any]:
    """A version's own page: in depth, beside production, approval moves (planta.ui.approvals)."""
    from planta.ui.approvals import version_page

    return version_page(view, name, version)


def card(view: View, name: str, version: str) -> dict[str, Any]:
    ctx = model_context(view, name, version)
    if ctx["mv"] is None:
        raise NotFoundError(view.t("error.no_version", name=name, version=version[:30]))
    return ctx


def score_fields(contract: Any, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The score form's inputs, one per contract input field (label, unit, range, choices)."""
    values = values or {}
    out = []
    for f in contract.inputs:
        low, high = f.lower_bound, f.upper_bound
        if f.kind == "integer":
            # With step=1 the browser counts steps from min: 996.2 would refuse 1500.
            low = None if low is None else math.ceil(low)
            high = None if high is None else math.floor(high)
        # "Torque [Nm]" with unit Nm shows as "Torque" and the unit beside it, not twice.
        label = f.display.split("[")[0].strip() if f.unit and "[" in f.display else f.display
        out.append({"name": f.name, "label": label, "unit": f.unit, "kind": f.kind,
                    "min": None if low is None else f"{low:.6g}",
                    "max": None if high is None else f"{high:.6g}",
                    "step": "1" if f.kind == "integer" else "any",
                    "choices": list(f.categories or ()), "required": not f.nullable,
                    "value": values.get(f.name, ""), "description": f.description})
    return out


def score(view: View, name: str) -> dict[str, Any]:
    usecase_name(view, name)
    route = view.rt.hub.routing.routes.get(name)
    scorer = None if route is None else (route.production or route.canary)
    uc = view.rt.ws.project.usecase(name)
    target = next((f.display for f in scorer.contract.fields if f.role == "target"), uc.target) \
        if scorer is not None else uc.target
    return {"name": name, "live": scorer is not None, "target": target,
            "version": scorer.version if scorer is not None else None,
            "fields": score_fields(scorer.contract) if scorer is not None else [],
            "result": None, "problems": {}, "problem": None}


def audit(view: View) -> dict[str, Any]:
    query = view.request.query_params
    action_text = (query.get("action") or "").strip().lower()[:100]
    subject_text = (query.get("subject") or "").strip().lower()[:200]
    # The trail holds one event per change (not per prediction), so reading it whole is cheap
    # next to verify(), which re-hashes it all anyway.
    events = view.rt.ws.audit.events(limit=None)
    shown = [e for e in reversed(events)
             if action_text in e.action.lower() and subject_text in e.subject.lower()]
    return {"events": shown[:AUDIT_ROWS], "n_matching": len(shown), "n_total": len(events),
            "action": action_text, "subject": subject_text,
            "verification": view.rt.ws.audit.verify()}


def login(view: View) -> dict[str, Any]:
    return {"error": None}


PAGES: list[Page] = [
    Page("nav.usecases", "/ui", "home.html", home),
    Page("nav.audit", "/ui/audit", "audit.html", audit),
    Page("nav.usecase", "/ui/usecases/{name}", "usecase.html", usecase, in_nav=False),
    Page("nav.card", "/ui/usecases/{name}/versions/{version}/card", "card.html", card,
         in_nav=False),
    Page("nav.score", "/ui/usecases/{name}/score", "score.html", score, in_nav=False),
    Page("approve.nav", "/ui/usecases/{name}/versions/{version}", "version.html", version,
         in_nav=False),
    Page("nav.login", "/ui/login", "login.html", login, in_nav=False, role=None),
    Page("nav.batch", "/ui/usecases/{name}/batch", "batch.html", uploads.batch, in_nav=False),
    Page("nav.job", "/ui/jobs/{job_id}", "job.html", uploads.job, in_nav=False),
    Page("nav.monitoring", "/ui/usecases/{name}/monitoring", "monitoring.html",
         monitoring_page.monitoring, in_nav=False),
    Page("nav.performance", "/ui/usecases/{name}/performance", "performance.html",
         performance_page.performance, in_nav=False),
    Page("nav.feedback", "/ui/usecases/{name}/feedback", "feedback.html", uploads.feedback,
         in_nav=False),
    Page("nav.alerts", "/ui/alerts", "alerts.html", alert_pages.alerts),
    Page("nav.devices", "/ui/devices", "devices.html", device_pages.devices),
    Page("nav.tokens", "/ui/tokens", "tokens.html", token_pages.tokens, role=Role.ADMIN),
    Page("wizard.nav", "/ui/wizard", "wizard_start.html", wizard.start, role=Role.OPERATOR),
    Page("wizard.nav_draft", "/ui/wizard/{draft}", "wizard_draft.html", wizard.draft,
         in_nav=False, role=Role.OPERATOR),
    Page("wizard.nav_data", "/ui/usecases/{name}/data", "wizard_data.html", wizard.data,
         in_nav=False),
    Page("wizard.nav_training", "/ui/usecases/{name}/training/{training:training_id}",
         "wizard_training.html", wizard.training, in_nav=False),
]

__all__ = ["PAGES", "Page", "model_context", "score_fields", "usecase_name"]

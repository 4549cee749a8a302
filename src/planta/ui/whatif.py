"""What-if on the score page: change an input of the last scored record, see the prediction
move (``POST /ui/usecases/{name}/whatif``).

The form carries the record as it was scored (hidden ``base.<field>`` inputs) and the same
fields, editable. Both records are scored together by the live model's own scorer, with the
contract checked as for any prediction, and the page shows the prediction and its reasons
before and after. Nothing is written to the prediction log: a what-if is a question, not a
prediction the plant acted on, and it must not skew monitoring. Operator role, as scoring.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from planta.core.lifecycle import Role
from planta.errors import ContractError
from planta.server.guard import require
from planta.ui.actions import _form, _record, _shown, live_scorer
from planta.ui.pages import score as score_context
from planta.ui.pages import score_fields
from planta.ui.view import View
from planta.ui.words import reason_words

BASE = "base."


def _outcome(view: View, scorer: Any, batch: Any, i: int, labels: dict[str, Any],
             target: str) -> dict[str, Any]:
    kind = scorer.task.value
    out = batch.record(i)
    probability = out.get("probability")
    prediction = out["prediction"]
    if kind == "binary" and scorer.classes:
        positive = str(prediction) == str(scorer.classes[-1])
        shown = view.t("score.binary", target=target,
                       answer=view.t("score.yes" if positive else "score.no"))
        number: float | None = probability if isinstance(probability, float) else None
    elif kind == "multiclass" and isinstance(probability, dict):
        shown = view.t("score.other", value=_shown(prediction))
        number = probability.get(prediction)
    else:
        shown = view.t("score.other", value=_shown(prediction))
        number = float(prediction) if isinstance(prediction, (int, float)) else None
    reasons = [reason_words(r, view.t, label=labels[r["field"]].display
                            if r.get("field") in labels else str(r.get("field")),
                            unit=labels[r["field"]].unit if r.get("field") in labels else None,
                            kind=kind)
               for r in out.get("reasons") or ()]
    risk = round(number * 100, 1) if number is not None and kind != "regression" else None
    return {"prediction": shown, "risk": risk, "number": number, "reasons": reasons,
            "flagged": bool(out.get("flagged"))}


async def whatif(view: View, name: str) -> Response:
    """Score the original and the changed record side by side; log neither."""
    require(view.request.scope["state"], Role.OPERATOR, "trying a what-if")
    ctx = await run_in_threadpool(score_context, view, name)
    if not ctx["live"]:
        return view.render("score.html", ctx, status=409)
    form = await _form(view.request)
    scorer = live_scorer(view, name)
    fields = list(scorer.contract.inputs)
    labels = {f.name: f for f in fields}
    base_form = {k[len(BASE):]: v for k, v in form.items() if k.startswith(BASE)}
    try_form = {k: v for k, v in form.items() if not k.startswith(BASE)}
    base, changed = _record(fields, base_form), _record(fields, try_form)
    ctx["fields"] = score_fields(scorer.contract, base_form)
    whatif_ctx: dict[str, Any] = {"base_fields": ctx["fields"],
                                  "try_fields": score_fields(scorer.contract, try_form),
                                  "problems": {}, "problem": None, "version": scorer.version}
    ctx["whatif"] = whatif_ctx
    opts = view.rt.options
    try:
        batch = await run_in_threadpool(lambda: scorer.predict(
            [base, changed], explain=True, range_policy=opts.range_policy,
            extra_policy=opts.extra_policy))
    except ContractError as exc:
        problems: dict[str, list[str]] = {}
        base_broken = False
        for v in exc.violations:
            if v.row == 0:
                base_broken = True
                continue
            f = labels.get(v.field) if v.field else None
            text = view.t(f"rule.{v.rule}", value=_shown(v.value),
                          low=_shown(f.lower_bound if f else None),
                          high=_shown(f.upper_bound if f else None))
            problems.setdefault(v.field or "", []).append(
                text if text != f"rule.{v.rule}" else v.message)
        whatif_ctx.update(problems=problems, problem=view.t(
            "model.whatif_base_refused" if base_broken and not problems
            else "model.whatif_refused"))
        return view.render("score.html", ctx, status=422)
    before = _outcome(view, scorer, batch, 0, labels, ctx["target"])
    after = _outcome(view, scorer, batch, 1, labels, ctx["target"])
    changes = [view.t("model.whatif_change", name=f.display, before=_shown(base[f.name]),
                      after=_shown(changed[f.name]))
               for f in fields if base[f.name] != changed[f.name]]
    if before["risk"] is not None and after["risk"] is not None:
        moved = view.t("model.whatif_moved_risk", before=f"{before['risk']:g}",
                       after=f"{after['risk']:g}",
                       delta=f"{after['risk'] - before['risk']:+.1f}")
    else:
        moved = view.t("model.whatif_moved", before=before["prediction"],
                       after=after["prediction"])
    whatif_ctx.update(before=before, after=after, changes=changes, moved=moved)
    return view.render("score.html", ctx)


__all__ = ["whatif"]

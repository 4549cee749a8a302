"""Metrics, objectives, gate verdicts and reasons in plant words, for the CLI and the web UI.

A metric in the registry is ``{"value": v, "lower": l, "upper": u}`` (the 95 % bootstrap
interval on the holdout). A sentence counts out of 100 (or 1,000 when the rate is small) and
says "give or take" half the interval's width, or names both ends when the interval is
lopsided (near 0 % or 100 %)::

    recall 0.84 (0.79–0.89)  →  "Out of 100 real cases of “Machine failure”, this model
                                 would catch 84, give or take 5."
    precision 1.0 (0.70–1.0) →  "Out of 100 alarms it raises, 100 would be real cases of
                                 “Machine failure”, somewhere between 70 and 100."

Only metrics with a sentence are shown; a name like ROC-AUC never appears without its plain
line beside it.

>>> from planta.i18n import translator
>>> metric_sentences("binary", {"recall": {"value": 0.84, "lower": 0.79, "upper": 0.89}},
...                  translator("en"), target="failure")
['Out of 100 real cases of “failure”, this model would catch 84, give or take 5.']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from planta.i18n import Translate, marks

# Which metrics each task shows, in order: the ones an engineer asks about first.
SHOWN = {
    "binary": ("recall", "precision", "false_alarm_rate", "roc_auc"),
    "multiclass": ("accuracy", "f1_macro", "balanced_accuracy"),
    "regression": ("mae", "rmse", "mape", "r2"),
}
# Counted out of 100 ("catch 84 out of 100") rather than quoted as a number.
_OPS = {">=": "≥", "<=": "≤"}
_COUNTED = {"recall", "precision", "false_alarm_rate", "accuracy", "balanced_accuracy", "r2",
            "mape"}


def localized(text: str, t: Translate) -> str:
    """A number written the English way ("1,234.5") in ``t``'s language: the catalogue's
    ``num.group`` and ``num.decimal`` ("1.234,5" in Spanish).

    >>> from planta.i18n import translator
    >>> localized("1,234.5", translator("es")), localized("0.84", translator("en"))
    ('1.234,5', '0.84')
    """
    return marks(text, t("num.group"), t("num.decimal"))


def _number(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _width(x: float) -> str:
    # Two significant digits: "give or take 0.0092", not 0.00923.
    return f"{x:.2g}" if abs(x) < 100 else f"{x:,.0f}"


def _estimate(doc: Any) -> tuple[float, float | None, float | None] | None:
    if isinstance(doc, (int, float)):
        return float(doc), None, None
    if isinstance(doc, Mapping) and isinstance(doc.get("value"), (int, float)):
        low, high = doc.get("lower"), doc.get("upper")
        return (float(doc["value"]), float(low) if isinstance(low, (int, float)) else None,
                float(high) if isinstance(high, (int, float)) else None)
    return None


def metric_sentences(task: str, metrics: Mapping[str, Any], t: Translate, *, target: str,
                     unit: str | None = None) -> list[str]:
    """One sentence per shown metric that the registry holds."""
    out: list[str] = []
    for name in SHOWN.get(task, ()):
        found = _estimate(metrics.get(name))
        if found is None:
            continue
        value, low, high = found
        width = (high - low) / 2 if low is not None and high is not None else None
        if name in _COUNTED:
            # A rare event (false alarms) reads better out of 1,000 than as "0 out of 100".
            base = 1000 if name == "false_alarm_rate" and value < 0.05 else 100
            kw = {"n": round(value * base), "base": localized(f"{base:,}", t),
                  "target": target}
            if low is not None and high is not None and _lopsided(value, low, high):
                # At 100 % (9 alarms of 9), "100, give or take 15" would promise up to 115
                # out of 100: name the two ends instead.
                out.append(t(f"metric.{name}", **kw) + t(
                    "metric.between", low=round(low * base), high=round(high * base)) + ".")
                continue
            counted = None if width is None else str(round(width * base))
            out.append(_with_pm(t, name, counted, **kw))
        else:
            suffix = f" {unit}" if unit and name in ("mae", "rmse") else ""
            shown = f"{value * 100:.0f}" if name == "f1_macro" else localized(_number(value), t)
            quoted = None if width is None else (f"{width * 100:.0f}" if name == "f1_macro"
                                                 else localized(_width(width), t))
            out.append(_with_pm(t, name, quoted, n=shown + suffix, target=target))
    return out


def _lopsided(value: float, low: float, high: float) -> bool:
    """Whether "give or take" half the width would misstate the interval: one side more than
    twice the other (typical near 0 % and 100 %)."""
    below, above = value - low, high - value
    return max(below, above) > 2 * min(below, above) + 1e-9 and high > low


def _with_pm(t: Translate, name: str, pm: str | None, **kw: Any) -> str:
    sentence = t(f"metric.{name}", **kw)
    if pm is None:
        return sentence + "."
    return sentence + t("metric.give_or_take", pm=pm) + "."


def objective_words(objective: Any, t: Translate) -> str:
    """The use case's objective (:class:`planta.core.spec.Objective`) in plain words."""
    if objective is None:
        return t("objective.none")
    cost = getattr(objective, "cost", None)
    if cost is not None:
        return t("objective.cost", missed=f"{cost.missed:g}", false_alarm=f"{cost.false_alarm:g}")
    parts = []
    for c in objective.clauses:
        op = t("objective.at_least") if c.op == ">=" else t("objective.at_most")
        key = f"objective.{c.metric}"
        text = t(key, op=op, pct=f"{c.target * 100:.0f} %", v=f"{c.target:g}")
        parts.append(text if text != key else f"{c.metric} {c.op} {c.target:g}")
    return "; ".join(parts)


def gate_lines(gate: Mapping[str, Any], t: Translate) -> list[str]:
    """The objective gate's verdict, one line per clause of the objective."""
    clauses: Sequence[Any] = gate.get("clauses") or ()
    lines = []
    for c in clauses:
        if not isinstance(c, Mapping) or "metric" not in c:
            continue
        low, high = c.get("lower"), c.get("upper")
        interval = (t("gate.interval", low=localized(_number(low), t),
                      high=localized(_number(high), t))
                    if isinstance(low, (int, float)) and isinstance(high, (int, float)) else "")
        lines.append(t("gate.clause_met" if c.get("passed") else "gate.clause_missed",
                       metric=t(f"metric_name.{c['metric']}"),
                       value=localized(_number(c["value"]), t),
                       interval=interval, op=_OPS.get(c.get("op", ""), c.get("op", "")),
                       target=localized(_number(c["target"]), t)))
    if not lines:  # an imported bundle, or a cost objective: the gate's own words
        lines = [str(r) for r in gate.get("reasons") or ()]
    return lines


def reason_words(reason: Mapping[str, Any], t: Translate, *, label: str,
                 unit: str | None, kind: str) -> str:
    """One reason of a prediction ("torque is high (62 Nm, usual 30–50) → +35 % risk")."""
    value = reason.get("value")
    shown = t("reason.missing") if value is None else (
        localized(_number(value), t) if isinstance(value, (int, float))
        and not isinstance(value, bool)
        else str(value))
    if value is not None and unit:
        shown += f" {unit}"
    usual = reason.get("usual")
    if isinstance(usual, Sequence) and len(usual) == 2:
        shown += t("reason.usual_range", low=localized(_number(usual[0]), t),
                   high=localized(_number(usual[1]), t))
    name = label.split("[")[0].strip()
    head = t(f"reason.{reason.get('level', 'usual')}", name=name, value=shown)
    effect = float(reason.get("effect") or 0.0)
    if kind == "binary":
        return head + t("reason.risk", effect=f"{effect * 100:+.0f}")
    if kind == "regression":
        return head + t("reason.value", effect=f"{effect:+.4g}")
    return head + t("reason.class", effect=f"{effect:+.3g}")


__all__ = ["SHOWN", "gate_lines", "localized", "metric_sentences", "objective_words",
           "reason_words"]

"""Online prediction: records in, checked against the contract, predictions (and reasons) out.

One :class:`Scorer` per loaded model version. The server, the job worker and the web UI all call
:meth:`Scorer.predict`, so a record is judged by the same rules everywhere; there is no pandas on
this path: JSON values go to numpy arrays, then straight into the model. The model's trees run in
onnxruntime when that gives exactly the native predictor's numbers (checked at load; about 4×
faster per single-record call, see planta.services.onnx_engine); otherwise, and always for
explanations, on the native boosters.

    records ─► validate_records (planta_edge.contract) ─► OnnxEngine / Predictor ─► PredictionBatch
                   │ any record breaks a rule                    │ explain=True
                   ▼                                             ▼
             ContractError (every violation,               reason codes: "torque is high
             with record index, field, rule)               (62 Nm, usual 30–50) → +35 % risk"
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planta.core.models import Predictor
from planta.core.spec import Task
from planta.errors import ContractError, keyed, violation_said
from planta.i18n import said
from planta.services.onnx_engine import MAX_ENGINE_ROWS, OnnxEngine, build_engine
from planta_edge.bundle import Bundle
from planta_edge.contract import Contract, Violation, validate_records

# How many violations a refused request reports (the count is always exact).
MAX_REPORTED_VIOLATIONS = 100

log = logging.getLogger("planta.predict")


@dataclass(frozen=True)
class Checked:
    """The records as the contract read them, exactly as ``validate_records(contract, records,
    range_policy="flag", extra_policy="ignore")`` reads them, which is how monitoring counts
    the log: kept with a logged batch so that the count need not validate the records again.
    """

    contract: Contract
    values: Mapping[str, np.ndarray]
    flagged: np.ndarray


@dataclass
class PredictionBatch:
    """What a scorer said about a list of records, in record order."""

    version: int
    prediction: list[Any]
    probability: list[Any] | None      # binary: P(positive); multiclass: {class: p}
    score: list[float] | None          # regression
    flagged: list[bool]                # broke a range rule under the ``flag`` policy
    reasons: list[list[dict[str, Any]]] | None = None
    entities: list[Any] | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    checked: Checked | None = None

    @property
    def n(self) -> int:
        return len(self.prediction)

    def outputs(self) -> dict[str, Any]:
        """The log's ``outputs`` document."""
        return {"prediction": self.prediction, "probability": self.probability,
                "score": self.score}

    def part(self, lo: int, hi: int) -> PredictionBatch:
        """Records ``lo`` to ``hi`` (excluded) as a batch of their own: the share of one
        request in a batch scored for several (planta.server.turns)."""
        checked = self.checked
        if checked is not None:
            checked = Checked(checked.contract, {k: v[lo:hi] for k, v in checked.values.items()},
                              checked.flagged[lo:hi])

        def cut(column: list[Any] | None) -> list[Any] | None:
            return None if column is None else column[lo:hi]

        return PredictionBatch(version=self.version, prediction=self.prediction[lo:hi],
                               probability=cut(self.probability), score=cut(self.score),
                               flagged=self.flagged[lo:hi], reasons=cut(self.reasons),
                               entities=cut(self.entities), inputs=self.inputs[lo:hi],
                               checked=checked)

    def record(self, i: int) -> dict[str, Any]:
        """Record ``i``'s answer (without its prediction id)."""
        out: dict[str, Any] = {"prediction": self.prediction[i], "model_version": self.version}
        if self.probability is not None:
            out["probability"] = self.probability[i]
        if self.score is not None:
            out["score"] = self.score[i]
        if self.flagged[i]:
            out["flagged"] = True
        if self.reasons is not None:
            out["reasons"] = self.reasons[i]
        return out


class Scorer:
    """A loaded model version: its contract, its predictor and what explanations need."""

    def __init__(self, usecase: str, version: int, digest: str, contract: Contract,
                 predictor: Predictor, profile: Mapping[str, Any] | None = None,
                 output: Mapping[str, Any] | None = None, *, engine: str = "auto") -> None:
        self.usecase = usecase
        self.version = version
        self.digest = digest
        self.contract = contract
        self.predictor = predictor
        self.task = predictor.task
        self.classes = list(predictor.classes)
        self.output = dict(output or {})
        self.entity = next((f.name for f in contract.fields if f.role == "entity"), None)
        self._usual = _usual_ranges(profile or {})
        self._labels = {f.name: f for f in contract.fields}
        # Predictions go through onnxruntime when it gives exactly the native results (checked
        # here on rows drawn from the profile; see planta.services.onnx_engine); explanations
        # always use the native predictor.
        self.engine: OnnxEngine | None = None
        self.engine_note = "native predictor"
        if engine == "auto":
            choice = build_engine(predictor, profile)
            self.engine, self.engine_note = choice.engine, choice.reason
            if choice.engine is None:
                log.info("model %s v%s predicts with the native predictor: %s", usecase,
                         version, choice.reason)

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, digest: str | None = None,
                    version: int | None = None, engine: str = "auto") -> Scorer:
        """Load from a verified bundle (``planta.services.versions.load_bundle``).

        ``version`` is the registry's number, which differs from the manifest's for a bundle
        imported from another hub. ``engine="native"`` skips the onnxruntime engine.
        """
        doc = bundle.json("contract.json")
        contract = Contract.from_dict({k: v for k, v in doc.items()
                                       if k in ("fields", "target", "version")})
        profile = bundle.json("profile.json") if "profile.json" in bundle.members else {}
        number = version if version is not None else int(bundle.version or 0)
        return cls(bundle.usecase, number, digest or bundle.digest, contract,
                   Predictor.from_members(bundle.members), profile, doc.get("output"),
                   engine=engine)

    def predict(self, records: Sequence[Mapping[str, Any]], *, explain: bool = False,
                range_policy: str = "reject", extra_policy: str = "reject",
                top_reasons: int = 3) -> PredictionBatch:
        """Predictions for ``records``; refuses the whole request if any record breaks a rule.

        Raises:
            ContractError: with every violation (record index, field, rule, value, message).
        """
        checked = validate_records(self.contract, records, range_policy=range_policy,
                                   extra_policy=extra_policy)
        if not checked.ok.all():
            raise _refusal(checked.violations, checked.n_violations, int((~checked.ok).sum()),
                           len(records))
        values = checked.values
        engine = self.engine if self.engine is not None and len(records) <= MAX_ENGINE_ROWS \
            else self.predictor
        pred = engine.predict(values)
        batch = PredictionBatch(version=self.version, prediction=[], probability=None,
                                score=None, flagged=checked.flagged.tolist())
        # Clipping changes the values, so only "reject" and "flag" read the records as
        # monitoring does (under "reject", a logged batch broke no range rule).
        if range_policy in ("reject", "flag"):
            batch.checked = Checked(self.contract, values, checked.flagged)
        if self.task == Task.REGRESSION:
            assert pred.score is not None
            batch.score = pred.score.tolist()
            batch.prediction = batch.score
        else:
            batch.prediction = pred.label.tolist()
            assert pred.probability is not None
            if self.task == Task.BINARY:
                batch.probability = pred.probability.tolist()
            else:
                batch.probability = [dict(zip(self.classes, row, strict=True))
                                     for row in pred.probability.tolist()]
        if self.entity is not None and self.entity in values:
            batch.entities = values[self.entity].tolist()
        if explain:
            batch.reasons = self.explain(values, top=top_reasons)
        return batch

    def explain(self, values: Mapping[str, np.ndarray], *, top: int = 3
                ) -> list[list[dict[str, Any]]]:
        """The top reasons per row, in plant words, from the model's own contributions.

        A derived feature's contribution (``torque_nm_x_tool_wear_min``) is shared equally by
        the inputs it is made of, so every reason names a field the user sent. ``effect`` is the
        change in probability (classifiers) or in the predicted value (regression) that the
        field's contribution makes, holding the others.
        """
        contrib, names = self.predictor.contributions(values)
        if contrib.ndim == 3:  # multiclass: explain the predicted class
            margin_all = contrib.sum(axis=2)
            chosen = np.argmax(margin_all, axis=1)
            contrib = contrib[np.arange(contrib.shape[0]), chosen, :]
        steps = {s.name: (s.a, s.b) for s in self.predictor.encoding.steps}
        inputs = [n for n in names[:-1] if n not in steps]
        col = {n: i for i, n in enumerate(names)}
        per_input = np.zeros((contrib.shape[0], len(inputs)))
        pos = {n: j for j, n in enumerate(inputs)}
        for name, j in col.items():
            if name == "(baseline)":
                continue
            if name in steps:
                a, b = steps[name]
                per_input[:, pos[a]] += contrib[:, j] / 2
                per_input[:, pos[b]] += contrib[:, j] / 2
            else:
                per_input[:, pos[name]] += contrib[:, j]
        margin = contrib.sum(axis=1)
        out: list[list[dict[str, Any]]] = []
        for r in range(per_input.shape[0]):
            order = np.argsort(-np.abs(per_input[r]))[:top]
            reasons = []
            for j in order:
                c = float(per_input[r, j])
                if c == 0.0:
                    continue
                name = inputs[j]
                reasons.append(self._reason(name, values[name][r], c, float(margin[r])))
            out.append(reasons)
        return out

    def _reason(self, name: str, value: Any, contribution: float, margin: float
                ) -> dict[str, Any]:
        if self.task == Task.BINARY:
            prob = self.predictor.calibrator.probability
            now, without = prob(np.array([margin, margin - contribution])).tolist()
            effect = now - without
            unit = "risk"
        elif self.task == Task.REGRESSION:
            effect, unit = contribution, "value"
        else:
            effect, unit = contribution, "log-odds"
        f = self._labels.get(name)
        label = f.label if f is not None and f.label else name
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif isinstance(value, np.generic):
            value = value.item()
        usual = self._usual.get(name)
        level = "usual"
        if usual is not None and isinstance(value, (int, float)):
            level = "high" if value > usual[1] else "low" if value < usual[0] else "usual"
        text = _reason_text(label, value, f.unit if f is not None else None, usual, level,
                            effect, unit)
        reason: dict[str, Any] = {"field": name, "value": value, "level": level,
                                  "contribution": round(contribution, 6),
                                  "effect": round(effect, 6), "text": text}
        if usual is not None:
            reason["usual"] = list(usual)
        return reason


def _usual_ranges(profile: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """The middle 90 % (p5–p95) of each numeric field in the training data."""
    out: dict[str, tuple[float, float]] = {}
    for name, prof in (profile.get("fields") or {}).items():
        q = prof.get("quantiles") or {}
        if "p5" in q and "p95" in q and q["p5"] is not None and q["p95"] is not None:
            out[name] = (float(q["p5"]), float(q["p95"]))
    return out


def _num(x: float) -> str:
    return f"{x:.4g}"


def _reason_text(label: str, value: Any, unit: str | None, usual: tuple[float, float] | None,
                 level: str, effect: float, kind: str) -> str:
    suffix = f" {unit}" if unit else ""
    shown = "missing" if value is None else (_num(value) if isinstance(value, (int, float))
                                             else str(value))
    where = f"{shown}{suffix if value is not None else ''}"
    if usual is not None:
        where += f", usual {_num(usual[0])}–{_num(usual[1])}"
    name = label.split("[")[0].strip()
    head = f"{name} is {level} ({where})" if level != "usual" else f"{name} ({where})"
    if kind == "risk":
        points = effect * 100
        if abs(points) < 0.5:
            return f"{head} → {'+' if points >= 0 else '−'}<1 % risk"
        return f"{head} → {points:+.0f} % risk"
    if kind == "value":
        return f"{head} → {effect:+.4g} on the prediction"
    return f"{head} → {effect:+.3g} toward this class"


def _refusal(violations: list[Violation], n_violations: int, n_bad: int,
             n_records: int) -> ContractError:
    # Keyed, so that the API can say it in the caller's language (Accept-Language).
    first: Any = (violation_said(violations[0]) or violations[0].message) if violations else \
        said("api.refused.any")
    more: Any = said("api.refused.more", problems=n_violations, bad=n_bad,
                     records=n_records) if n_violations > 1 else ""
    return keyed(ContractError, "api.refused", violations[:MAX_REPORTED_VIOLATIONS],
                 first=first, more=more)


__all__ = ["MAX_REPORTED_VIOLATIONS", "PredictionBatch", "Scorer"]

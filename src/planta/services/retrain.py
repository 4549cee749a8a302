"""Continuous training: new data and ground truth in, a candidate compared with production out.

    latest dataset version ─┐
    feedback-labelled       ├─► new dataset version (same contract checks; lineage: the base
    predictions (inputs     │   dataset version and a digest of every prediction id + label)
    from the prediction log)┘
          │ train_version: the same search and objective gate as `planta train`
          ▼
    candidate (or rejected) ──► paired comparison with production on the candidate's holdout
          │                    (the latest rows in time, else the stratified sample: both
          │                    models score exactly the same rows) ──► comparison report,
          │                    an artifact referenced by an audit event ("compare")
          ▼
    retrain_policy (planta.toml): manual → stays candidate; canary / shadow → moved there only
    when the gate passed AND the candidate beats production with confidence. Nothing reaches
    production here: that stays a person's approval.

Every step is an audit event: retrain_data, train, compare, the policy's move, retrain (or
retrain_failed, with the reason).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from planta.core.compare import N_RESAMPLES, compare, describe, metric_for
from planta.core.lifecycle import Role, State
from planta.core.profile import profile_frame
from planta.core.spec import Task, UseCase
from planta.core.validation import check_frame
from planta.errors import InputError, NotFoundError, PlantaError
from planta.services.ingest import frame_to_parquet, load_contract, parquet_to_frame
from planta.services.split import FALSY, TRUTHY, holdout_rows
from planta.services.versions import TrainResult, load_bundle, load_predictor, train_version
from planta.services.workspace import Workspace
from planta.store.feedback import FeedbackStore
from planta.store.predictions import PredictionLog
from planta.store.registry import DatasetVersion
from planta_edge.bundle import canonical_json, sha256_bytes
from planta_edge.contract import Contract, validate_columns

#: Who makes a policy move in the audit trail: planta, on the standing order in planta.toml.
POLICY_ACTOR = "planta (retrain_policy)"
DEFAULT_BUDGET_S = 60.0


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retrain did, step by step, in data and in words."""

    usecase: str
    dataset_version: int
    dataset_created: bool
    base_dataset_version: int
    feedback_rows: int
    feedback_skipped: int
    version: int
    state: str
    gate_passed: bool
    champion: int | None
    comparison: dict[str, Any] | None
    comparison_digest: str | None
    policy: str
    moved_to: str | None
    lines: list[str] = field(default_factory=list)

    @property
    def beats_champion(self) -> bool:
        """True when the candidate is better than production with confidence."""
        return bool(self.comparison and self.comparison.get("verdict") == "better")

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "dataset_version": self.dataset_version,
                "dataset_created": self.dataset_created,
                "base_dataset_version": self.base_dataset_version,
                "feedback_rows": self.feedback_rows, "feedback_skipped": self.feedback_skipped,
                "version": self.version, "state": self.state, "gate_passed": self.gate_passed,
                "champion": self.champion, "beats_champion": self.beats_champion,
                "comparison": self.comparison, "comparison_sha256": self.comparison_digest,
                "policy": self.policy, "moved_to": self.moved_to, "lines": self.lines}


# ---------------------------------------------------------------------------------------------
# Labels: feedback values onto the target's own values ("1", 1, True and "yes" are one class)
# ---------------------------------------------------------------------------------------------

def label_key(value: Any) -> str:
    """A label's comparable form: ``1``, ``1.0``, ``"1"``, ``True`` and ``"yes"`` give "1".

    >>> [label_key(v) for v in (1, 1.0, "1", True, " Yes ", "fail")]
    ['1', '1', '1', '1', '1', 'fail']
    """
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(
            value).is_integer():
        return str(int(value))
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return "1" if text in TRUTHY else "0" if text in FALSY else text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def map_labels(values: list[Any], known: pd.Series, task: Task) -> tuple[list[Any], list[int]]:
    """Feedback values as the target column's own values; returns (mapped, skipped indices).

    A class label is mapped to the existing value with the same :func:`label_key`; one the
    model has never seen is skipped (a binary target cannot grow a third value). A regression
    value must be a number.
    """
    mapped: list[Any] = []
    skipped: list[int] = []
    if task == Task.REGRESSION:
        for i, v in enumerate(values):
            try:
                number = float(v)
            except (TypeError, ValueError):
                number = math.nan
            if math.isfinite(number):
                mapped.append(number)
            else:
                skipped.append(i)
        return mapped, skipped
    by_key = {label_key(v): v for v in known.dropna().unique().tolist()}
    for i, v in enumerate(values):
        key = label_key(v)
        if key in by_key:
            mapped.append(by_key[key])
        else:
            skipped.append(i)
    return mapped, skipped


# ---------------------------------------------------------------------------------------------
# The new dataset version
# ---------------------------------------------------------------------------------------------

def _snapshot(ws: Workspace, dv: DatasetVersion) -> pd.DataFrame:
    if dv.snapshot_digest is None:
        raise NotFoundError(f"Dataset version {dv.version} of {dv.usecase!r} has no stored rows.",
                            hint=f"Ingest the data again with `planta ingest {dv.usecase} FILE`.")
    return parquet_to_frame(ws.artifacts.get_bytes(dv.snapshot_digest))


def _contract(ws: Workspace, dv: DatasetVersion) -> Contract:
    """The project's contract, else the one the dataset version was checked with."""
    contract = load_contract(ws, dv.usecase)
    if contract is None and dv.contract_digest is not None:
        contract = Contract.from_dict(json.loads(ws.artifacts.get_bytes(dv.contract_digest)))
    if contract is None:
        raise NotFoundError(f"Use case {dv.usecase!r} has no contract.",
                            hint=f"Run `planta ingest {dv.usecase} FILE` to infer one.")
    return contract


@dataclass(frozen=True)
class _Data:
    version: int
    created: bool
    base: int
    n_feedback: int
    n_skipped: int
    lineage: dict[str, Any]


def _feedback_frame(ws: Workspace, usecase: UseCase, contract: Contract, target: str,
                    known: pd.Series) -> tuple[pd.DataFrame, list[list[Any]], int]:
    """Logged inputs of every prediction with ground truth, the target set from it."""
    log = PredictionLog(ws.store)
    try:
        joined = FeedbackStore(ws.store, log).joined(usecase.name)
    finally:
        log.close()
    # A shadow answer repeats a production one; the row is learned from once.
    joined = [(r, v) for r, v in joined if r.route != "shadow"]
    labels, skipped = map_labels([v for _, v in joined], known, usecase.task)
    skip = set(skipped)
    rows: list[dict[str, Any]] = []
    pairs: list[list[Any]] = []
    time_name = contract.resolve(usecase.time) if usecase.time else None
    for i, (record, value) in enumerate(joined):
        if i in skip:
            continue
        # The log keeps each record as the client sent it: the contract's labels ("Torque
        # [Nm]") as often as its canonical names, which the dataset's columns are.
        row = {contract.resolve(str(k)) or k: v for k, v in record.inputs.items()}
        if time_name and row.get(time_name) is None:
            row[time_name] = record.at.isoformat()   # when it was predicted, if not sent
        rows.append(row)
        pairs.append([record.prediction_id, value])
    frame = pd.DataFrame(rows)
    if len(frame):
        frame[target] = labels
    return frame, pairs, len(skipped)


def build_dataset(ws: Workspace, usecase_name: str, *, actor: str) -> _Data:
    """The latest dataset version plus feedback-labelled predictions, as a new version."""
    usecase = ws.project.usecase(usecase_name)
    # The latest *ingested* version: a retrain's own version already holds feedback, and
    # stacking on it would count the same predictions twice. So each retrain is "latest data
    # + all feedback so far", and a retrain with nothing new gives the same dataset version.
    versions = ws.registry.list_dataset_versions(usecase_name)
    base = next((dv for dv in reversed(versions)
                 if (dv.report.get("lineage") or {}).get("kind") != "retrain"), None)
    if base is None:
        raise NotFoundError(f"Use case {usecase_name!r} has no data yet: there is nothing to "
                            "retrain from.", hint=f"Run `planta ingest {usecase_name} <file>`.")
    contract = _contract(ws, base)
    target = contract.target or usecase.target
    base_frame = _snapshot(ws, base)
    fb, pairs, n_skipped = _feedback_frame(ws, usecase, contract, target, base_frame[target])
    feedback_digest = ws.artifacts.put_bytes(canonical_json(
        {"format": "planta.retrain_feedback/1", "usecase": usecase_name,
         "predictions": pairs}))
    lineage = {"kind": "retrain", "base_dataset_version": base.version,
               "base_content_sha256": base.content_hash, "feedback_rows": len(pairs),
               "feedback_skipped": n_skipped, "feedback_sha256": feedback_digest,
               "first_prediction_id": pairs[0][0] if pairs else None,
               "last_prediction_id": pairs[-1][0] if pairs else None}
    if not len(fb):
        return _Data(base.version, False, base.version, 0, n_skipped, lineage)
    # Production data may lie beyond the training ranges (that is why we retrain): such
    # rows are kept and flagged; physical limits and types still quarantine.
    checked = check_frame(contract, pd.concat([base_frame.astype(object), fb.astype(object)],
                                              ignore_index=True), range_policy="flag")
    snapshot = frame_to_parquet(checked.accepted)
    report = dict(checked.report) | {"lineage": lineage}
    dv, created = ws.registry.add_dataset_version(
        usecase=usecase_name, content_hash=sha256_bytes(snapshot),
        snapshot_digest=ws.artifacts.put_bytes(snapshot),
        profile_digest=ws.artifacts.put_bytes(canonical_json(
            profile_frame(checked.accepted, contract))),
        contract_digest=ws.artifacts.put_bytes(canonical_json(contract.to_dict())),
        source_name=f"retrain: dataset v{base.version} + {len(pairs)} labelled predictions",
        source_hash=feedback_digest, n_rows=len(base_frame) + len(fb),
        n_accepted=len(checked.accepted), n_rejected=len(base_frame) + len(fb) - len(
            checked.accepted), report=report, created_by=actor)
    if created:
        ws.audit.append("retrain_data", f"usecase/{usecase_name}/dataset/{dv.version}", actor,
                        lineage | {"content_hash": dv.content_hash,
                                   "accepted": dv.n_accepted, "rejected": dv.n_rejected})
    return _Data(dv.version, created, base.version, len(pairs), n_skipped, lineage)


# ---------------------------------------------------------------------------------------------
# Paired comparison of two versions on the same rows
# ---------------------------------------------------------------------------------------------

def holdout_positions(frame: pd.DataFrame, usecase: UseCase, contract: Contract,
                      seed: int) -> np.ndarray:
    """The rows of ``frame`` that training held out (the same split, recomputed)."""
    return holdout_rows(frame, usecase, contract.target or usecase.target, seed)


def _scores(ws: Workspace, usecase: str, version: int, frame: pd.DataFrame
            ) -> tuple[np.ndarray, np.ndarray, float, list[str]]:
    """(rows the version's contract accepts, its predictions, threshold, classes)."""
    predictor, contract = load_predictor(load_bundle(ws, usecase, version))
    checked = validate_columns(contract, {c: frame[c].to_numpy(dtype=object)
                                          for c in frame.columns},
                               range_policy="flag", extra_policy="ignore")
    pred = predictor.predict(checked.values)
    if predictor.task == Task.REGRESSION:
        assert pred.score is not None
        out = np.asarray(pred.score, dtype=float)
    else:
        assert pred.probability is not None
        out = np.asarray(pred.probability, dtype=float)
    return np.asarray(checked.ok, dtype=bool), out, predictor.threshold, list(predictor.classes)


def _row_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    cols = [c for c in columns if c in frame.columns]
    return pd.util.hash_pandas_object(frame[cols].astype(str), index=False)


def compare_on_rows(ws: Workspace, usecase_name: str, candidate: int, champion: int,
                    frame: pd.DataFrame, *, source: str, seed: int = 0,
                    n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """Score ``frame`` with both versions and compare them, paired, row by row."""
    usecase = ws.project.usecase(usecase_name)
    cand_mv = ws.registry.get_model(usecase_name, candidate)
    champ_mv = ws.registry.get_model(usecase_name, champion)
    contract = load_contract(ws, usecase_name)
    target = (contract.target if contract is not None and contract.target else
              usecase.target)
    frame = frame[frame[target].notna()].reset_index(drop=True)
    ok_a, pred_a, thr_a, classes_a = _scores(ws, usecase_name, candidate, frame)
    ok_b, pred_b, thr_b, classes_b = _scores(ws, usecase_name, champion, frame)
    task = usecase.task
    keys_a = [label_key(c) for c in classes_a]
    if task != Task.REGRESSION and sorted(keys_a) != sorted(label_key(c) for c in classes_b):
        raise InputError(f"Versions {candidate} and {champion} of {usecase_name!r} predict "
                         f"different classes ({classes_a} vs {classes_b}): they cannot be "
                         "compared row by row.")
    ok = ok_a & ok_b
    if task == Task.REGRESSION:
        y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=float)
        ok &= np.isfinite(y)
    else:
        truth = [label_key(v) for v in frame[target].tolist()]
        index = {k: i for i, k in enumerate(keys_a)}
        codes = np.asarray([index.get(k, -1) for k in truth])
        ok &= codes >= 0
        y = codes
        if task == Task.MULTICLASS:  # the champion's columns in the candidate's class order
            order = [[label_key(c) for c in classes_b].index(k) for k in keys_a]
            pred_b = pred_b[:, order]
    n_dropped = int((~ok).sum())
    y, pred_a, pred_b = y[ok], pred_a[ok], pred_b[ok]
    days = (len(y) / usecase.rows_per_day) if usecase.rows_per_day else None
    goal = usecase.objective.goal
    metric = metric_for(task, goal.metric if goal else (
        "savings" if usecase.objective.cost is not None else None))
    if metric == "false_alarms_per_day" and days is None:
        metric = "false_alarm_rate"
    result = compare(task, y, pred_a, pred_b, metric=metric, threshold_a=thr_a,
                     threshold_b=thr_b, days=days, cost=usecase.objective.cost, seed=seed,
                     n_resamples=n_resamples)
    report = result.to_dict()
    # Rows the current model learned from favour it; say how many there were.
    seen = None
    if champ_mv.dataset_version is not None:
        champ_dv = ws.registry.get_dataset_version(usecase_name, champ_mv.dataset_version)
        if champ_dv.snapshot_digest:
            old = _snapshot(ws, champ_dv)
            columns = [c for c in frame.columns if c in old.columns]
            seen = int(_row_keys(frame[ok], columns).isin(set(_row_keys(old, columns))).sum())
    new, current = ((f"the new model (version {candidate})", f"production (version {champion})")
                    if champ_mv.is_production else (f"version {candidate}", f"version {champion}"))
    words = describe(report, new=new, current=current)
    if seen:
        words.insert(1, f"{seen} of these records were in the data version {champion} learned "
                        "from, which favours it.")
    if n_dropped:
        words.insert(1, f"{n_dropped} records were left out: one of the two models' contracts "
                        "refuses them, or they have no known answer.")
    return {"format": "planta.retrain_comparison/1", "usecase": usecase_name,
            "candidate": candidate, "champion": champion,
            "candidate_dataset_version": cand_mv.dataset_version,
            "champion_dataset_version": champ_mv.dataset_version,
            "rows": {"source": source, "n": int(len(y)), "dropped": n_dropped,
                     "seen_by_champion": seen},
            "comparison": report, "verdict": report["verdict"],
            "p_value": report["p_value"], "words": words,
            "created_at": datetime.now(UTC).isoformat()}


def compare_versions(ws: Workspace, usecase_name: str, candidate: int | str,
                     champion: int | str = "production", *,
                     n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """Compare two versions on the candidate's holdout rows (recomputed from its dataset
    version and seed), paired. Raises :class:`NotFoundError` for an unknown version.

    ``n_resamples``: fewer make it quicker. On AI4I (1,720 held-out rows, ROC-AUC), 1,000
    took 60 % of the time of the default 2,000 and moved the interval's ends by < 0.01."""
    usecase = ws.project.usecase(usecase_name)
    cand = ws.registry.resolve(usecase_name, candidate)
    champ = ws.registry.resolve(usecase_name, champion)
    if cand.dataset_version is None:
        raise InputError(f"Version {cand.version} of {usecase_name!r} was imported without its "
                         "data: there are no held-out rows to compare on.")
    dv = ws.registry.get_dataset_version(usecase_name, cand.dataset_version)
    contract = _contract(ws, dv)
    frame = _snapshot(ws, dv)
    seed = int(load_bundle(ws, usecase_name, cand.version).json("lineage.json").get("seed") or 0)
    hold = holdout_positions(frame, usecase, contract, seed)
    split = (cand.summary.get("cv") or {}).get("holdout") or "held-out rows"
    return compare_on_rows(ws, usecase_name, cand.version, champ.version,
                           frame.iloc[hold].reset_index(drop=True),
                           source=f"version {cand.version}'s held-out rows of dataset "
                                  f"version {dv.version} ({split})", n_resamples=n_resamples)


def store_comparison(ws: Workspace, usecase: str, version: int, doc: dict[str, Any], *,
                     actor: str) -> str:
    """Keep a comparison report (an artifact) and reference it from the audit trail."""
    digest = ws.artifacts.put_bytes(canonical_json(doc))
    ws.audit.append("compare", f"usecase/{usecase}/model/{version}", actor,
                    {"comparison_sha256": digest, "champion": doc.get("champion"),
                     "verdict": doc.get("verdict"), "p_value": doc.get("p_value"),
                     "rows": (doc.get("rows") or {}).get("n")})
    return digest


def stored_comparison(ws: Workspace, usecase: str, version: int,
                      champion: int | None = None) -> dict[str, Any] | None:
    """The last stored comparison of a version (against ``champion`` when given), or None."""
    for event in reversed(ws.audit.events(limit=20, action="compare",
                                          subject=f"usecase/{usecase}/model/{version}")):
        digest = (event.payload or {}).get("comparison_sha256")
        if not digest or (champion is not None and event.payload.get("champion") != champion):
            continue
        doc = json.loads(ws.artifacts.get_bytes(digest))
        return doc | {"comparison_sha256": digest}
    return None


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------

@dataclass
class _Acting(Workspace):
    """The workspace, acting as the person or job that asked for the retrain."""

    acting: str = ""

    @property
    def actor(self) -> str:
        return self.acting


def retrain(ws: Workspace, usecase: str, *, actor: str, reason: str,
            budget_s: float | None = None) -> RetrainOutcome:
    """Build a dataset version with the latest feedback, train a candidate through the
    objective gate, compare it with production (paired) and apply the use case's policy.

    ``budget_s`` defaults to the production version's training budget (else 60 s).

    Raises:
        NotFoundError: the use case or its data is unknown.
        InputError: the data cannot support a model (training's own checks).
    """
    uc = ws.project.usecase(usecase)
    reason = (reason or "").strip() or "retrain"
    acting = _Acting(**{f.name: getattr(ws, f.name) for f in fields(ws) if f.name != "acting"},
                     acting=actor)
    try:
        return _retrain(acting, uc, actor=actor, reason=reason, budget_s=budget_s)
    except PlantaError as exc:
        ws.audit.append("retrain_failed", f"usecase/{usecase}", actor,
                        {"reason": reason, "error": exc.message})
        raise


def _retrain(ws: Workspace, uc: UseCase, *, actor: str, reason: str,
             budget_s: float | None) -> RetrainOutcome:
    usecase = uc.name
    champion = ws.registry.aliases(usecase).get("production")
    lines: list[str] = []
    if budget_s is None:
        budget_s = DEFAULT_BUDGET_S
        if champion is not None:
            bundle = load_bundle(ws, usecase, champion)
            budget_s = float(bundle.json("lineage.json").get("budget_s") or budget_s)
    data = build_dataset(ws, usecase, actor=actor)
    lines.append(f"Dataset version {data.version}: dataset version {data.base} plus "
                 f"{data.n_feedback} predictions with ground truth"
                 + (f" ({data.n_skipped} feedback values matched no class and were left out)"
                    if data.n_skipped else "") + ".")
    trained: TrainResult = train_version(ws, usecase, budget_s=budget_s,
                                         dataset_version=data.version,
                                         note=f"retrain: {reason}")
    gate_passed = trained.state == State.CANDIDATE.value
    lines.append(f"Version {trained.version}: " + (
        "meets the objective (candidate)." if gate_passed else
        "does not meet the objective (rejected): " + "; ".join(trained.outcome.gate.reasons)))
    comparison: dict[str, Any] | None = None
    digest: str | None = None
    if champion is None:
        lines.append("There is no production model yet: nothing to compare with.")
        doc = {"format": "planta.retrain_comparison/1", "usecase": usecase,
               "candidate": trained.version, "champion": None, "verdict": None,
               "p_value": None, "words": ["There is no production model yet: nothing to "
                                          "compare with."]}
        digest = store_comparison(ws, usecase, trained.version, doc, actor=actor)
    else:
        frame = _snapshot(ws, ws.registry.get_dataset_version(usecase, data.version))
        rows = frame.iloc[np.sort(trained.outcome.holdout_index)].reset_index(drop=True)
        comparison = compare_on_rows(ws, usecase, trained.version, champion, rows,
                                     source=f"version {trained.version}'s held-out rows of "
                                            f"dataset version {data.version} "
                                            f"({trained.outcome.cv.get('holdout')})")
        digest = store_comparison(ws, usecase, trained.version, comparison, actor=actor)
        lines.extend(comparison["words"])
    moved = apply_policy(ws, uc, trained.version, gate_passed, comparison, lines)
    state = ws.registry.get_model(usecase, trained.version).state
    ws.audit.append("retrain", f"usecase/{usecase}/model/{trained.version}", actor,
                    {"reason": reason, "dataset_version": data.version,
                     "base_dataset_version": data.base, "feedback_rows": data.n_feedback,
                     "feedback_sha256": data.lineage["feedback_sha256"],
                     "state": state, "champion": champion,
                     "verdict": None if comparison is None else comparison["verdict"],
                     "comparison_sha256": digest, "policy": uc.retrain_policy,
                     "moved_to": moved})
    return RetrainOutcome(
        usecase=usecase, dataset_version=data.version, dataset_created=data.created,
        base_dataset_version=data.base, feedback_rows=data.n_feedback,
        feedback_skipped=data.n_skipped, version=trained.version, state=state,
        gate_passed=gate_passed, champion=champion, comparison=comparison,
        comparison_digest=digest, policy=uc.retrain_policy, moved_to=moved, lines=lines)


def apply_policy(ws: Workspace, uc: UseCase, version: int, gate_passed: bool,
                 comparison: dict[str, Any] | None, lines: list[str]) -> str | None:
    """Move a fresh version as the use case's ``retrain_policy`` says; returns the state it
    moved to, or None. Only a version that passed the gate AND beats production with
    confidence moves, and never to production. Says what it did (or why not) in ``lines``."""
    policy = uc.retrain_policy
    if policy == "manual":
        if gate_passed:
            lines.append(f"Policy manual: version {version} waits for an approver "
                         f"(planta promote {uc.name} {version} --reason \"...\").")
        return None
    better = bool(comparison and comparison.get("verdict") == "better")
    if not (gate_passed and better):
        why = ("it did not pass the objective gate" if not gate_passed else
               "there is no production model to beat" if comparison is None else
               "it does not beat production with confidence")
        lines.append(f"Policy {policy}: version {version} stays where it is, because {why}.")
        return None
    assert comparison is not None  # better implies a comparison
    reason = (f"retrain_policy = \"{policy}\" in planta.toml: passed the objective gate and "
              f"beats version {comparison.get('champion')} on the same rows "
              f"(p = {comparison.get('p_value')})")
    move = ws.registry.canary if policy == "canary" else ws.registry.shadow
    try:
        move(uc.name, version, actor=POLICY_ACTOR, role=Role.APPROVER, reason=reason,
             four_eyes=ws.project.settings.four_eyes)
    except PlantaError as exc:  # e.g. another version is canary already: say so, keep going
        lines.append(f"Policy {policy}: version {version} could not be moved: {exc.message}")
        return None
    lines.append(f"Policy {policy}: version {version} now runs as {policy} beside production; "
                 "production changes only when an approver promotes it.")
    return policy


__all__ = ["DEFAULT_BUDGET_S", "POLICY_ACTOR", "RetrainOutcome", "apply_policy", "build_dataset",
           "compare_on_rows", "compare_versions", "holdout_positions", "label_key",
           "map_labels", "retrain", "store_comparison", "stored_comparison"]

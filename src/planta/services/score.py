"""Batch scoring: stream a file through the contract and the production model.

Rows are read in chunks (pyarrow), so memory stays flat as the file grows. Every row comes out:
accepted rows carry the prediction, rejected rows carry ``status = rejected`` and the reason, so
nothing is lost. Each run is recorded as one batch entry (input hash, counts, model version).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from planta.core.models import Predictor
from planta.services.tables import TableWriter, iter_chunks
from planta.services.versions import load_bundle, load_predictor
from planta.services.workspace import Workspace
from planta_edge.contract import Contract, validate_columns

STATUS_OK = "ok"
STATUS_REJECTED = "rejected"


@dataclass(frozen=True)
class ScoreResult:
    """What a batch scoring run did."""

    batch_id: str
    usecase: str
    model_version: int
    input_name: str
    input_sha256: str
    output: str
    n_rows: int
    n_ok: int
    n_rejected: int
    duration_s: float
    rejected_by_rule: dict[str, int]

    @property
    def rows_per_s(self) -> float:
        return self.n_rows / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "usecase": self.usecase,
                "model_version": self.model_version, "input": self.input_name,
                "input_sha256": self.input_sha256, "output": self.output, "rows": self.n_rows,
                "ok": self.n_ok, "rejected": self.n_rejected,
                "rejected_by_rule": self.rejected_by_rule,
                "duration_s": round(self.duration_s, 3), "rows_per_s": round(self.rows_per_s)}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def score_chunk(predictor: Predictor, contract: Contract, columns: dict[str, np.ndarray],
                version: int, offset: int, *, range_policy: str = "reject"
                ) -> tuple[pa.Table, dict[str, int]]:
    """Validate and predict one chunk; returns the output table and rejections by rule."""
    checked = validate_columns(contract, columns, range_policy=range_policy,
                               extra_policy="ignore", row_offset=offset)
    n = checked.n_rows
    ok = checked.ok
    out: dict[str, Any] = {name: pa.array(col, from_pandas=True) if col.dtype != object
                           else pa.array(col.tolist(), from_pandas=True)
                           for name, col in columns.items()}
    label = np.full(n, None, dtype=object)
    probability = np.full(n, np.nan)
    score = np.full(n, np.nan)
    if ok.any():
        values = {k: v[ok] for k, v in checked.values.items()}
        pred = predictor.predict(values)
        label[ok] = pred.label
        if pred.probability is not None:
            prob = pred.probability
            probability[ok] = prob if prob.ndim == 1 else prob.max(axis=1)
        if pred.score is not None:
            score[ok] = pred.score
    if predictor.task == "regression":
        out["prediction"] = pa.array(np.where(ok, score, np.nan), from_pandas=True)
    else:
        out["prediction"] = pa.array([None if v is None else str(v) for v in label],
                                     type=pa.string())
        out["probability"] = pa.array(probability, from_pandas=True)
    out["model_version"] = pa.array(np.full(n, version, dtype=np.int64))
    out["status"] = pa.array(np.where(ok, STATUS_OK, STATUS_REJECTED).astype(object).tolist(),
                             type=pa.string())
    out["reason"] = pa.array(checked.reasons.tolist(), type=pa.string())
    by_rule: dict[str, int] = {}
    for reason in checked.reasons[~ok]:
        rule = str(reason).split(":", 1)[0]
        by_rule[rule] = by_rule.get(rule, 0) + 1
    return pa.table(out), by_rule


def score_file(ws: Workspace, usecase: str, source: Path, output: Path, *,
               version: str | int = "production", chunk_rows: int = 200_000,
               range_policy: str = "reject",
               progress: Callable[[int], None] | None = None) -> ScoreResult:
    """Score a CSV, Excel or Parquet file with a model version (production by default).

    The output format follows ``output``'s extension (.parquet, .csv, .xlsx); a CSV output uses
    the input's delimiter and decimal mark.
    """
    start = time.perf_counter()
    bundle = load_bundle(ws, usecase, version)
    predictor, contract = load_predictor(bundle)
    model_version = int(bundle.version or 0)
    source = Path(source)
    fmt, chunks = iter_chunks(source, rows=chunk_rows)
    writer = TableWriter(Path(output), fmt)
    n_rows = n_ok = 0
    rejected_by_rule: dict[str, int] = {}
    try:
        for chunk in chunks:
            table, by_rule = score_chunk(predictor, contract, chunk.columns, model_version,
                                         chunk.offset, range_policy=range_policy)
            writer.write(table)
            n_rows += table.num_rows
            n_rejected_here = sum(by_rule.values())
            n_ok += table.num_rows - n_rejected_here
            for rule, count in by_rule.items():
                rejected_by_rule[rule] = rejected_by_rule.get(rule, 0) + count
            if progress is not None:
                progress(n_rows)
    finally:
        writer.close()
    duration = time.perf_counter() - start
    input_sha = _sha256_file(source)
    batch = ws.registry.add_batch(
        usecase=usecase, model_version=model_version, input_name=source.name,
        input_hash=input_sha, n_rows=n_rows, n_ok=n_ok, n_rejected=n_rows - n_ok,
        output=str(output), actor=ws.actor, duration_s=duration)
    ws.audit.append("score", f"usecase/{usecase}/batch/{batch.id}", ws.actor,
                    {"model_version": model_version, "input": source.name,
                     "input_sha256": input_sha, "rows": n_rows, "rejected": n_rows - n_ok})
    return ScoreResult(batch_id=batch.id, usecase=usecase, model_version=model_version,
                       input_name=source.name, input_sha256=input_sha, output=str(output),
                       n_rows=n_rows, n_ok=n_ok, n_rejected=n_rows - n_ok, duration_s=duration,
                       rejected_by_rule=rejected_by_rule)


__all__ = ["STATUS_OK", "STATUS_REJECTED", "ScoreResult", "score_chunk", "score_file"]

"""The anchors' ``custom`` drift engine for planta (see bench/bench_drift.py for how it runs and
what is timed): ``planta_drift(ref_df, cur_df) -> {column: drifted}``."""

from __future__ import annotations

import json
import os
import time

import pandas as pd

# Imported with the module, before the harness starts its clock (as it imports Evidently).
from planta.core.drift_report import compare
from planta.core.drift_window import Reference, Window
from planta.core.profile import profile_frame
from planta_edge.contract import Contract, Field

CHUNK = 100_000


def planta_drift(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, bool]:
    """The anchors' custom hook: ``{column: drifted}`` for 6 features (see the docstring)."""
    t0 = time.perf_counter()
    fields = []
    for column in ref.columns:
        if not pd.api.types.is_numeric_dtype(ref[column].dtype):
            fields.append(Field(column, "category",
                                categories=tuple(sorted(map(str, ref[column].unique())))))
        else:
            fields.append(Field(column, "number", minimum=float(ref[column].min()),
                                maximum=float(ref[column].max())))
    contract = Contract(tuple(fields))
    reference = Reference.from_profile(profile_frame(ref, contract), contract)
    t1 = time.perf_counter()
    window = Window(reference)
    arrays = {c: cur[c].to_numpy() for c in cur.columns if c in reference.fields}
    n = len(cur)
    for start in range(0, n, CHUNK):
        window.add({c: a[start:start + CHUNK] for c, a in arrays.items()},
                   rows=min(CHUNK, n - start))
    t2 = time.perf_counter()
    report = compare(reference, window)
    t3 = time.perf_counter()
    phases = os.environ.get("PLANTA_DRIFT_PHASES")
    if phases:
        with open(phases, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"rows": n, "profile_s": round(t1 - t0, 4),
                                 "count_s": round(t2 - t1, 4), "compare_s": round(t3 - t2, 4),
                                 "drifted": [f.name for f in report.drifted]}) + "\n")
    return {f.name: f.drifted for f in report.features}

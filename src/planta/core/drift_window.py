"""The reference (from a bundle's profile) and a streaming window of production values.

    Reference.from_profile(profile, contract, metrics)     bins and counts per field, from
        numeric      profile "values" (≤ 20 distinct: exact), else "bins" (100 quantile bins),
                     else "histogram" (20 bins: bundles made before the bins existed)
        category     counts per category; boolean as the categories "0" and "1"
        score        the holdout's score counts (metrics.json holdout_detail curve)
    Window(reference).add(columns) … .add(columns)        counts only: memory does not grow
    Window.merge(other), to_dict(), from_dict()           windows of hours add up to a day

``add`` takes columns as the contract's validation gives them (``planta_edge.contract``:
float64 arrays for numbers and booleans, object arrays of str for categories), so a chunk of a
file, a slice of the prediction log and a pandas frame all go through the same counting.

>>> from planta_edge.contract import Contract, Field
>>> c = Contract((Field("torque_nm", "number", minimum=0.0, maximum=10.0),))
>>> profile = {"fields": {"torque_nm": {"kind": "number", "count": 4, "missing": 0,
...            "mean": 2.5, "std": 1.1, "values": {"1": 1, "2": 1, "3": 1, "4": 1}}}}
>>> ref = Reference.from_profile(profile, c)
>>> w = Window(ref)
>>> w.add({"torque_nm": np.array([1.0, 2.0, np.nan, 12.0])})
>>> w.rows, w.fields["torque_nm"].missing, w.fields["torque_nm"].above_contract
(4, 1, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from planta.core.drift import bin_index, psi_groups
from planta_edge.contract import Contract, Field

WINDOW_FORMAT = "planta.drift_window/1"


@dataclass
class NumericReference:
    """A numeric field's reference: bins (see ``planta.core.drift.bin_index``) and counts."""

    name: str
    label: str
    edges: np.ndarray
    counts: np.ndarray          # len(edges) + 1
    missing: int
    mean: float | None
    std: float | None
    lower: float | None         # the contract's accepted range
    upper: float | None
    exact: bool                 # one bin per distinct value: binned statistics are exact
    source: str                 # values, bins or histogram
    groups: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.groups = psi_groups(self.counts)

    @property
    def n(self) -> int:
        return int(self.counts.sum())


@dataclass
class CategoryReference:
    """A categorical (or boolean) field's reference counts."""

    name: str
    label: str
    categories: list[str]
    counts: np.ndarray
    missing: int
    boolean: bool = False

    @property
    def n(self) -> int:
        return int(self.counts.sum())


@dataclass
class ScoreReference:
    """The model's scores on its holdout, as counts on score bins (binary: P(positive))."""

    edges: np.ndarray
    counts: np.ndarray
    positive_share: float | None
    threshold: float | None


FieldReference = NumericReference | CategoryReference


def _numeric_reference(f: Field, prof: Mapping[str, Any]) -> NumericReference | None:
    common = {"name": f.name, "label": f.display, "missing": int(prof.get("missing") or 0),
              "mean": prof.get("mean"), "std": prof.get("std"), "lower": f.lower_bound,
              "upper": f.upper_bound}
    values = prof.get("values")
    if values:
        pairs = sorted((float(k), int(v)) for k, v in values.items())
        edges = np.array([p[0] for p in pairs])
        # Bin i + 1 is [v_i, v_{i+1}): it holds exactly the value v_i; the last value lands
        # in the open bin above the last edge.
        counts = np.array([0] + [p[1] for p in pairs], dtype=np.int64)
        return NumericReference(edges=edges, counts=counts, exact=True, source="values",
                                **common)
    bins = prof.get("bins")
    if bins and bins.get("edges"):
        return NumericReference(edges=np.asarray(bins["edges"], float),
                                counts=np.asarray(bins["counts"], np.int64), exact=False,
                                source="bins", **common)
    hist = prof.get("histogram")
    if hist and hist.get("edges") and len(hist["edges"]) >= 2:
        # numpy's histogram closes its last bin: the maximum counts inside it here, a shift of
        # one value's mass at the very top of the range (bundles made before "bins" only).
        edges = np.asarray(hist["edges"], float)
        counts = np.array([0, *hist["counts"], 0], dtype=np.int64)
        if edges.size == 2 and edges[0] == edges[1]:
            edges, counts = edges[:1], np.array([0, int(sum(hist["counts"]))], dtype=np.int64)
        return NumericReference(edges=edges, counts=counts, exact=False, source="histogram",
                                **common)
    return None


def _score_reference(metrics: Mapping[str, Any] | None) -> ScoreReference | None:
    detail = (metrics or {}).get("holdout_detail") or {}
    curve = detail.get("curve")
    if not curve or not curve.get("threshold"):
        return None
    n = int(detail.get("n") or 0)
    # The curve counts alarms (score >= t) at every grid threshold t: differences of those
    # counts are the holdout's scores per bin [t_i, t_{i+1}).
    edges = np.asarray(curve["threshold"], float)
    at_or_above = np.asarray(curve["tp"], np.int64) + np.asarray(curve["fp"], np.int64)
    counts = np.concatenate(([n - at_or_above[0]], -np.diff(at_or_above), [at_or_above[-1]]))
    if n == 0 or (counts < 0).any():
        return None
    confusion = detail.get("confusion") or {}
    share = ((confusion.get("tp", 0) + confusion.get("fp", 0)) / n) if confusion else None
    return ScoreReference(edges=edges, counts=counts.astype(np.int64), positive_share=share,
                          threshold=detail.get("threshold"))


@dataclass
class Reference:
    """The reference of every monitored field (features of the contract), plus the scores."""

    fields: dict[str, FieldReference]
    score: ScoreReference | None = None
    rows: int = 0

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any], contract: Contract,
                     metrics: Mapping[str, Any] | None = None) -> Reference:
        """Build from ``profile.json`` (``planta.core.profile``), the contract and, when given,
        ``metrics.json`` (for the holdout's scores)."""
        profiled = profile.get("fields") or {}
        out: dict[str, FieldReference] = {}
        for f in contract.features:
            prof = profiled.get(f.name)
            if not prof:
                continue
            if f.kind in ("number", "integer"):
                ref = _numeric_reference(f, prof)
                if ref is not None:
                    out[f.name] = ref
            elif f.kind in ("category", "boolean"):
                counts = dict(prof.get("counts") or {})
                for c in f.categories or ():
                    counts.setdefault(c, 0)
                cats = list(counts)
                out[f.name] = CategoryReference(
                    name=f.name, label=f.display, categories=cats,
                    counts=np.array([int(counts[c]) for c in cats], dtype=np.int64),
                    missing=int(prof.get("missing") or 0), boolean=f.kind == "boolean")
        return cls(fields=out, score=_score_reference(metrics), rows=int(profile.get("rows") or 0))


@dataclass
class NumericCounts:
    """A numeric field's counts in a window."""

    counts: np.ndarray
    missing: int = 0
    below_sum: float = 0.0          # sum of edges[0] - x below the first edge
    above_sum: float = 0.0          # sum of x - edges[-1] at or above the last edge
    total: float = 0.0
    below_contract: int = 0
    above_contract: int = 0

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass
class CategoryCounts:
    """A categorical field's counts in a window; categories the reference never saw apart."""

    counts: np.ndarray
    new: dict[str, int] = field(default_factory=dict)
    missing: int = 0

    @property
    def n(self) -> int:
        return int(self.counts.sum()) + sum(self.new.values())


@dataclass
class ScoreCounts:
    """The model's outputs in a window."""

    counts: np.ndarray
    positives: int = 0
    answered: int = 0


class Window:
    """Counts of a window of production rows on the reference's bins (bounded memory)."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.rows = 0
        self.out_of_contract = 0
        self.fields: dict[str, NumericCounts | CategoryCounts] = {}
        self._index: dict[str, dict[str, int]] = {}
        for name, ref in reference.fields.items():
            if isinstance(ref, NumericReference):
                self.fields[name] = NumericCounts(np.zeros(ref.counts.size, np.int64))
            else:
                self.fields[name] = CategoryCounts(np.zeros(ref.counts.size, np.int64))
                self._index[name] = {c: i for i, c in enumerate(ref.categories)}
        score = reference.score
        self.score = ScoreCounts(np.zeros(score.counts.size if score else 0, np.int64))

    def add(self, columns: Mapping[str, np.ndarray], *, rows: int | None = None,
            out_of_contract: np.ndarray | int | None = None) -> None:
        """Count a chunk of rows; ``columns`` holds canonical names (absent fields count as
        missing); ``out_of_contract`` marks (or counts) rows that broke a contract rule."""
        n = rows if rows is not None else len(next(iter(columns.values()))) if columns else 0
        self.rows += n
        if out_of_contract is not None:
            self.out_of_contract += int(np.sum(out_of_contract))
        for name, ref in self.reference.fields.items():
            values = columns.get(name)
            acc = self.fields[name]
            if values is None:
                acc.missing += n
            elif isinstance(ref, NumericReference):
                self._add_numeric(ref, acc, values)  # type: ignore[arg-type]
            else:
                self._add_category(name, ref, acc, values)  # type: ignore[arg-type]

    @staticmethod
    def _add_numeric(ref: NumericReference, acc: NumericCounts, values: np.ndarray) -> None:
        x = values if values.dtype == np.float64 else np.asarray(values, dtype=np.float64)
        finite = np.isfinite(x)
        if not finite.all():
            acc.missing += int(x.size - finite.sum())
            x = x[finite]
        idx = bin_index(x, ref.edges)
        acc.counts += np.bincount(idx, minlength=acc.counts.size)
        acc.total += float(x.sum())
        low, high = ref.edges[0], ref.edges[-1]
        if acc.counts[0]:
            below = x[idx == 0]
            acc.below_sum += float((low - below).sum())
        if acc.counts[-1]:
            above = x[idx == ref.edges.size]
            acc.above_sum += float((above - high).sum())
        if ref.lower is not None:
            acc.below_contract += int(np.count_nonzero(x < ref.lower))
        if ref.upper is not None:
            acc.above_contract += int(np.count_nonzero(x > ref.upper))

    def _add_category(self, name: str, ref: CategoryReference, acc: CategoryCounts,
                      values: np.ndarray) -> None:
        if ref.boolean:
            x = np.asarray(values, dtype=np.float64)
            ok = np.isfinite(x)
            acc.missing += int(x.size - ok.sum())
            text = np.where(x[ok] == 1, "1", "0")
            values = text.astype(object)
        seen = pd.Series(values, dtype=object).value_counts(dropna=True)
        index = self._index[name]
        counted = 0
        for key, count in seen.items():
            label = str(key)
            if not label.strip():
                continue
            counted += int(count)
            i = index.get(label)
            if i is None:
                acc.new[label] = acc.new.get(label, 0) + int(count)
            else:
                acc.counts[i] += int(count)
        if not ref.boolean:
            acc.missing += int(len(values) - counted)

    def add_outputs(self, probability: np.ndarray | None = None,
                    positive: np.ndarray | None = None) -> None:
        """Count the model's answers: P(positive) per record (binary) and which were alarms."""
        ref = self.reference.score
        if probability is not None and ref is not None:
            p = np.asarray(probability, dtype=np.float64)
            p = p[np.isfinite(p)]
            self.score.counts += np.bincount(bin_index(p, ref.edges),
                                             minlength=self.score.counts.size)
        if positive is not None:
            pos = np.asarray(positive, dtype=bool)
            self.score.positives += int(pos.sum())
            self.score.answered += int(pos.size)

    # -- adding windows up (hourly windows cached, a day read as 24 of them) ---------------------
    def merge(self, other: Window) -> None:
        """Add ``other``'s counts (same reference) to this window."""
        self.rows += other.rows
        self.out_of_contract += other.out_of_contract
        for name, acc in self.fields.items():
            theirs = other.fields[name]
            acc.counts += theirs.counts
            acc.missing += theirs.missing
            if isinstance(acc, NumericCounts) and isinstance(theirs, NumericCounts):
                acc.below_sum += theirs.below_sum
                acc.above_sum += theirs.above_sum
                acc.total += theirs.total
                acc.below_contract += theirs.below_contract
                acc.above_contract += theirs.above_contract
            elif isinstance(acc, CategoryCounts) and isinstance(theirs, CategoryCounts):
                for k, v in theirs.new.items():
                    acc.new[k] = acc.new.get(k, 0) + v
        self.score.counts += other.score.counts
        self.score.positives += other.score.positives
        self.score.answered += other.score.answered

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able counts (for a cache); read back with :meth:`from_dict`."""
        out: dict[str, Any] = {"format": WINDOW_FORMAT, "rows": self.rows,
                               "out_of_contract": self.out_of_contract, "fields": {},
                               "score": {"counts": self.score.counts.tolist(),
                                         "positives": self.score.positives,
                                         "answered": self.score.answered}}
        for name, acc in self.fields.items():
            doc = {k: v for k, v in acc.__dict__.items() if k != "counts"}
            out["fields"][name] = doc | {"counts": acc.counts.tolist()}
        return out

    @classmethod
    def from_dict(cls, reference: Reference, data: Mapping[str, Any]) -> Window:
        w = cls(reference)
        w.rows, w.out_of_contract = int(data["rows"]), int(data["out_of_contract"])
        for name, doc in data["fields"].items():
            acc = w.fields.get(name)
            if acc is None or len(doc["counts"]) != acc.counts.size:
                raise ValueError(f"cached window does not match the reference at {name!r}")
            for k, v in doc.items():
                setattr(acc, k, np.asarray(v, np.int64) if k == "counts" else
                        (dict(v) if k == "new" else v))
        score = data["score"]
        if len(score["counts"]) == w.score.counts.size:
            w.score.counts = np.asarray(score["counts"], np.int64)
        w.score.positives, w.score.answered = int(score["positives"]), int(score["answered"])
        return w


__all__ = ["WINDOW_FORMAT", "CategoryCounts", "CategoryReference", "NumericCounts",
           "NumericReference", "Reference", "ScoreCounts", "ScoreReference", "Window"]

"""Contract values -> the float matrix a model reads: category codes and feature steps.

This is the one place where model inputs are computed, for training and for every kind of
inference (server, batch, edge): training builds its matrix with :func:`build_matrix` too, so a
bundle can never compute a feature differently from the way it was trained.

    Encoding                       features.json of a bundle ("planta.features/1")
    ├── columns: ColumnEncoding    one per contract feature, in model order
    │     kind "number"            float64 passthrough (numbers, integers, booleans as 0/1)
    │     kind "category"          text -> integer code in the contract's category order;
    │                              unknown or missing -> NaN (the models treat NaN as missing)
    └── steps: FeatureStep         appended after the columns, in order
          difference  a - b        e.g. process temperature - air temperature (K, K)
          product     a * b        e.g. torque * rotational speed (Nm, rpm: power)
          ratio       a / b        b == 0 -> NaN

Any result that is not finite (overflow, 0/0) becomes NaN: a model sees "missing", never inf.
Only the standard library and numpy are used: the edge runtime imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from planta_edge.errors import ContractError

FORMAT = "planta.features/1"
OPS = ("difference", "product", "ratio")
COLUMN_KINDS = ("number", "category")
_SYMBOL = {"difference": "-", "product": "*", "ratio": "/"}


@dataclass(frozen=True)
class FeatureStep:
    """One derived feature: ``name = a <op> b`` on two earlier columns (or earlier steps).

    >>> step = FeatureStep("product", "torque_nm", "speed_rpm", "torque_nm_x_speed_rpm")
    >>> step.apply(np.array([2.0, 3.0]), np.array([10.0, np.nan])).tolist()
    [20.0, nan]
    >>> FeatureStep.from_dict(step.to_dict()) == step
    True
    """

    op: str
    a: str
    b: str
    name: str

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ContractError(f"Feature step {self.name!r}: operation {self.op!r} is not one of "
                                f"{OPS}.")
        if not self.name or self.name in (self.a, self.b):
            raise ContractError(f"Feature step {self.op}({self.a}, {self.b}) needs a new name.")

    def apply(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Compute the step on two float arrays; non-finite results (and ratio by 0) are NaN."""
        with np.errstate(all="ignore"):
            if self.op == "difference":
                out = a - b
            elif self.op == "product":
                out = a * b
            else:
                out = np.where(b == 0.0, np.nan, a / np.where(b == 0.0, 1.0, b))
        out = np.asarray(out, dtype=np.float64)
        out[~np.isfinite(out)] = np.nan
        return out

    def describe(self) -> str:
        """The step as a formula, e.g. ``torque_nm * speed_rpm``."""
        return f"{self.a} {_SYMBOL[self.op]} {self.b}"

    def to_dict(self) -> dict[str, str]:
        return {"op": self.op, "a": self.a, "b": self.b, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureStep:
        try:
            return cls(op=str(data["op"]), a=str(data["a"]), b=str(data["b"]),
                       name=str(data["name"]))
        except KeyError as exc:
            raise ContractError(f"Feature step {dict(data)!r} lacks {exc.args[0]!r}.") from None


def step_name(op: str, a: str, b: str) -> str:
    """The conventional name of a step: ``a_minus_b``, ``a_x_b`` or ``a_per_b``.

    >>> step_name("ratio", "flow_l_min", "speed_rpm")
    'flow_l_min_per_speed_rpm'
    """
    joiner = {"difference": "minus", "product": "x", "ratio": "per"}[op]
    return f"{a}_{joiner}_{b}"


@dataclass(frozen=True)
class ColumnEncoding:
    """How one contract feature becomes one matrix column."""

    name: str
    kind: str = "number"
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ContractError(f"Column {self.name!r}: encoding kind {self.kind!r} is not one "
                                f"of {COLUMN_KINDS}.")

    def encode(self, raw: Any) -> np.ndarray:
        """One input column -> float64 (codes for categories, NaN where unknown or missing)."""
        arr = np.asarray(raw)
        if arr.ndim != 1:
            arr = arr.reshape(-1)
        if self.kind == "number":
            return _as_float(self.name, arr)
        return _codes(arr, self.categories)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "category":
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnEncoding:
        return cls(name=str(data["name"]), kind=str(data.get("kind", "number")),
                   categories=tuple(str(c) for c in data.get("categories", ())))


@dataclass(frozen=True)
class Encoding:
    """Contract features -> model matrix: encoded columns, then feature steps.

    >>> enc = Encoding(
    ...     columns=(ColumnEncoding("kind", "category", ("L", "M", "H")),
    ...              ColumnEncoding("torque_nm"), ColumnEncoding("speed_rpm")),
    ...     steps=(FeatureStep("product", "torque_nm", "speed_rpm", "power"),))
    >>> enc.feature_names
    ('kind', 'torque_nm', 'speed_rpm', 'power')
    >>> build_matrix(enc, {"kind": np.array(["H", "X"], dtype=object),
    ...                    "torque_nm": np.array([2.0, 3.0]),
    ...                    "speed_rpm": np.array([10.0, 20.0])}).tolist()
    [[2.0, 2.0, 10.0, 20.0], [nan, 3.0, 20.0, 60.0]]
    >>> Encoding.from_dict(enc.to_dict()) == enc
    True
    """

    columns: tuple[ColumnEncoding, ...]
    steps: tuple[FeatureStep, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for col in self.columns:
            if col.name in seen:
                raise ContractError(f"The encoding names column {col.name!r} twice.")
            seen.add(col.name)
        numeric = {c.name for c in self.columns if c.kind == "number"}
        for step in self.steps:
            for ref in (step.a, step.b):
                if ref not in numeric:
                    raise ContractError(
                        f"Feature step {step.name!r} reads {ref!r}, which is not a number column "
                        "or an earlier step.", hint="Steps combine numeric columns only.")
            if step.name in seen:
                raise ContractError(f"Feature step {step.name!r} reuses an existing name.")
            seen.add(step.name)
            numeric.add(step.name)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The contract fields the encoding reads, in order."""
        return tuple(c.name for c in self.columns)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the matrix columns: inputs first, then steps."""
        return self.input_names + tuple(s.name for s in self.steps)

    @property
    def categorical_indices(self) -> tuple[int, ...]:
        """Matrix positions of category codes (for libraries that split on categories)."""
        return tuple(i for i, c in enumerate(self.columns) if c.kind == "category")

    def with_steps(self, steps: Iterable[FeatureStep]) -> Encoding:
        """A copy with ``steps`` instead of the current ones."""
        return Encoding(columns=self.columns, steps=tuple(steps))

    @classmethod
    def from_fields(cls, fields: Iterable[Any], steps: Sequence[FeatureStep] = ()) -> Encoding:
        """Encoding of contract ``Field`` objects: categories in the contract's order.

        Text and datetime fields are not model inputs and are skipped; booleans are numbers.
        """
        columns = []
        for f in fields:
            if f.kind in ("number", "integer", "boolean"):
                columns.append(ColumnEncoding(f.name, "number"))
            elif f.kind == "category":
                columns.append(ColumnEncoding(f.name, "category", tuple(f.categories or ())))
        return cls(columns=tuple(columns), steps=tuple(steps))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "columns": [c.to_dict() for c in self.columns],
                "steps": [s.to_dict() for s in self.steps],
                "feature_names": list(self.feature_names)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Encoding:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ContractError(f"This is not a planta feature encoding (expected format "
                                f"{FORMAT!r}).")
        return cls(columns=tuple(ColumnEncoding.from_dict(c) for c in data["columns"]),
                   steps=tuple(FeatureStep.from_dict(s) for s in data.get("steps", ())))


def build_matrix(encoding: Encoding, values: Mapping[str, Any]) -> np.ndarray:
    """Encode contract values and append the feature steps: a float64 ``n x k`` matrix.

    ``values`` maps canonical field names to equal-length 1-D arrays (what
    ``validate_columns`` returns); extra keys are ignored. A missing input field raises
    :class:`ContractError` naming it.
    """
    missing = [name for name in encoding.input_names if name not in values]
    if missing:
        raise ContractError(f"The model needs these fields, which the input lacks: {missing}.",
                            hint="Send every field of the contract (missing values may be empty).")
    n_rows: int | None = None
    out: np.ndarray | None = None
    index: dict[str, int] = {}
    k = len(encoding.feature_names)
    for j, col in enumerate(encoding.columns):
        encoded = col.encode(values[col.name])
        if out is None:
            n_rows = encoded.shape[0]
            out = np.empty((n_rows, k), dtype=np.float64)
        elif encoded.shape[0] != n_rows:
            raise ContractError(f"Field {col.name!r} has {encoded.shape[0]} values, the others "
                                f"{n_rows}: every field needs one value per row.")
        out[:, j] = encoded
        index[col.name] = j
    if out is None:
        return np.empty((0, k), dtype=np.float64)
    j = len(encoding.columns)
    for step in encoding.steps:
        out[:, j] = step.apply(out[:, index[step.a]], out[:, index[step.b]])
        index[step.name] = j
        j += 1
    return out


def _as_float(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "fiub":
        out = arr.astype(np.float64, copy=True)
    else:
        out = np.empty(arr.shape[0], dtype=np.float64)
        for i, value in enumerate(arr):
            if value is None or (isinstance(value, str) and value.strip() == ""):
                out[i] = np.nan
                continue
            try:
                out[i] = float(value)
            except (TypeError, ValueError):
                raise ContractError(f"Row {i + 1}, field {name!r}: {value!r} is not a number.",
                                    hint="Validate inputs against the contract first.") from None
    out[~np.isfinite(out)] = np.nan
    return out


def _codes(arr: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    lookup: dict[Any, float] = {c: float(i) for i, c in enumerate(categories)}
    n = arr.shape[0]
    if arr.dtype.kind in "iub" or arr.dtype.kind == "f":
        # Categories written as numbers ("1", "2") may arrive as numbers: compare them as the
        # contract does, whole numbers without ".0" (see planta_edge.contract._to_text).
        return np.fromiter((lookup.get(_number_text(v), math.nan) for v in arr.tolist()),
                           dtype=np.float64, count=n)
    # A dict lookup per value is about 0.1 s per million rows, far below the model's cost.
    get = lookup.get
    return np.fromiter((get(v, math.nan) if isinstance(v, str) else
                        get(_number_text(v), math.nan) for v in arr.tolist()),
                       dtype=np.float64, count=n)


def _number_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    return str(value)


__all__ = [
    "COLUMN_KINDS",
    "FORMAT",
    "OPS",
    "ColumnEncoding",
    "Encoding",
    "FeatureStep",
    "build_matrix",
    "step_name",
]

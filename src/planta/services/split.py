"""The target's labels and training's holdout split, shared by everything that must see the
same rows training saw.

    encode_target(raw, task, positive_label)      labels as 0/1 (binary), class codes, or numbers
    holdout_split(y, task, groups, times, seed)   (training rows, holdout rows, description)
    holdout_rows(frame, usecase, target, seed)    the frame's rows that training held out

Training (:mod:`planta.services.train`) splits with these; the edge export's parity check and
retraining's paired comparison rebuild the same holdout from the dataset version and the seed
in a bundle's lineage, so the split exists once, not in three copies that could drift apart.

>>> y, classes, positive = encode_target(np.array(["no", "yes", "no"], dtype=object),
...                                      Task.BINARY, None)
>>> y.tolist(), classes, positive
([0, 1, 0], ['no', 'yes'], 'yes')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from planta.core.spec import Task, UseCase
from planta.errors import ConfigError, InputError

HOLDOUT_FRACTION = 0.2
# The words read as yes / no, in the languages plants write their exports in.
TRUTHY = {"1", "true", "yes", "y", "t", "si", "sí", "ja", "oui"}
FALSY = {"0", "false", "no", "n", "f", "nein", "non"}


def is_missing(series: pd.Series) -> pd.Series:
    missing = series.isna()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        missing |= series.astype(str).str.strip().eq("")
    return missing


def label_text(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value).strip()


def encode_target(raw: np.ndarray, task: Task,
                   positive_label: str | None) -> tuple[np.ndarray, list[str], str | None]:
    if task == Task.REGRESSION:
        y = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
        if np.isnan(y).any():
            raise InputError("A regression target must be numbers; some values are not.",
                             hint="Check the target column, or choose a classification task.")
        return y, [], None
    text = np.asarray([label_text(v) for v in raw], dtype=object)
    labels, counts = np.unique(text, return_counts=True)
    if task == Task.BINARY:
        if len(labels) != 2:
            raise InputError(f"A binary target needs exactly two values; found {len(labels)}: "
                             f"{[str(v) for v in labels[:10]]}.",
                             hint="Use a multiclass task, or map the target to two values.")
        positive = choose_positive(list(labels), list(counts), positive_label)
        negative = next(str(v) for v in labels if v != positive)
        classes = [negative, positive]
        return (text == positive).astype(int), classes, positive
    order = natural_order([str(v) for v in labels])
    codes = {c: i for i, c in enumerate(order)}
    return np.asarray([codes[t] for t in text], dtype=int), order, None


def choose_positive(labels: list[str], counts: list[int], positive_label: str | None) -> str:
    if positive_label is not None:
        wanted = label_text(positive_label)
        for label in labels:
            if label == wanted or label.lower() == wanted.lower():
                return label
        raise ConfigError(f"positive_label {positive_label!r} is not one of the target's values "
                          f"{labels}.", hint="Set positive_label to the value that means "
                          "failure (or the event to predict).")
    truthy = [label for label in labels if label.lower() in TRUTHY]
    if len(truthy) == 1:
        return truthy[0]
    # The rarer value is the event to catch; on a tie, the later one in sort order.
    return labels[1] if counts[0] == counts[1] else labels[int(np.argmin(counts))]


def natural_order(labels: list[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def time_values(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if not column:
        return None
    if column not in frame.columns:
        raise InputError(f"The use case's time column {column!r} is not in the table.")
    col = frame[column]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = col.to_numpy(dtype=float)
        scale = 1.0                              # numbers: taken as days
    else:
        stamps = pd.to_datetime(col, errors="coerce", utc=True)
        if stamps.isna().all():
            raise InputError(f"The time column {column!r} holds no readable date or time.")
        # Seconds since the epoch whatever the resolution (pandas 3 parses to microseconds).
        values = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
        scale = 1.0 / 86_400.0                   # seconds -> days
    values = np.where(np.isnan(values), np.nanmin(values), values)
    return np.asarray(values * scale, dtype=float)


def group_values(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if not column:
        return None
    if column not in frame.columns:
        raise InputError(f"The use case's entity column {column!r} is not in the table.")
    return np.asarray(frame[column].astype(str).to_numpy(dtype=object))


def holdout_split(y: np.ndarray, task: Task, groups: np.ndarray | None, times: np.ndarray | None,
             seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(training positions, holdout positions, description); training in time order."""
    n = y.shape[0]
    classify = task != Task.REGRESSION
    n_hold = math.ceil(HOLDOUT_FRACTION * n)
    if times is not None:
        order = np.argsort(times, kind="mergesort")
        return order[: n - n_hold], np.sort(order[n - n_hold:]), \
            f"the last {HOLDOUT_FRACTION:.0%} of rows in time ({n_hold} rows)"
    if groups is not None:
        from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

        n_groups = len(set(groups.tolist()))
        if n_groups < 4:
            raise InputError(f"The entity column has {n_groups} distinct values; a holdout of "
                             "whole entities needs at least 4.",
                             hint="Remove the entity from the use case, or add data.")
        if classify and n_groups >= 5:
            splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
            tr, ho = next(splitter.split(np.zeros(n), y, groups))
        else:
            gss = GroupShuffleSplit(n_splits=1, test_size=HOLDOUT_FRACTION, random_state=seed)
            tr, ho = next(gss.split(np.zeros(n), y, groups))
        return np.sort(tr), np.sort(ho), (f"{len(set(groups[ho].tolist()))} whole entities "
                                          f"({len(ho)} rows)")
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    tr, ho = train_test_split(idx, test_size=HOLDOUT_FRACTION, random_state=seed,
                              stratify=y if classify else None)
    kind = "stratified" if classify else "random"
    return np.sort(tr), np.sort(ho), f"{kind} {HOLDOUT_FRACTION:.0%} ({len(ho)} rows)"


def holdout_rows(frame: pd.DataFrame, usecase: UseCase, target: str, seed: int) -> np.ndarray:
    """Positions in ``frame`` of the rows training held out: the labelled rows, split exactly as
    :func:`planta.services.train.train` split them with the same ``seed``."""
    rows = np.flatnonzero((~is_missing(frame[target])).to_numpy())
    y, _, _ = encode_target(frame[target].to_numpy()[rows], usecase.task, usecase.positive_label)
    sub = frame.iloc[rows]
    _, hold, _ = holdout_split(y, usecase.task, group_values(sub, usecase.entity),
                               time_values(sub, usecase.time), seed)
    return rows[hold]


__all__ = ["FALSY", "HOLDOUT_FRACTION", "TRUTHY", "choose_positive", "encode_target",
           "group_values", "holdout_rows", "holdout_split", "is_missing", "label_text",
           "natural_order", "time_values"]

"""The leak and id guard: columns that would let a model cheat, or that carry nothing.

A model trained on a column written *after* the outcome (a failure-mode flag, a scrap code) or
on a row id scores beautifully in testing and fails in the plant. The guard looks at the table
as read (original headers) and sets these columns aside, each with evidence in plain words:

    leak_flag    the column's set value (non-zero / true / some category values) almost
                 always means the rarer outcome, with enough rows to be sure (rule below)
    leak_union   several flags that each point to the outcome and together reproduce the
                 target (agreement >= 99 %, catching >= 90 % of the outcome's rows)
    leak_copy    regression: the column follows the target almost exactly (|corr| > 0.999)
    id_unique    every row has its own value (serial numbers, product ids)
    id_like      whole numbers rising (or falling) with every row: a row counter
    constant     one value in every row (or empty): nothing to learn from

The leak_flag rule. Let a column be set in ``n`` rows, ``k`` of which have the rarer target
value. It is a leak when the share k/n is at least 0.99 *and* the one-sided 95 % Clopper-Pearson
lower bound of that share is at least 0.9: with 95 % confidence, at least nine in ten of its set
rows are that outcome, whatever the sample. A flag set in 46 rows, all failures, passes (lower
bound 0.937); one set in 10 rows, all failures, does not (0.741): too few to be sure, so it
stays a feature and the notes say so. The rarer outcome is used because a flag that singles out
the common outcome tells a model nothing it would not guess.

Columns the use case lists under ``keep`` are reported with ``kept=True`` and stay features.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from planta.core.spec import Task
from planta.errors import ContractError
from planta.i18n import DEFAULT_LANG, said, say, translator
from planta_edge.contract import slugify

REASONS = ("leak_flag", "leak_union", "leak_copy", "id_unique", "id_like", "constant")
LEAK_SHARE = 0.99
LEAK_LOWER_BOUND = 0.90
CONFIDENCE = 0.95
UNION_MEMBER_SHARE = 0.95
UNION_AGREEMENT = 0.99
UNION_RECALL = 0.90
COPY_CORRELATION = 0.999
# Whole-number columns shorter than this are not called ids: a few unique readings are common.
MIN_ROWS_FOR_ID = 20
# A text column with at most this many values is checked value by value, like a flag.
MAX_CATEGORY_VALUES = 50
_TRUE_WORDS = {"1", "true", "yes", "y", "t", "si", "sí", "verdadero"}
_FALSE_WORDS = {"0", "false", "no", "n", "f", "falso"}


@dataclass(frozen=True)
class Exclusion:
    """One column the guard sets aside (or would, but the use case keeps it)."""

    column: str
    reason: str
    evidence: str
    kept: bool = False
    # ``evidence`` as data, to be said in any language (planta.i18n.say).
    evidence_said: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = {"column": self.column, "reason": self.reason, "evidence": self.evidence,
               "kept": self.kept}
        return out if self.evidence_said is None else out | {"evidence_said": self.evidence_said}


@dataclass(frozen=True)
class ExclusionReport:
    """What the guard concluded: the exclusions, and notes on columns examined and kept."""

    exclusions: list[Exclusion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    notes_said: list[dict[str, Any]] = field(default_factory=list)

    @property
    def excluded(self) -> list[str]:
        """Headers of the columns set aside (not those kept on request)."""
        return [e.column for e in self.exclusions if not e.kept]

    def to_dict(self) -> dict[str, Any]:
        return {"exclusions": [e.to_dict() for e in self.exclusions], "notes": list(self.notes),
                "notes_said": list(self.notes_said)}


def _resolve(name: str, headers: Sequence[str], what: str) -> str:
    if name in headers:
        return name
    slug = slugify(name)
    for h in headers:
        if slugify(h) == slug or h.strip() == name:
            return h
    raise ContractError(f"{what} {name!r} is not a column of the table.",
                        hint="Check the spelling in planta.toml, or the file's header line.")


def _as_numbers(series: pd.Series) -> np.ndarray | None:
    """float64 values of a column of numbers (text that is mostly numbers too), else None."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return None
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    filled = int(series.notna().sum())
    if filled and (~np.isnan(values)).sum() >= 0.5 * filled:
        return values
    return None


def _lower_bound(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """One-sided Clopper-Pearson lower confidence bound of k/n (0 where k is 0)."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(k)
    some = k > 0
    out[some] = stats.beta.ppf(1 - CONFIDENCE, k[some], n[some] - k[some] + 1)
    return out


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "0 %"


def _show(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def _rows(n: int) -> dict[str, Any]:
    return said("count.row" if n == 1 else "count.rows", n=f"{n:,}")


def _names(columns: Sequence[str], word: str = "and") -> dict[str, Any]:
    """"a, b and c" (or "a or b") in the language that says it."""
    return {"items": [str(c) for c in columns], "last": f"list.{word}"}


@dataclass
class _Target:
    """The rarer outcome of a binary (or class) target, as a mask over the rows."""

    positive: np.ndarray
    valid: np.ndarray
    label: str
    word: dict[str, Any]


def _binary_target(series: pd.Series, header: str) -> _Target | None:
    valid = series.notna().to_numpy()
    values = series.astype(str).str.strip().where(series.notna())
    counts = values.value_counts()
    if len(counts) != 2:
        return None
    # The rarer value; on a tie, the one that reads as "yes".
    ordered = sorted(counts.index, key=lambda v: (counts[v], v.lower() not in _TRUE_WORDS))
    label = ordered[0]
    positive = (values == label).to_numpy(dtype=bool) & valid
    shown = label.removesuffix(".0")
    word = said("leak.word.failures") if re.search(
        r"fail|fault|defect|scrap|reject", header, re.IGNORECASE) else said(
        "leak.word.rows_with", header=header, value=shown)
    return _Target(positive=positive, valid=valid, label=shown, word=word)


def find_exclusions(frame: pd.DataFrame, target: str, task: Task | str, *,
                    keep: Iterable[str] = (), entity: str | None = None,
                    time: str | None = None) -> ExclusionReport:
    """Find leaks, ids and constant columns in a table as read (original headers).

    ``target``, ``entity``, ``time`` and ``keep`` accept original headers or canonical names;
    the result names original headers. See the module docstring for the rules.

    Raises:
        ContractError: the target, entity, time or a kept column is not in the table.

    >>> n = 60
    >>> frame = pd.DataFrame({"Serial": [f"S{i}" for i in range(n)], "Line": ["A"] * n,
    ...                       "Scrap code": [1] * 30 + [0] * 30, "Failed": [1] * 30 + [0] * 30})
    >>> report = find_exclusions(frame, "Failed", "binary")
    >>> [(e.column, e.reason) for e in report.exclusions]
    [('Serial', 'id_unique'), ('Line', 'constant'), ('Scrap code', 'leak_flag')]
    >>> print(report.exclusions[2].evidence)
    Scrap code is set in 30 rows and all 30 are failures: it records the failure after the fact.
    """
    task = Task(task)
    headers = [str(c) for c in frame.columns]
    if frame.columns.duplicated().any():
        raise ContractError("The table has duplicated column names; read it with read_table, "
                            "which names them.")
    target_h = _resolve(target, headers, "The target")
    roles = {target_h}
    for name, what in ((entity, "The entity column"), (time, "The time column")):
        if name:
            roles.add(_resolve(name, headers, what))
    kept = {_resolve(k, headers, "The keep list names") for k in keep}
    examined = [h for h in headers if h not in roles]
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    notes: list[dict[str, Any]] = []
    noted: set[str] = set()

    numbers: dict[str, np.ndarray] = {}
    texts: list[str] = []
    for h in examined:
        values = _as_numbers(frame[h])
        if values is None:
            texts.append(h)
        else:
            numbers[h] = values
    _constant_and_ids(frame, numbers, texts, found)
    y = frame[target_h]
    if task == Task.BINARY:
        tgt = _binary_target(y, target_h)
        if tgt is None:
            notes.append(said("leak.no_two_values", target=target_h))
        else:
            _flag_leaks(frame, numbers, texts, tgt, target_h, found, notes, noted)
    elif task == Task.REGRESSION:
        _copy_leaks(numbers, _as_numbers(y), target_h, found)
    else:
        notes.append(said("leak.classes"))
    english = translator(DEFAULT_LANG)
    exclusions = [Exclusion(h, found[h][0], say(found[h][1], english), kept=h in kept,
                            evidence_said=found[h][1])
                  for h in headers if h in found]
    for e in exclusions:
        if e.kept:
            notes.append(said("leak.kept", h=e.column, evidence=e.evidence_said))
    for h in sorted(kept - set(found), key=headers.index):
        notes.append(said("leak.keep_clean", h=h))
    clean = [h for h in examined if h not in found and h not in noted and h not in kept]
    if len(clean) == 1:
        notes.append(said("leak.clean_one", h=clean[0]))
    elif clean:
        shown = _names(clean) if len(clean) <= 6 else {"sep": ", ", "items": [*clean[:6], "..."]}
        notes.append(said("leak.clean_many", n=f"{len(clean):,}", shown=shown))
    return ExclusionReport(exclusions=exclusions, notes=[say(n, english) for n in notes],
                           notes_said=notes)


def _constant_and_ids(frame: pd.DataFrame, numbers: dict[str, np.ndarray], texts: list[str],
                      found: dict[str, tuple[str, dict[str, Any]]]) -> None:
    n = len(frame)
    if numbers:
        names = list(numbers)
        matrix = np.column_stack([numbers[h] for h in names])
        ordered = np.sort(matrix, axis=0)  # NaN sort last
        filled = (~np.isnan(matrix)).sum(axis=0)
        steps = np.diff(ordered, axis=0)
        changes = ((steps != 0) & ~np.isnan(steps)).sum(axis=0)
        distinct = np.where(filled > 0, changes + 1, 0)
        with np.errstate(invalid="ignore"):
            whole = np.all(np.isnan(matrix) | (matrix == np.floor(matrix)), axis=0)
            rows = np.diff(matrix, axis=0)
            rising = np.all(rows > 0, axis=0)
            falling = np.all(rows < 0, axis=0)
        for j, h in enumerate(names):
            if distinct[j] <= 1:
                found[h] = ("constant", _constant_evidence(h, ordered[0, j], n - filled[j], n))
            elif n >= MIN_ROWS_FOR_ID and filled[j] == n and whole[j] and (rising[j]
                                                                           or falling[j]):
                first, last = matrix[0, j], matrix[-1, j]
                step = "_step" if abs(last - first) == n - 1 else ""
                found[h] = ("id_like", said(f"leak.id_{'rises' if rising[j] else 'falls'}{step}",
                                            h=h, first=_show(first), last=_show(last)))
            elif n >= MIN_ROWS_FOR_ID and filled[j] == n and whole[j] and distinct[j] == n:
                found[h] = ("id_unique", said("leak.id_whole", h=h, n=f"{n:,}"))
    for h in texts:
        series = frame[h]
        n_filled = int(series.notna().sum())
        n_distinct = int(series.nunique(dropna=True))
        if n_distinct <= 1:
            value = series.dropna().iloc[0] if n_filled else None
            found[h] = ("constant", _constant_evidence(h, value, n - n_filled, n))
        elif n_filled == n and n_distinct == n and not pd.api.types.is_datetime64_any_dtype(
                series.dtype):
            found[h] = ("id_unique", said("leak.id_text", h=h, n=f"{n:,}",
                                          example=_show(series.iloc[0])))


def _constant_evidence(h: str, value: Any, empty: int, n: int) -> dict[str, Any]:
    if empty == n or value is None or (isinstance(value, float) and np.isnan(value)):
        return said("leak.constant_empty", h=h)
    if empty == 0:
        return said("leak.constant", h=h, value=_show(value))
    return said("leak.constant_filled", h=h, value=_show(value), empty=f"{empty:,}")


def _flags(frame: pd.DataFrame, numbers: dict[str, np.ndarray], texts: list[str],
           found: dict[str, tuple[str, dict[str, Any]]], tgt: _Target
           ) -> tuple[list[str], np.ndarray, dict[str, Any], set[str]]:
    """Candidate flags: header list, 'set' matrix, what 'set' means, and which are yes/no."""
    names: list[str] = []
    columns: list[np.ndarray] = []
    meaning: dict[str, Any] = {}
    binary: set[str] = set()
    for h, values in numbers.items():
        if h in found:
            continue
        finite = np.isfinite(values)
        zero = finite & (values == 0)
        if not zero.any() or zero.sum() == finite.sum():
            continue
        names.append(h)
        columns.append(finite & (values != 0))
        meaning[h] = "set"
        if set(np.unique(values[finite]).tolist()) == {0.0, 1.0}:
            binary.add(h)
    for h in texts:
        if h in found:
            continue
        series = frame[h]
        words = series.astype(str).str.strip().str.lower().where(series.notna())
        distinct = set(words.dropna().unique())
        if distinct and distinct <= (_TRUE_WORDS | _FALSE_WORDS) and len(distinct) == 2:
            names.append(h)
            columns.append(words.isin(_TRUE_WORDS).to_numpy(dtype=bool))
            meaning[h] = "set"
            binary.add(h)
        elif 2 <= len(distinct) <= MAX_CATEGORY_VALUES:
            # A category whose values each point to the outcome (a "failure type" column).
            text = series.astype(str).where(series.notna())
            table = pd.crosstab(text[tgt.valid], tgt.positive[tgt.valid])
            if True not in table.columns:
                continue
            share = table[True] / table.sum(axis=1)
            leaky = sorted(share[share >= LEAK_SHARE].index)
            if leaky:
                names.append(h)
                columns.append(text.isin(leaky).to_numpy(dtype=bool))
                meaning[h] = said("leak.values", values=_names([repr(v) for v in leaky[:4]], "or"),
                                  more=" ..." if len(leaky) > 4 else "")
    matrix = np.column_stack(columns) if columns else np.zeros((len(frame), 0), dtype=bool)
    return names, matrix, meaning, binary


def _flag_leaks(frame: pd.DataFrame, numbers: dict[str, np.ndarray], texts: list[str],
                tgt: _Target, target_h: str, found: dict[str, tuple[str, dict[str, Any]]],
                notes: list[dict[str, Any]], noted: set[str]) -> None:
    names, setm, meaning, binary = _flags(frame, numbers, texts, found, tgt)
    if not names:
        return
    setm = setm & tgt.valid[:, None]
    n_set = setm.sum(axis=0)
    k = (setm & tgt.positive[:, None]).sum(axis=0)
    share = np.divide(k, n_set, out=np.zeros(len(names)), where=n_set > 0)
    lower = _lower_bound(k, n_set)
    word = tgt.word
    failures = word["key"] == "leak.word.failures"
    thing = said("leak.after.failure" if failures else "leak.after.outcome")
    for j, h in enumerate(names):
        is_set = said("leak.is_set", rows=_rows(n_set[j])) if meaning[h] == "set" else said(
            "leak.is_value", values=meaning[h], rows=_rows(n_set[j]))
        if share[j] >= LEAK_SHARE and lower[j] >= LEAK_LOWER_BOUND:
            how = said("leak.how_all", k=f"{k[j]:,}") if k[j] == n_set[j] else said(
                "leak.how_some", k=f"{k[j]:,}", pct=_pct(k[j], n_set[j]))
            found[h] = ("leak_flag", said("leak.flag", h=h, is_set=is_set, how=how, word=word,
                                          after=thing))
        elif share[j] >= LEAK_SHARE and n_set[j] > 0:
            noted.add(h)
            notes.append(said("leak.few", h=h, is_set=is_set, word=word,
                              all=said("leak.all") if k[j] == n_set[j] else str(k[j]),
                              lower=f"{100 * lower[j]:.0f}"))
        elif h in binary:
            noted.add(h)
            judgement = said("leak.strong") if share[j] >= 0.5 else said("leak.not_away",
                                                                          thing=thing)
            notes.append(said("leak.binary", h=h, is_set=is_set,
                              only=said("leak.only") if share[j] < 0.5 else "", k=f"{k[j]:,}",
                              word=said("leak.word.a_failure") if failures and k[j] == 1
                              else word, pct=_pct(k[j], n_set[j]), judgement=judgement))
    _union_leak(names, setm, share, tgt, target_h, found, notes)


def _union_leak(names: list[str], setm: np.ndarray, share: np.ndarray, tgt: _Target,
                target_h: str, found: dict[str, tuple[str, dict[str, Any]]],
                notes: list[dict[str, Any]]) -> None:
    members = [j for j, h in enumerate(names) if share[j] >= UNION_MEMBER_SHARE]
    if len(members) < 2:
        return
    union = np.asarray(setm[:, members].any(axis=1), dtype=bool)
    valid = tgt.valid
    n_valid = int(valid.sum())
    agree = int((union[valid] == tgt.positive[valid]).sum())
    caught = int((union & tgt.positive).sum())
    n_pos = int(tgt.positive.sum())
    if agree < UNION_AGREEMENT * n_valid or caught < UNION_RECALL * n_pos:
        return
    group = [names[j] for j in members]
    sentence = said("leak.union", group=_names(group), target=target_h, agree=f"{agree:,}",
                    n=f"{n_valid:,}", pct=_pct(agree, n_valid), caught=f"{caught:,}",
                    pos=f"{n_pos:,}", word=tgt.word)
    notes.append(sentence)
    for h in group:
        if h not in found:
            found[h] = ("leak_union", said("leak.union_member", h=h, group=_names(group),
                                           sentence=sentence))


def _copy_leaks(numbers: dict[str, np.ndarray], y: np.ndarray | None, target_h: str,
                found: dict[str, tuple[str, dict[str, Any]]]) -> None:
    if y is None or not numbers:
        return
    names = [h for h in numbers if h not in found]
    if not names:
        return
    matrix = np.column_stack([numbers[h] for h in names])
    both = np.isfinite(matrix) & np.isfinite(y)[:, None]
    count = both.sum(axis=0)
    x = np.where(both, matrix, 0.0)
    t = np.where(both, y[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = x.sum(0) / count, t.sum(0) / count
        dx, dy = np.where(both, x - mx, 0.0), np.where(both, t - my, 0.0)
        corr = (dx * dy).sum(0) / np.sqrt((dx * dx).sum(0) * (dy * dy).sum(0))
    for j, h in enumerate(names):
        if count[j] >= 3 and np.isfinite(corr[j]) and abs(corr[j]) > COPY_CORRELATION:
            found[h] = ("leak_copy", said("leak.copy", h=h, target=target_h,
                                          corr=f"{corr[j]:.4f}", n=f"{count[j]:,}"))


__all__ = ["REASONS", "Exclusion", "ExclusionReport", "find_exclusions"]

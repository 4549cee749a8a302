"""Check a whole table against its contract: accepted rows, quarantined rows, a quality report.

Per-value rules come from :func:`planta_edge.contract.validate_columns` (one implementation for
ingest, batch scoring, the API and the edge). This module adds what needs the whole table:

    target_missing   the target is empty in a row: a row without an answer cannot teach
                     (a reason code of its own, next to the edge's codes)
    one class        every accepted row has the same target value: nothing to learn (error)
    all rejected     no row passes (error, with the most common reasons)
    duplicates       exact copies of an earlier row (kept, counted), and rows whose inputs
                     repeat with a different target (counted)
    report           missing values per column, out-of-range and new-category counts, label
                     balance, and ``findings``: sentences a process engineer can act on

Every input row ends up either in ``accepted`` or in ``quarantine``; none is dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from planta.errors import ContractError, InputError, keyed, violation_said
from planta.i18n import DEFAULT_LANG, said, say, translator
from planta_edge.contract import Contract, Field, Violation, validate_columns

TARGET_MISSING = "target_missing"
RANGE_RULES = ("below_physical", "above_physical", "below_min", "above_max")
# Why rows were set aside, in plain words (completing "... were set aside because ...").
# Why a row was set aside, per rule: the catalogue's ``rule_words.<rule>`` (English here).
RULE_WORDS = {rule: translator(DEFAULT_LANG)(f"rule_words.{rule}") for rule in (
    "missing_field", "extra_field", "null", "type", "not_finite", "below_physical",
    "above_physical", "below_min", "above_max", "unknown_category", "not_integer",
    TARGET_MISSING)}
# Rare classes below this share get a finding of their own.
RARE_CLASS_SHARE = 0.01


@dataclass(frozen=True)
class FrameCheck:
    """The result of :func:`check_frame`.

    ``accepted`` has canonical column names (features, entity, time, target, in contract
    order) and clean dtypes: float64 for numbers, integers and yes/no features; int64 0/1 for a
    yes/no target; pandas ``category`` (the contract's categories) for categories; object (str)
    for text; datetime64 for datetimes. Its index runs 0..n-1.

    ``quarantine`` has the original rows and headers, plus ``_row`` (the 1-based data row; in a
    CSV file that is line ``_row + 1``) and ``_reason`` (rule code, then the message).
    """

    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict[str, Any]


def _column_array(series: pd.Series) -> np.ndarray:
    """numpy values as the contract rules expect them (None for an empty text cell)."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return series.to_numpy()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        if getattr(dtype, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.to_numpy(dtype="datetime64[ms]")
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = series.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return values


def _missing(series: pd.Series) -> np.ndarray:
    mask = series.isna().to_numpy()
    if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
        mask = mask | series.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(bool)
    return mask


def _pct(part: int, whole: int) -> str:
    share = 100.0 * part / whole if whole else 0.0
    return f"{share:.1f} %" if share >= 0.1 or part == 0 else "< 0.1 %"


def _rows(n: int) -> dict[str, Any]:
    return said("count.row" if n == 1 else "count.rows", n=f"{n:,}")


def _why(rule: str) -> Any:
    return said(f"rule_words.{rule}") if rule in RULE_WORDS else rule


def _first(rule: str, message: str, violations: list[Violation], ok: np.ndarray) -> Any:
    """The first set-aside row's sentence for ``rule``, as data when the violation has words."""
    for v in violations:
        if v.rule == rule and v.row is not None and not ok[v.row] and v.message == message:
            return violation_said(v) or message
    return message


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _clean_column(f: Field, values: np.ndarray, is_target: bool) -> pd.Series | np.ndarray:
    if f.kind == "boolean" and is_target:
        return values.astype(np.int64)
    if f.kind in ("number", "integer", "boolean"):
        return values.astype(np.float64)
    if f.kind == "category":
        return pd.Categorical(values, categories=list(f.categories) if f.categories else None)
    if f.kind == "datetime":
        return values
    return values.astype(object)


def check_frame(contract: Contract, frame: pd.DataFrame, *, range_policy: str = "reject",
                require_target: bool = True) -> FrameCheck:
    """Split a table into accepted and quarantined rows and report on its quality.

    ``frame`` has the file's original headers (canonical names work too). The target is checked
    like any field except that its training range does not apply (new data may go further) and
    an empty target quarantines the row with reason ``target_missing``. With
    ``require_target=False`` (scoring a file that may lack the answer) a missing target column
    is allowed.

    Raises:
        ContractError: the target column is missing (when required), or every row is rejected.
        InputError: the accepted rows hold only one target value: nothing to learn.

    >>> from planta_edge.contract import Field
    >>> c = Contract((Field("speed_rpm", "number", label="Speed [rpm]", minimum=1200.0,
    ...                     maximum=2800.0, physical_min=0.0),
    ...               Field("failed", "boolean", label="Failed", role="target")), target="failed")
    >>> frame = pd.DataFrame({"Speed [rpm]": [1500, 1600, "fast", 1700],
    ...                       "Failed": [0, 1, 0, None]})
    >>> check = check_frame(c, frame)
    >>> check.accepted.to_dict("list")
    {'speed_rpm': [1500.0, 1600.0], 'failed': [0, 1]}
    >>> check.quarantine[["_row", "_reason"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [[3, "type: Row 3, column 'Speed [rpm]': 'fast' is not a number"],
     [4, "target_missing: Row 4, column 'Failed': the target is empty; a row without an answer
          cannot teach the model"]]
    """
    n = len(frame)
    if n == 0:
        raise keyed(ContractError, "err.quality.no_rows")
    headers = [str(c) for c in frame.columns]
    header_of: dict[str, str] = {}
    for h in headers:
        name = contract.resolve(h)
        if name is not None:
            header_of.setdefault(name, h)
    target = contract.field(contract.target) if contract.target else None
    if target is not None and target.name not in header_of and require_target:
        raise keyed(ContractError, "err.quality.no_target", label=target.display)
    checked = [f for f in contract.fields if f.role in ("feature", "entity", "time")]
    if target is not None and target.name in header_of:
        # A new dataset may reach beyond the training range of the target: physics only.
        checked.append(replace(target, nullable=True, minimum=None, maximum=None))
    columns = {header_of[f.name]: _column_array(frame[header_of[f.name]])
               for f in checked if f.name in header_of}
    result = validate_columns(contract, columns, fields=checked, range_policy=range_policy,
                              n_rows=n)
    ok, reasons, violations = result.ok.copy(), result.reasons.copy(), list(result.violations)
    target_missing = np.zeros(n, dtype=bool)
    if target is not None and target.name in header_of:
        target_missing = _missing(frame[header_of[target.name]])
        for i in np.flatnonzero(target_missing):
            message = (f"Row {i + 1}, column {target.display!r}: the target is empty; a row "
                       "without an answer cannot teach the model")
            violations.append(Violation(int(i), target.name, TARGET_MISSING, None, message,
                                        TARGET_MISSING, {"n": i + 1, "where": "row_column",
                                                         "label": target.display}))
            if ok[i]:
                reasons[i] = f"{TARGET_MISSING}: {message}"
            ok[i] = False
    if not ok.any():
        raise _all_rejected(n, reasons, violations, ok)
    keep = np.flatnonzero(ok)
    accepted = pd.DataFrame({f.name: _clean_column(f, result.values[f.name][keep],
                                                   f.role == "target")
                             for f in checked})
    if target is not None and target.name in accepted:
        _refuse_one_class(target, accepted[target.name])
    dropped = np.flatnonzero(~ok)
    quarantine = frame.iloc[dropped].copy()
    quarantine["_row"] = dropped + 1
    quarantine["_reason"] = reasons[dropped].astype(object)
    quarantine = quarantine.reset_index(drop=True)
    report = _report(contract, frame, header_of, checked, accepted, ok, reasons, violations,
                     result.flagged, target, range_policy)
    return FrameCheck(accepted=accepted, quarantine=quarantine, report=report)


def _all_rejected(n: int, reasons: np.ndarray, violations: list[Violation],
                  ok: np.ndarray) -> ContractError:
    by_rule = Counter(str(r).split(":", 1)[0] for r in reasons)
    rule, count = by_rule.most_common(1)[0]
    example = next(str(r).split(": ", 1)[1] for r in reasons if str(r).startswith(rule))
    return keyed(ContractError, "err.quality.all_rejected", violations[:1000], n=f"{n:,}",
                 rows=_rows(count), why=_why(rule),
                 first=_first(rule, example, violations, ok))


def _refuse_one_class(target: Field, values: pd.Series) -> None:
    distinct = pd.unique(values.dropna())
    if len(distinct) >= 2:
        return
    shown = str(_plain(distinct[0])) if len(distinct) else said("err.none")
    raise keyed(InputError, "err.quality.one_class", label=target.display, shown=shown)


def _report(contract: Contract, frame: pd.DataFrame, header_of: dict[str, str],
            checked: list[Field], accepted: pd.DataFrame, ok: np.ndarray, reasons: np.ndarray,
            violations: list[Violation], flagged: np.ndarray, target: Field | None,
            range_policy: str) -> dict[str, Any]:
    n, n_ok = len(frame), int(ok.sum())
    rejected_by_rule = Counter(str(r).split(":", 1)[0] for r in reasons[~ok])
    violations_by_rule = Counter(v.rule for v in violations)
    labels = {f.name: f.display for f in contract.fields}
    missing_by_column: dict[str, int] = {}
    for f in checked:
        if f.name in header_of:
            count = int(_missing(frame[header_of[f.name]]).sum())
            if count:
                missing_by_column[f.display] = count
    out_of_range: dict[str, dict[str, int]] = {}
    new_categories: dict[str, dict[str, int]] = {}
    for v in violations:
        label = labels.get(v.field or "", v.field or "")
        if v.rule in RANGE_RULES:
            side = out_of_range.setdefault(label, {})
            side[v.rule] = side.get(v.rule, 0) + 1
        elif v.rule == "unknown_category":
            seen = new_categories.setdefault(label, {})
            seen[str(v.value)] = seen.get(str(v.value), 0) + 1
    duplicates = int(frame.duplicated(keep="first").sum())
    conflicting = 0
    inputs = [header_of[f.name] for f in checked if f.role == "feature" and f.name in header_of]
    if target is not None and target.name in header_of and inputs:
        both = frame[inputs + [header_of[target.name]]].drop_duplicates()
        conflicting = int(both.duplicated(subset=inputs, keep=False).sum())
    balance = _balance(target, accepted)
    report: dict[str, Any] = {
        "rows": n, "accepted": n_ok, "rejected": n - n_ok,
        "flagged": int(flagged.sum()), "range_policy": range_policy,
        "rejected_by_rule": dict(sorted(rejected_by_rule.items())),
        "violations_by_rule": dict(sorted(violations_by_rule.items())),
        "missing_by_column": missing_by_column,
        "duplicates": {"rows": duplicates, "conflicting": conflicting, "kept": True},
        "out_of_range": out_of_range, "new_categories": new_categories,
        "target": None if target is None else {"name": target.name, "label": target.display},
        "label_balance": balance,
    }
    # The sentences as data (any language: planta.i18n.say), and in English for logs and JSON.
    report["findings_said"] = _findings(report, reasons, ok, target, violations)
    english = translator(DEFAULT_LANG)
    report["findings"] = [say(doc, english) for doc in report["findings_said"]]
    return report


def _balance(target: Field | None, accepted: pd.DataFrame) -> dict[str, Any] | None:
    if target is None or target.name not in accepted:
        return None
    values = accepted[target.name]
    if target.kind in ("number", "integer"):
        return {"min": float(values.min()), "max": float(values.max()),
                "mean": float(values.mean()), "count": int(values.notna().sum())}
    counts = values.astype(str).value_counts(sort=False)
    total = int(counts.sum())
    return {str(k): {"count": int(c), "share": round(int(c) / total, 6)}
            for k, c in sorted(counts.items(), key=lambda kv: str(kv[0]))}


def _findings(report: dict[str, Any], reasons: np.ndarray, ok: np.ndarray,
              target: Field | None, violations: list[Violation]) -> list[dict[str, Any]]:
    """The data-quality report's sentences, as data (:func:`planta.i18n.said`)."""
    n, n_ok = report["rows"], report["accepted"]
    lines = [said("quality.read", rows=_rows(n), accepted=f"{n_ok:,}", rejected=f"{n - n_ok:,}")]
    firsts: dict[str, str] = {}
    for r in reasons[~ok]:
        rule, _, message = str(r).partition(": ")
        firsts.setdefault(rule, message)
    for rule, count in sorted(report["rejected_by_rule"].items(), key=lambda kv: -kv[1]):
        lines.append(said("quality.set_aside", rows=_rows(count), pct=_pct(count, n),
                          why=_why(rule), first=_first(rule, firsts[rule], violations, ok)))
    if report["flagged"]:
        lines.append(said("quality.flagged", rows=_rows(report["flagged"])))
    missing = report["missing_by_column"]
    if missing:
        worst = sorted(missing.items(), key=lambda kv: -kv[1])[:3]
        # Commas only: "'a' in 3 rows (1 %), 'b' in 2 rows (0.5 %)".
        shown = {"sep": ", ", "items": [said("quality.empty_where", label=label, rows=_rows(c),
                                             pct=_pct(c, n)) for label, c in worst]}
        more = said("quality.more_columns", n=len(missing) - 3) if len(missing) > 3 else ""
        lines.append(said("quality.empty_many" if len(missing) > 1 else "quality.empty_one",
                          n=len(missing), shown=shown, more=more))
    dup = report["duplicates"]
    if dup["rows"]:
        lines.append(said("quality.duplicates", rows=_rows(dup["rows"]),
                          pct=_pct(dup["rows"], n)))
    if dup["conflicting"]:
        lines.append(said("quality.conflicting", rows=_rows(dup["conflicting"])))
    for label, sides in report["out_of_range"].items():
        lines.append(said("quality.out_of_range", label=label, n=f"{sum(sides.values()):,}"))
    for label, values in report["new_categories"].items():
        lines.append(said("quality.new_categories", label=label,
                          shown=", ".join(repr(v) for v in sorted(values)[:5])))
    balance = report["label_balance"]
    if target is not None and balance:
        if target.kind in ("number", "integer"):
            lines.append(said("quality.target_range", label=target.display,
                              low=f"{balance['min']:.6g}", high=f"{balance['max']:.6g}",
                              mean=f"{balance['mean']:.6g}"))
        else:
            ordered = sorted(balance.items(), key=lambda kv: kv[1]["count"])
            parts = [said("quality.balance_part", value=k, n=f"{v['count']:,}",
                          pct=_pct(v["count"], n_ok)) for k, v in ordered]
            lines.append(said("quality.balance", label=target.display, parts={"items": parts}))
            rare = [k for k, v in balance.items() if v["share"] < RARE_CLASS_SHARE]
            for k in rare:
                lines.append(said("quality.rare", rows=_rows(balance[k]["count"]),
                                  label=target.display, value=k))
    return lines


__all__ = ["RULE_WORDS", "TARGET_MISSING", "FrameCheck", "check_frame"]

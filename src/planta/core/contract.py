"""Infer a data contract from a training table, and write it as an editable TOML file.

The rules themselves live in :mod:`planta_edge.contract` (one implementation for the hub, the
server and the edge); this module decides, from a pandas frame and a use case, what each column
is:

    name        slugify(header); a second header with the same slug gets ``_2``
    kind        number | integer | boolean | category | datetime | text (see infer_contract)
    role        target, entity and time from the use case; ignored for leaks, ids, the use
                case's exclude list, free text and stray time stamps; feature otherwise
    range       observed minimum / maximum, tolerance 0.1 of the span
    physics     unit from the header ("Air temperature [K]" -> K -> never below 0)
    nullable    the training data has empty cells in the column
    categories  the values seen, as text, sorted ("H", "L", "M"; never codes)
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
import tomli_w

from planta.core.spec import Task, UseCase
from planta.errors import ContractError
from planta_edge.contract import (
    Contract,
    Field,
    parse_unit,
    physical_bounds,
    slugify,
    text_values,
    validate_columns,
)

# A text column with at most this many different values (and values repeating) is a category.
MAX_CATEGORIES = 50
DEFAULT_TOLERANCE = 0.1
# A column counts as numbers when at least this share of its filled cells are numbers; the
# others are then rejected, row by row, by the contract rules instead of making it text.
NUMERIC_SHARE = 0.5
# A physical bound guessed from the unit is dropped when more of the data than this breaks it:
# then the unit means something else (a position in metres can be negative).
PHYSICAL_BREAK_SHARE = 0.01
# Patterns tried, in order, on a text column that may hold dates; day first before month
# first, because most plants outside the US write 19/07/2008.
DATETIME_FORMATS: tuple[str | None, ...] = (
    None, "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y", "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M", "%m/%d/%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%Y%m%d%H%M%S",
)
_TRUE_WORDS = {"true", "yes", "y", "t", "si", "sí", "verdadero"}
_FALSE_WORDS = {"false", "no", "n", "f", "falso"}


class ExclusionLike(Protocol):
    """What :func:`infer_contract` needs from a :class:`planta.core.leakage.Exclusion`."""

    column: str
    reason: str
    evidence: str
    kept: bool


def canonical_names(headers: Sequence[str]) -> list[str]:
    """Canonical names of headers, in order; a repeated slug gets ``_2``, ``_3`` ...

    >>> canonical_names(["Torque [Nm]", "torque (Nm)", "AFDP "])
    ['torque_nm', 'torque_nm_2', 'afdp']
    """
    out: list[str] = []
    taken: set[str] = set()
    for header in headers:
        base = slugify(header)
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        out.append(name)
    return out


def _locate(name: str, headers: Sequence[str], names: Sequence[str], what: str) -> int:
    """Index of the column a user named (original header, canonical name, or its slug)."""
    for candidates in (headers, names, [h.strip() for h in headers]):
        if name in candidates:
            return list(candidates).index(name)
    slug = slugify(name)
    if slug in names:
        return list(names).index(slug)
    shown = ", ".join(repr(h) for h in headers[:15]) + (" ..." if len(headers) > 15 else "")
    raise ContractError(f"{what} {name!r} is not a column of the table (it has {shown}).",
                        hint="Check the spelling in planta.toml, or the file's header line.")


def _numbers(series: pd.Series) -> tuple[np.ndarray, int]:
    """Float values of a column (NaN where empty or not a number) and how many filled cells."""
    if pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, int((~np.isnan(values)).sum())
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, int((~np.isnan(values)).sum())
    text = text_values(series.to_numpy(dtype=object, na_value=None))
    filled = int(sum(v is not None for v in text))
    # The same decimal-comma reading as the contract rules: "3,14" is 3.14.
    cleaned = [v.strip().replace(",", ".") if isinstance(v, str) and v.count(",") == 1
               and "." not in v else v for v in text]
    values = pd.to_numeric(pd.Series(cleaned, dtype=object), errors="coerce")
    return values.to_numpy(dtype=np.float64, na_value=np.nan), filled


def _natural_key(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _categories(series: pd.Series) -> tuple[str, ...]:
    """Distinct values as text, numbers in numeric order, then text in alphabetical order."""
    text = text_values(series.to_numpy(dtype=object, na_value=None))
    return tuple(sorted({v for v in text if v is not None}, key=_natural_key))


def _datetime_format(series: pd.Series) -> tuple[bool, str | None]:
    """Whether a text column holds dates, and in which pattern (None: ISO 8601)."""
    text = [v for v in text_values(series.to_numpy(dtype=object, na_value=None))
            if v is not None][:500]
    if not text or not any(ch.isdigit() for ch in text[0]):
        return False, None
    column = np.asarray(text, dtype=object)
    for fmt in DATETIME_FORMATS:
        probe = Contract((Field("t", "datetime", nullable=True, datetime_format=fmt),))
        result = validate_columns(probe, {"t": column})
        if result.n_rejected <= 0.05 * len(text):
            return True, fmt
    return False, None


def _kind_of(series: pd.Series) -> tuple[str, str | None]:
    """(kind, datetime_format) of a feature column; see :func:`infer_contract`."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean", None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime", None
    if pd.api.types.is_integer_dtype(dtype):
        return "integer", None
    if pd.api.types.is_numeric_dtype(dtype):
        return "number", None
    numbers, filled = _numbers(series)
    if filled == 0:
        return "text", None
    if (~np.isnan(numbers)).sum() >= NUMERIC_SHARE * filled:
        return "number", None
    text = [v for v in text_values(series.to_numpy(dtype=object, na_value=None)) if v is not None]
    words = {v.strip().lower() for v in text}
    if words <= (_TRUE_WORDS | _FALSE_WORDS) and words & _TRUE_WORDS and words & _FALSE_WORDS:
        return "boolean", None
    if all(hasattr(v, "year") for v in series.dropna().iloc[:50]):
        return "datetime", None
    is_datetime, fmt = _datetime_format(series)
    if is_datetime:
        return "datetime", fmt
    distinct = len(set(text))
    if distinct <= MAX_CATEGORIES and distinct <= max(2, len(text) // 2):
        return "category", None
    return "text", None


def _target_kind(series: pd.Series, header: str, task: Task) -> str:
    if task == Task.REGRESSION:
        numbers, filled = _numbers(series)
        if filled and (~np.isnan(numbers)).sum() >= NUMERIC_SHARE * filled:
            return "number"
        raise ContractError(f"The target {header!r} is not a column of numbers, but the use case "
                            "is a regression.",
                            hint="Pick a column of measured values, or set task = \"binary\" or "
                                 "\"multiclass\" in planta.toml.")
    values = _categories(series)
    if task == Task.BINARY:
        if len(values) > 2:
            shown = ", ".join(values[:6]) + (" ..." if len(values) > 6 else "")
            raise ContractError(f"The target {header!r} has {len(values)} different values "
                                f"({shown}); a binary use case needs two (failure / no failure).",
                                hint="Set task = \"multiclass\", or pick a yes/no column.")
        words = {v.strip().lower() for v in values}
        if pd.api.types.is_bool_dtype(series.dtype) or set(values) <= {"0", "1"} or (
                words <= (_TRUE_WORDS | _FALSE_WORDS | {"0", "1"})):
            return "boolean"
    return "category"


def _number_field(name: str, header: str, role: str, series: pd.Series, kind: str,
                  nullable: bool) -> Field:
    numbers, _ = _numbers(series)
    unit = parse_unit(header)
    low, high = physical_bounds(unit)
    finite = numbers[np.isfinite(numbers)]
    notes = []
    for bound, broken, side in ((low, finite < low if low is not None else None, "below"),
                                (high, finite > high if high is not None else None, "above")):
        if bound is not None and broken is not None and broken.mean() > PHYSICAL_BREAK_SHARE:
            notes.append(f"{broken.sum()} values are {side} {bound:g} {unit}, so the unit does "
                         "not set a physical bound here")
            if side == "below":
                low = None
            else:
                high = None
    inside = finite
    if low is not None:
        inside = inside[inside >= low]
    if high is not None:
        inside = inside[inside <= high]
    return Field(name=name, kind=kind, label=header, role=role, nullable=nullable,
                 minimum=float(inside.min()) if inside.size else None,
                 maximum=float(inside.max()) if inside.size else None,
                 tolerance=DEFAULT_TOLERANCE, physical_min=low, physical_max=high, unit=unit,
                 description="; ".join(notes) or None)


def _has_missing(series: pd.Series) -> bool:
    if series.isna().any():
        return True
    if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
        return bool(series.astype(str).str.strip().eq("").any())
    return False


def infer_contract(frame: pd.DataFrame, usecase: UseCase, *,
                   exclusions: Iterable[ExclusionLike] | Any = ()) -> Contract:
    """Infer the contract of a use case from its training table (original headers).

    Kinds: pandas booleans are ``boolean``; integer columns ``integer``; other numbers
    ``number`` (a 0/1 column stays a number: a model reads it the same, and the range rule
    still rejects a 2); text that is mostly numbers is ``number`` (its text cells are then
    rejected row by row); true/false or yes/no text is ``boolean``; dates are ``datetime``
    (the pattern is kept in ``datetime_format``); text with at most 50 values that repeat is
    ``category``; other text is ``text``. The target is ``boolean`` for a binary use case with
    0/1 or yes/no values, ``category`` for other classes (SECOM's -1/1), ``number`` for
    regression.

    ``exclusions`` are the leak and id guard's findings (:func:`planta.core.leakage.
    find_exclusions`); those with ``kept`` set stay features. The use case's ``include`` and
    ``exclude`` lists accept original headers or canonical names; ``include`` wins over the
    guard, because a person chose it.

    Raises:
        ContractError: the target, entity, time or a listed column is not in the table; the
            table has no rows; the target does not fit the task.

    >>> from planta.core.spec import Task, UseCase, parse_objective
    >>> uc = UseCase("failure", Task.BINARY, "Failed", parse_objective("", Task.BINARY))
    >>> frame = pd.DataFrame({"Air temperature [K]": [298.1, 300.4, 301.2],
    ...                       "Type": ["L", "M", "L"], "Failed": [0, 1, 0]})
    >>> c = infer_contract(frame, uc)
    >>> [(f.name, f.kind, f.role) for f in c.fields]  # doctest: +NORMALIZE_WHITESPACE
    [('air_temperature_k', 'number', 'feature'), ('type', 'category', 'feature'),
     ('failed', 'boolean', 'target')]
    >>> c.field("air_temperature_k").physical_min, c.field("type").categories
    (0.0, ('L', 'M'))
    """
    if len(frame) == 0:
        raise ContractError("The table has no rows, so there is nothing to infer a contract from.",
                            hint="Ingest a file with data rows.")
    headers = [str(c) for c in frame.columns]
    names = canonical_names(headers)
    target = _locate(usecase.target, headers, names, "The use case's target")
    roles: dict[int, str] = {target: "target"}
    notes: dict[int, str] = {target: "the target: what the model predicts"}
    for key, role, text in (("entity", "entity", "the machine, line or batch a row belongs to"),
                            ("time", "time", "when the row was recorded")):
        value = getattr(usecase, key)
        if value:
            index = _locate(value, headers, names, f"The use case's {key} column")
            roles.setdefault(index, role)
            notes.setdefault(index, text)
    included = {_locate(n, headers, names, "The use case's include list names")
                for n in usecase.include}
    for n in usecase.exclude:
        index = _locate(n, headers, names, "The use case's exclude list names")
        if index not in roles:
            roles[index] = "ignored"
            notes[index] = "left out: listed in the use case's exclude list"
    for exclusion in getattr(exclusions, "exclusions", exclusions) or ():
        index = _locate(exclusion.column, headers, names, "The leak and id guard names")
        if exclusion.kept or index in roles or index in included:
            continue
        roles[index] = "ignored"
        notes[index] = f"left out by the leak and id guard ({exclusion.reason}): " \
                       f"{exclusion.evidence}"
    if included:
        for index in range(len(headers)):
            if index not in roles and index not in included:
                roles[index] = "ignored"
                notes[index] = "left out: not in the use case's include list"
    fields = [_infer_field(frame.iloc[:, i], headers[i], names[i], roles.get(i, "feature"),
                           notes.get(i), usecase.task) for i in range(len(headers))]
    return Contract(fields=tuple(fields), target=names[target])


def _infer_field(series: pd.Series, header: str, name: str, role: str, note: str | None,
                 task: Task) -> Field:
    nullable = _has_missing(series) and role != "target"
    if role == "target":
        kind, fmt = _target_kind(series, header, task), None
    else:
        kind, fmt = _kind_of(series)
    if kind == "integer" and parse_unit(header):
        # A measurement logged in whole units (1551 rpm, 42 min) can arrive with decimals from
        # another logger; only unit-less counts and codes must stay whole numbers.
        kind = "number"
    if role == "feature" and kind == "text":
        distinct = series.nunique(dropna=True)
        role, note = "ignored", (f"free text with {distinct} different values: the model cannot "
                                 "read it as it is (make it a category, or leave it out)")
    elif role == "feature" and kind == "datetime":
        role, note = "ignored", ("a date and time: name it as the use case's time column to "
                                 "order the data by it")
    if kind in ("number", "integer"):
        made = _number_field(name, header, role, series, kind, nullable)
        if note:
            made = Field(**{**_field_kwargs(made), "description": "; ".join(
                d for d in (note, made.description) if d)})
        return made
    categories = _categories(series) if kind == "category" else None
    return Field(name=name, kind=kind, label=header, role=role, nullable=nullable,
                 categories=categories, description=note, datetime_format=fmt)


def _field_kwargs(f: Field) -> dict[str, Any]:
    return {k: getattr(f, k) for k in f.__dataclass_fields__}


# --------------------------------------------------------------------------------------------
# the editable file

CONTRACT_FORMAT = "planta.contract/1"
_HEADER = """\
# planta data contract. Every row is checked against it: at ingest, in batch scoring, by the
# API and on the edge device. Rows that break it are set aside with the reason, never dropped.
#
# target            the field the model predicts
# [[fields]]        one block per column of the plant's file, in file order
#   name            canonical name; do not rename a field once a model uses it
#   label           the column header as written in the plant's file
#   kind            number | integer | boolean | category | datetime | text
#   role            feature (the model reads it) | target | entity (machine, batch)
#                   | time | ignored (not used; description says why)
#   nullable        true: the value may be empty
#   minimum         lowest value seen in training
#   maximum         highest value seen in training
#   tolerance       how far beyond minimum/maximum a value is still accepted, as a share
#                   of the span (0.1 = 10 %); widen it, or the range, to accept more
#   physical_min    what physics allows (no negative kelvin or speed); always enforced
#   physical_max    (a share in % never above 100)
#   unit            unit from the header, e.g. "K" for "Air temperature [K]"
#   categories      values the model knows; any other value is rejected
#   datetime_format how dates are written, e.g. "%d/%m/%Y %H:%M:%S" (absent: ISO 8601)
#   description     why a field is ignored, or a note
"""
_FIELD_ORDER = ("name", "label", "kind", "role", "nullable", "unit", "minimum", "maximum",
                "tolerance", "physical_min", "physical_max", "categories", "datetime_format",
                "description")


def contract_to_text(contract: Contract) -> str:
    """The contract as a commented TOML file a process engineer can read and edit.

    >>> text = contract_to_text(Contract((Field("type", "category", label="Type",
    ...                                          categories=("H", "L", "M")),)))
    >>> print(text[text.index("\\n[[fields]]"):].strip())
    [[fields]]
    name = "type"
    label = "Type"
    kind = "category"
    role = "feature"
    nullable = false
    categories = [
        "H",
        "L",
        "M",
    ]
    """
    data = contract.to_dict()
    top: dict[str, Any] = {"format": data["format"], "version": data["version"]}
    if data.get("target") is not None:
        top["target"] = data["target"]
    fields = []
    for f in data["fields"]:
        fields.append({k: f[k] for k in _FIELD_ORDER if f.get(k) is not None})
    top["fields"] = fields
    return _HEADER + "\n" + tomli_w.dumps(top)


def contract_from_text(text: str, *, source: str | None = None) -> Contract:
    """Read a contract written by :func:`contract_to_text` (TOML) or ``Contract.to_dict`` (JSON).

    Raises:
        ContractError: the text is not TOML/JSON, or an edit broke a rule; the message names
            the file, the field and the key.

    >>> c = contract_from_text('target = "y"\\n[[fields]]\\nname = "y"\\nkind = "boolean"\\n'
    ...                        'role = "target"\\n')
    >>> c.target, c.field("y").kind
    ('y', 'boolean')
    >>> contract_from_text('[[fields]]\\nname = "t"\\nkind = "number"\\nminimum = "low"\\n')
    Traceback (most recent call last):
    ...
    planta_edge.errors.ContractError: contract: Field 't': key 'minimum' is 'low', not a number. \
Write a plain number such as 3.8.
    """
    where = source or "contract"
    try:
        data: Any = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"{where}: the file is not valid TOML ({exc}).",
                            hint="Undo the last edit, or compare it with the comments at the top "
                                 "of the file.") from None
    known = {"format", "version", "target", "fields"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ContractError(f"{where}: unknown top-level keys {unknown}.",
                            hint=f"The top level holds only {sorted(known)}; a key meant for a "
                                 "field belongs under its [[fields]] block.")
    if data.get("format", CONTRACT_FORMAT) != CONTRACT_FORMAT:
        raise ContractError(f"{where}: format {data.get('format')!r} is not {CONTRACT_FORMAT!r}.")
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise ContractError(f"{where}: the contract has no [[fields]] blocks.",
                            hint="Each column needs a [[fields]] block with name and kind.")
    fields = []
    for i, raw in enumerate(raw_fields):
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: field number {i + 1} is not a block of keys.")
        try:
            fields.append(Field.from_dict(raw))
        except ContractError as exc:
            raise ContractError(f"{where}: {exc.message}", hint=exc.hint) from None
        except TypeError as exc:
            raise ContractError(f"{where}: field {raw.get('name')!r}: {exc}.") from None
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ContractError(f"{where}: key 'version' is {version!r}; write a whole number.")
    try:
        contract = Contract(fields=tuple(fields), target=data.get("target"), version=version)
    except ContractError as exc:
        raise ContractError(f"{where}: {exc.message}", hint=exc.hint) from None
    _check_roles(contract, where)
    return contract


def _check_roles(contract: Contract, where: str) -> None:
    targets = [f.name for f in contract.fields if f.role == "target"]
    if contract.target is None:
        if targets:
            raise ContractError(f"{where}: field {targets[0]!r} has role 'target' but the "
                                "top-level key 'target' is missing.",
                                hint=f'Add target = "{targets[0]}" at the top.')
        return
    if contract.target not in {f.name for f in contract.fields}:
        raise ContractError(f"{where}: key 'target' names {contract.target!r}, which is not a "
                            "field.", hint="Write the name of one of the [[fields]] blocks.")
    if targets != [contract.target]:
        raise ContractError(f"{where}: the target is {contract.target!r}, but the fields with "
                            f"role 'target' are {targets}.",
                            hint="Exactly one field, the target, has role = \"target\".")
    for f in contract.fields:
        if f.kind == "category" and f.role in ("feature", "target") and not f.categories:
            raise ContractError(f"{where}: field {f.name!r}, key 'categories': a category "
                                "field needs the list of its values.",
                                hint='Write it like categories = ["H", "L", "M"].')
        if f.datetime_format is not None and f.kind != "datetime":
            raise ContractError(f"{where}: field {f.name!r}, key 'datetime_format': only a "
                                "datetime field has a date pattern.")
        if f.datetime_format is not None and not re.search(r"%[Yy]", f.datetime_format):
            raise ContractError(f"{where}: field {f.name!r}, key 'datetime_format': "
                                f"{f.datetime_format!r} has no year (%Y).",
                                hint='Write it like "%d/%m/%Y %H:%M:%S".')


__all__ = ["CONTRACT_FORMAT", "DATETIME_FORMATS", "MAX_CATEGORIES", "canonical_names",
           "contract_from_text", "contract_to_text", "infer_contract"]

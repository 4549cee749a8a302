"""The data contract: what a valid input looks like, and the one implementation of its rules.

A contract is data (frozen dataclasses, to and from plain dicts); checking it is
:func:`validate_columns`, which works on whole columns with numpy so that one code path
serves a single HTTP record, a 5-million-row batch file and an MQTT reading alike.

Rule codes (stable, public: they appear in API error bodies and quarantine files):

    missing_field      a field of the contract is absent from the input
    extra_field        the input has a field the contract does not know (policy: reject or ignore)
    null               a value is missing where the field is not nullable
    type               a value is not of the field's kind ("abc" in a number field)
    not_finite         NaN or infinity in a number field
    below_physical     below a physical bound (negative kelvin, speed, minutes)
    above_physical     above a physical bound (a share over 100 %)
    below_min          below the contract minimum (observed minimum less the tolerance)
    above_max          above the contract maximum (observed maximum plus the tolerance)
    unknown_category   a category the model has never seen
    not_integer        a fraction in an integer field

A ``type`` violation in a datetime field means the value is not a date and time in the field's
``datetime_format`` (a :func:`time.strftime` pattern such as ``%d/%m/%Y %H:%M:%S``), or in ISO
8601 when the field has no format.

Each :class:`Violation` also carries its sentence as data for a translator (``key`` and
``params``); the hub's message catalogue holds the words (``violation.<key>``), this module
only the English ``message``.

Only the standard library and numpy are used: the edge runtime imports this module.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

import numpy as np

from planta_edge.errors import ContractError

KINDS = ("number", "integer", "boolean", "category", "datetime", "text")
ROLES = ("feature", "target", "entity", "time", "ignored")
RANGE_POLICIES = ("reject", "flag", "clip")
EXTRA_POLICIES = ("reject", "ignore")

# Units that cannot go below zero; the value is the physical minimum.
_NON_NEGATIVE_UNITS = {
    "k": 0.0, "kelvin": 0.0, "rpm": 0.0, "min": 0.0, "s": 0.0, "sec": 0.0, "h": 0.0, "hr": 0.0,
    "ms": 0.0, "mm": 0.0, "m": 0.0, "kg": 0.0, "g": 0.0, "w": 0.0, "kw": 0.0, "mw": 0.0,
    "mwh": 0.0, "kwh": 0.0, "hz": 0.0, "pa": 0.0, "kpa": 0.0, "mpa": 0.0, "bar": 0.0,
    "mbar": 0.0, "l": 0.0, "l/min": 0.0, "mg/m3": 0.0, "mg/m³": 0.0, "ppm": 0.0, "a": 0.0,
    "count": 0.0, "cycles": 0.0, "%": 0.0,
}
_PERCENT_UNITS = {"%"}
_UNIT_RE = re.compile(r"^(?P<base>.*?)\s*[\[(](?P<unit>[^\])]{1,16})[\])]\s*$")


def slugify(header: str) -> str:
    """Canonical snake_case name of a source header.

    >>> slugify("Torque [Nm]")
    'torque_nm'
    >>> slugify("Temperatura del aire (°C)")
    'temperatura_del_aire_c'
    >>> slugify("  AFDP ")
    'afdp'
    """
    text = unicodedata.normalize("NFKD", str(header)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not text:
        text = "column"
    if text[0].isdigit():
        text = f"c_{text}"
    return text


def parse_unit(header: str) -> str | None:
    """The unit written in brackets at the end of a header, if any.

    >>> parse_unit("Air temperature [K]")
    'K'
    >>> parse_unit("Tool wear") is None
    True
    """
    match = _UNIT_RE.match(str(header).strip())
    return match.group("unit").strip() if match else None


def physical_bounds(unit: str | None) -> tuple[float | None, float | None]:
    """Bounds that physics puts on a unit: no negative kelvin, speed or minutes; % in 0..100.

    Celsius and unit-less columns get no bound.
    """
    if not unit:
        return None, None
    key = unit.strip().lower()
    low = _NON_NEGATIVE_UNITS.get(key)
    high = 100.0 if key in _PERCENT_UNITS else None
    return low, high


@dataclass(frozen=True)
class Field:
    """One column of the contract. ``name`` is canonical; ``label`` is the original header."""

    name: str
    kind: str
    label: str | None = None
    role: str = "feature"
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    tolerance: float = 0.1
    physical_min: float | None = None
    physical_max: float | None = None
    unit: str | None = None
    categories: tuple[str, ...] | None = None
    description: str | None = None
    datetime_format: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ContractError(f"Field {self.name!r}: kind {self.kind!r} is not one of {KINDS}.")
        if self.role not in ROLES:
            raise ContractError(f"Field {self.name!r}: role {self.role!r} is not one of {ROLES}.")
        if (self.minimum is not None and self.maximum is not None
                and self.minimum > self.maximum):
            raise ContractError(f"Field {self.name!r}: minimum {self.minimum:g} is above maximum "
                                f"{self.maximum:g}.", hint="Swap them, or fix the one mistyped.")
        if (self.physical_min is not None and self.physical_max is not None
                and self.physical_min > self.physical_max):
            raise ContractError(f"Field {self.name!r}: physical_min {self.physical_min:g} is "
                                f"above physical_max {self.physical_max:g}.")
        if not (self.tolerance >= 0):
            raise ContractError(f"Field {self.name!r}: tolerance {self.tolerance} must be zero or "
                                "more (0.1 widens the range by a tenth of its span).")

    @property
    def lower_bound(self) -> float | None:
        """The smallest accepted value: the observed minimum less ``tolerance`` of the span,
        never below the physical minimum."""
        if self.minimum is None:
            return self.physical_min
        span = (self.maximum - self.minimum) if self.maximum is not None else 0.0
        low = self.minimum - self.tolerance * (span if span > 0 else max(abs(self.minimum), 1.0))
        if self.physical_min is not None:
            low = max(low, self.physical_min)
        return low

    @property
    def upper_bound(self) -> float | None:
        """The largest accepted value: the observed maximum plus ``tolerance`` of the span,
        never above the physical maximum."""
        if self.maximum is None:
            return self.physical_max
        span = (self.maximum - self.minimum) if self.minimum is not None else 0.0
        high = self.maximum + self.tolerance * (span if span > 0 else max(abs(self.maximum), 1.0))
        if self.physical_max is not None:
            high = min(high, self.physical_max)
        return high

    @property
    def display(self) -> str:
        """How messages name the field: the original header when there is one."""
        return self.label or self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "label": self.label,
                               "role": self.role, "nullable": self.nullable}
        for key in ("minimum", "maximum", "physical_min", "physical_max", "unit", "description",
                    "datetime_format"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.kind in ("number", "integer"):
            out["tolerance"] = self.tolerance
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Field:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            guesses = [f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k)
                       for k in sorted(unknown)
                       for close in [difflib.get_close_matches(k, sorted(known), n=1)]]
            raise ContractError(f"Field {data.get('name')!r} has unknown keys: "
                                f"{', '.join(guesses)}.",
                                hint="Fix the spelling, or remove them from the contract file.")
        name = data.get("name")
        for key in ("name", "kind"):
            if not isinstance(data.get(key), str) or not data.get(key):
                raise ContractError(f"Field {name!r}: key {key!r} is missing or not text.",
                                    hint="Every field needs a name and a kind.")
        values = dict(data)
        if values.get("categories") is not None:
            if isinstance(values["categories"], (str, bytes)) or not isinstance(
                    values["categories"], Iterable):
                # A bad contract file is a ContractError, whatever the Python type at fault.
                raise ContractError(f"Field {name!r}: key 'categories' must be a list of values.",
                                    hint='Write it like categories = ["H", "L", "M"].')
            values["categories"] = tuple(str(c) for c in values["categories"])
        for key in ("minimum", "maximum", "physical_min", "physical_max", "tolerance"):
            if values.get(key) is not None:
                raw = values[key]
                try:
                    if isinstance(raw, bool):
                        raise TypeError(key)
                    values[key] = float(raw)
                except (TypeError, ValueError):
                    raise ContractError(f"Field {name!r}: key {key!r} is {raw!r}, not a number.",
                                        hint="Write a plain number such as 3.8.") from None
        if "nullable" in values and not isinstance(values["nullable"], bool):
            raise ContractError(f"Field {name!r}: key 'nullable' is {values['nullable']!r}; "
                                "write true or false.")
        for key in ("label", "unit", "description", "datetime_format", "role"):
            if values.get(key) is not None and not isinstance(values[key], str):
                raise ContractError(f"Field {name!r}: key {key!r} is {values[key]!r}, not text.")
        return cls(**values)


@dataclass(frozen=True)
class Violation:
    """One broken rule: which row (0-based in the input), which field, which rule, which value."""

    row: int | None
    field: str | None
    rule: str
    value: Any = None
    message: str = ""
    # For a translator: ``message`` again as a catalogue key (``violation.<key>``) and the
    # values its sentence names besides ``value`` (limit, unit, ...); ``where`` says row/field.
    # (dataclasses.field: the name ``field`` is this class's own attribute.)
    key: str | None = dataclasses.field(default=None, compare=False, repr=False)
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False,
                                                  hash=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif isinstance(value, (np.generic,)):
            value = value.item()
        return {"row": self.row, "field": self.field, "rule": self.rule, "value": value,
                "message": self.message}


@dataclass(frozen=True)
class Contract:
    """The inference contract of a use case: the fields a model reads, and the target.

    >>> c = Contract(fields=(Field("torque_nm", "number", label="Torque [Nm]", minimum=3.8,
    ...                            maximum=76.6, physical_min=0.0, unit="Nm"),))
    >>> c.resolve("Torque [Nm]")
    'torque_nm'
    """

    fields: tuple[Field, ...]
    target: str | None = None
    version: int = 1

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(names) != len(set(names)):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ContractError(f"The contract names these fields twice: {dup}.")

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise ContractError(f"The contract has no field {name!r}.")

    @property
    def features(self) -> tuple[Field, ...]:
        """The fields the model reads, in order."""
        return tuple(f for f in self.fields if f.role == "feature")

    @property
    def inputs(self) -> tuple[Field, ...]:
        """The fields an inference input carries: features, plus entity and time if any."""
        return tuple(f for f in self.fields if f.role in ("feature", "entity", "time"))

    def resolve(self, header: str) -> str | None:
        """Canonical name of an input header (canonical name, original label, or its slug)."""
        index = self._aliases()
        return index.get(header) or index.get(slugify(header))

    def _aliases(self) -> dict[str, str]:
        # Built once per contract (the fields are immutable): the server resolves every key of
        # every request, and rebuilding this index was a third of a one-record validation.
        cached: dict[str, str] | None = self.__dict__.get("_alias_index")
        if cached is not None:
            return cached
        out: dict[str, str] = {}
        for f in self.fields:
            out[f.name] = f.name
            if f.label:
                out[f.label] = f.name
                out.setdefault(f.label.strip(), f.name)
        object.__setattr__(self, "_alias_index", out)
        return out

    def with_field(self, new: Field) -> Contract:
        """A copy with one field replaced (by name)."""
        return replace(self, fields=tuple(new if f.name == new.name else f for f in self.fields))

    def to_dict(self) -> dict[str, Any]:
        return {"format": "planta.contract/1", "version": self.version, "target": self.target,
                "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contract:
        if not isinstance(data, Mapping) or "fields" not in data:
            raise ContractError("This is not a planta contract: it has no 'fields' list.")
        return cls(fields=tuple(Field.from_dict(f) for f in data["fields"]),
                   target=data.get("target"), version=int(data.get("version", 1)))


@dataclass
class Validated:
    """The result of :func:`validate_columns`.

    ``values`` holds one clean numpy array per input field (float64 for numbers, integers and
    booleans; object arrays of str for categories and text; datetime64[ms] for datetimes; NaN /
    None / NaT where missing or rejected).
    ``ok`` is True for rows that break no rejecting rule; ``reasons`` holds, per rejected row, the
    first violation's message (``None`` for accepted rows); ``flagged`` marks rows that broke a
    range rule under the ``flag`` policy.
    """

    values: dict[str, np.ndarray]
    ok: np.ndarray
    reasons: np.ndarray
    flagged: np.ndarray
    violations: list[Violation] = field(default_factory=list)
    n_violations: int = 0

    @property
    def n_rows(self) -> int:
        return int(self.ok.shape[0])

    @property
    def n_rejected(self) -> int:
        return int((~self.ok).sum())


_TRUE = {"1", "true", "yes", "y", "t", "si", "sí", "verdadero"}
_FALSE = {"0", "false", "no", "n", "f", "falso"}


_PLAIN_NUMBERS = {int, float}


def _to_float(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers out of whatever came in; second array marks values that were not numbers."""
    if column.dtype.kind in "fiub":
        return column.astype(np.float64, copy=False), np.zeros(column.shape[0], dtype=bool)
    if set(map(type, column)) <= _PLAIN_NUMBERS:
        # JSON records: every value already a Python number, converted in one C loop.
        try:
            return column.astype(np.float64), np.zeros(column.shape[0], dtype=bool)
        except OverflowError:
            pass  # an integer too large for a float: the loop below marks it
    out = np.full(column.shape[0], np.nan)
    bad = np.zeros(column.shape[0], dtype=bool)
    for i, value in enumerate(column):
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)):
            out[i] = float(value)
            continue
        if isinstance(value, (int, float, np.number)):
            try:
                out[i] = float(value)
            except OverflowError:
                bad[i] = True
            continue
        text = str(value).strip()
        if text == "" or text.lower() in ("nan", "na", "null", "none"):
            continue
        try:
            out[i] = float(text.replace(",", ".") if text.count(",") == 1 and "." not in text
                           else text)
        except ValueError:
            bad[i] = True
    return out, bad


def _to_bool(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if column.dtype.kind in "biuf":
        values = column.astype(np.float64)
        bad = ~np.isnan(values) & ~np.isin(values, (0.0, 1.0))
        return np.where(bad, np.nan, values), bad
    out = np.full(column.shape[0], np.nan)
    bad = np.zeros(column.shape[0], dtype=bool)
    for i, value in enumerate(column):
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_, int, float, np.number)):
            # A number inside an object column (Excel, JSON): 1.0 is yes, 0 is no.
            number = float(value)
            if math.isnan(number):
                continue
            if number in (0.0, 1.0):
                out[i] = number
            else:
                bad[i] = True
            continue
        text = str(value).strip().lower()
        if text in ("", "nan", "na", "null", "none"):
            continue
        if text in _TRUE:
            out[i] = 1.0
        elif text in _FALSE:
            out[i] = 0.0
        else:
            bad[i] = True
    return out, bad


def _to_text(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Categories travel as their values; numbers that are whole print without '.0'."""
    if column.dtype == object and set(map(type, column)) == {str}:
        # The common case (JSON strings, CSV text): no conversion, only blanks to find,
        # looked for among the distinct values (a category has a handful) before per row.
        blanks = {v for v in set(column.tolist()) if not v or v.isspace()}
        if not blanks:
            return column.copy(), np.zeros(column.shape[0], dtype=bool)
        missing = np.fromiter((v in blanks for v in column), dtype=bool, count=column.shape[0])
        out = column.copy()
        out[missing] = None
        return out, missing
    out = np.empty(column.shape[0], dtype=object)
    missing = np.zeros(column.shape[0], dtype=bool)
    for i, value in enumerate(column):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing[i] = True
            out[i] = None
        elif isinstance(value, float) and value.is_integer():
            out[i] = str(int(value))
        else:
            text = str(value)
            if text.strip() == "":
                missing[i] = True
                out[i] = None
            else:
                out[i] = text
    return out, missing


def text_values(column: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Values as the contract compares categories: text, whole numbers without '.0', None if empty.

    Contract inference uses this to list a field's categories, so that a category read from a
    file and one sent in a JSON record compare equal.

    >>> text_values([1.0, "L", None, 2]).tolist()
    ['1', 'L', None, '2']
    """
    array = column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object)
    return _to_text(array)[0]


# Zero-padded strftime pieces and their widths: values written in such a pattern are rearranged
# into ISO 8601 with numpy character indexing and parsed in C.
_FIXED_PIECES = {"%Y": 4, "%m": 2, "%d": 2, "%H": 2, "%M": 2, "%S": 2}
_ISO_LAYOUT = ("%Y", "-", "%m", "-", "%d", "T", "%H", ":", "%M", ":", "%S")
# Values are parsed in blocks so that one bad value sends only its block the slow way.
_DATETIME_BLOCK = 4096


def _iso_rearrangement(fmt: str) -> tuple[int, np.ndarray, list[tuple[int, str]]] | None:
    """For a zero-padded pattern: its width, the character indices that spell ISO, and the
    literal characters expected at fixed positions. ``None`` when the pattern is not fixed-width.
    """
    starts: dict[str, int] = {}
    literals: list[tuple[int, str]] = []
    width = 0
    for piece in re.split(r"(%.)", fmt):
        if piece.startswith("%") and len(piece) == 2:
            if piece not in _FIXED_PIECES or piece in starts:
                return None
            starts[piece] = width
            width += _FIXED_PIECES[piece]
        else:
            literals.extend((width + k, ch) for k, ch in enumerate(piece))
            width += len(piece)
    if not {"%Y", "%m", "%d"} <= set(starts):
        return None
    # Index ``width`` .. are the extra columns appended for ISO's own characters.
    extra = {"-": width, "T": width + 1, ":": width + 2, "0": width + 3}
    index: list[int] = []
    for piece in _ISO_LAYOUT:
        if piece in _FIXED_PIECES:
            if piece in starts:
                index.extend(range(starts[piece], starts[piece] + _FIXED_PIECES[piece]))
            else:
                index.extend([extra["0"]] * _FIXED_PIECES[piece])
        else:
            index.append(extra[piece])
    return width, np.asarray(index), literals


def _as_iso(strings: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray] | None:
    """ISO spellings of ``strings`` written in ``fmt``, and which of them fit the pattern."""
    layout = _iso_rearrangement(fmt)
    if layout is None:
        return None
    width, index, literals = layout
    fits = np.char.str_len(strings) == width
    chars = np.asarray(strings, dtype=f"U{width}").view("U1").reshape(-1, width)
    for position, ch in literals:
        fits &= chars[:, position] == ch
    extra = np.broadcast_to(np.array(["-", "T", ":", "0"], dtype="U1"), (chars.shape[0], 4))
    iso = np.concatenate([chars, extra], axis=1)[:, index]
    return np.ascontiguousarray(iso).view(f"U{index.size}").ravel(), fits


def _one_datetime(text: str, fmt: str | None) -> np.datetime64 | None:
    """One value, the slow way: ISO 8601 (offsets become UTC) or the strptime pattern."""
    try:
        moment = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment.replace(tzinfo=None), "ms")


def _to_datetime(column: np.ndarray, fmt: str | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Datetimes (datetime64[ms]) out of text; returns values, not-a-datetime mask, missing mask.

    numpy parses ISO 8601 in C (a million time stamps in well under a second); zero-padded
    patterns such as ``%d/%m/%Y %H:%M:%S`` are first rearranged into ISO by character indexing.
    Only values that fail there go through ``strptime`` / ``fromisoformat`` one by one.
    """
    n = column.shape[0]
    if column.dtype.kind == "M":
        values = column.astype("datetime64[ms]")
        return values, np.zeros(n, dtype=bool), np.isnat(values)
    text, missing = _to_text(column)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ms]")
    bad = np.zeros(n, dtype=bool)
    present = np.flatnonzero(~missing)
    if present.size == 0:
        return out, bad, missing
    strings = np.char.strip(text[present].astype(str))
    done = np.zeros(present.size, dtype=bool)
    if fmt is None:
        # numpy also reads words such as "now" and "today": a time stamp starts with a digit.
        candidates, fits = strings, np.char.isdigit(strings.astype("U1"))
    else:
        rearranged = _as_iso(strings, fmt)
        candidates, fits = rearranged if rearranged is not None else (strings, done.copy())
    for lo in range(0, present.size, _DATETIME_BLOCK):
        block = slice(lo, lo + _DATETIME_BLOCK)
        take = np.flatnonzero(fits[block]) + lo
        if take.size == 0:
            continue
        try:
            with warnings.catch_warnings():
                # Offsets ("+02:00") are deprecated in numpy's parser: they go the slow way.
                warnings.simplefilter("error")
                out[present[take]] = np.array(candidates[take], dtype="datetime64[ms]")
            done[take] = True
        except (ValueError, TypeError, DeprecationWarning, UserWarning):
            pass
    for j in np.flatnonzero(~done):
        parsed = _one_datetime(str(strings[j]), fmt)
        if parsed is None:
            bad[present[j]] = True
        else:
            out[present[j]] = parsed
    return out, bad, missing


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


class _Collector:
    """Collects violations and the first reason of every rejected row.

    Every rejected row gets its reason, however many there are; the list of Violation objects
    stops growing at ``max_violations`` (``n_violations`` still counts them all), so a file in
    which every row is wrong costs time per row, not a million objects held in memory.
    """

    def __init__(self, n: int, row_offset: int, max_violations: int = 10_000, *,
                 row_word: str = "Row", row_base: int = 1) -> None:
        self.row_word = row_word  # files count rows from 1; JSON records are indexed from 0
        self.row_base = row_base
        self.ok = np.ones(n, dtype=bool)
        self.flagged = np.zeros(n, dtype=bool)
        self.reasons = np.full(n, None, dtype=object)
        self.violations: list[Violation] = []
        self.n_violations = 0
        self.row_offset = row_offset
        self.max_violations = max_violations

    def add(self, mask: np.ndarray, f: Field | None, rule: str, values: np.ndarray | None,
            describe: Any, *, reject: bool = True, key: str | None = None,
            **params: Any) -> None:
        if not mask.any():  # the usual case, and cheaper than flatnonzero on every rule
            return
        idx = np.flatnonzero(mask)
        self.n_violations += int(idx.size)
        room = self.max_violations - len(self.violations)
        noun = "field" if self.row_word == "Record" else "column"
        where = f"{noun} {f.display!r}" if f is not None else self.row_word.lower()
        where_key = f"{self.row_word.lower()}_{noun if f is not None else 'only'}"
        if reject:
            # Only rows that get their first reason here, or fit in the list, need a message.
            first = self.ok[idx]
            self.ok[idx] = False
            keep = first.copy()
            if room > 0:
                keep[:room] = True
            idx_keep = idx[keep]
            first_keep = first[keep]
        else:
            self.flagged[idx] = True
            idx_keep = idx[:max(room, 0)]
            first_keep = np.zeros(idx_keep.size, dtype=bool)
        for i, is_first in zip(idx_keep.tolist(), first_keep.tolist()):
            value = values[i] if values is not None else None
            if isinstance(value, np.generic):
                value = value.item()
            message = describe(value) if callable(describe) else describe
            text = f"{self.row_word} {i + self.row_offset + self.row_base}, {where}: {message}"
            if len(self.violations) < self.max_violations:
                self.violations.append(Violation(
                    int(i + self.row_offset), f.name if f else None, rule, value, text,
                    key or rule, {"n": i + self.row_offset + self.row_base,
                                  "where": where_key,
                                  "label": f.display if f is not None else "", **params}))
            if reject and is_first:
                self.reasons[i] = f"{rule}: {text}"


def validate_columns(
    contract: Contract,
    columns: Mapping[str, Sequence[Any] | np.ndarray],
    *,
    fields: Iterable[Field] | None = None,
    range_policy: str = "reject",
    extra_policy: str = "ignore",
    row_offset: int = 0,
    n_rows: int | None = None,
    row_word: str = "Row",
    row_base: int = 1,
) -> Validated:
    """Check columns against the contract; return clean arrays and every violation.

    ``columns`` maps input headers (canonical names, original labels, or anything that slugifies
    to a canonical name) to equal-length sequences. ``fields`` defaults to the contract's inputs
    (features, entity, time). A missing required field rejects every row. ``row_offset`` is added
    to row numbers so that chunks of a big file report their true rows.

    >>> c = Contract(fields=(Field("speed_rpm", "number", label="Speed [rpm]", minimum=1000.0,
    ...                            maximum=3000.0, physical_min=0.0, unit="rpm"),))
    >>> r = validate_columns(c, {"Speed [rpm]": [1500.0, -5.0, "fast"]})
    >>> r.ok.tolist()
    [True, False, False]
    >>> [v.rule for v in r.violations]
    ['type', 'below_physical']
    """
    if range_policy not in RANGE_POLICIES:
        raise ContractError(f"Range policy {range_policy!r} is not one of {RANGE_POLICIES}.")
    if extra_policy not in EXTRA_POLICIES:
        raise ContractError(f"Extra-field policy {extra_policy!r} is not one of {EXTRA_POLICIES}.")
    wanted = tuple(fields) if fields is not None else contract.inputs
    by_name: dict[str, np.ndarray] = {}
    extras: list[str] = []
    for header, seq in columns.items():
        name = contract.resolve(str(header))
        if name is None:
            extras.append(str(header))
            continue
        by_name[name] = seq if isinstance(seq, np.ndarray) else np.asarray(seq, dtype=object)
    if n_rows is None:
        n_rows = len(next(iter(by_name.values()))) if by_name else (
            len(next(iter(columns.values()))) if columns else 0)
    out = _Collector(n_rows, row_offset, row_word=row_word, row_base=row_base)
    everything = np.ones(n_rows, dtype=bool)
    if extras and extra_policy == "reject":
        for header in extras:
            out.add(everything, None, "extra_field", None,
                    f"field {header!r} is not in the contract (the server rejects unknown fields; "
                    "remove it or ask for extra fields to be ignored)", name=header)
    values: dict[str, np.ndarray] = {}
    for f in wanted:
        raw = by_name.get(f.name)
        if raw is None:
            if not f.nullable:
                out.add(everything, f, "missing_field", None,
                        "this field is required by the contract but is missing from the input")
            values[f.name] = (np.full(n_rows, np.nan) if f.kind in ("number", "integer", "boolean")
                              else np.full(n_rows, None, dtype=object))
            continue
        values[f.name] = _check_field(f, raw, out, range_policy)
    return Validated(values=values, ok=out.ok, reasons=out.reasons, flagged=out.flagged,
                     violations=out.violations, n_violations=out.n_violations)


def _all_clean(f: Field, nums: np.ndarray, bad: np.ndarray) -> bool:
    """True when no number rule can fire: every value a finite number within
    [lower_bound, upper_bound] (which already lie within the physical limits), and whole for
    an integer field. Only a shortcut: anything else takes the rule-by-rule path."""
    low, high = f.lower_bound, f.upper_bound
    if nums.shape[0] == 1:  # one record (the server's common case): plain floats are faster
        v = float(nums[0])
        return (not bad[0] and math.isfinite(v) and (low is None or v >= low)
                and (high is None or v <= high) and (f.kind != "integer" or v.is_integer()))
    if bad.any() or not np.isfinite(nums).all():
        return False
    if low is not None and not (nums >= low).all():
        return False
    if high is not None and not (nums <= high).all():
        return False
    return f.kind != "integer" or bool((np.floor(nums) == nums).all())


def _check_field(f: Field, raw: np.ndarray, out: _Collector, range_policy: str) -> np.ndarray:
    if f.kind in ("number", "integer"):
        nums, bad = _to_float(raw)
        if _all_clean(f, nums, bad):
            # Every value a finite number inside the accepted range (whole for integers): no
            # rule below can fire, so skip them (a dozen numpy calls per field and request).
            return nums.copy() if nums is raw else nums
        out.add(bad, f, "type", raw, lambda v: f"{_fmt(v)} is not a number", key="type_number")
        missing = np.isnan(nums) & ~bad
        infinite = np.isinf(nums)
        # A NaN that arrived as a float (not as an empty cell) is "not finite" for JSON inputs;
        # CSV readers turn empty cells into NaN too, so both count as missing here.
        out.add(infinite, f, "not_finite", nums, lambda v: f"{v} is not a finite number")
        if not f.nullable:
            out.add(missing, f, "null", None, "the value is missing and this field may not be empty")
        nums = np.where(infinite, np.nan, nums)
        finite = np.isfinite(nums)
        if f.physical_min is not None:
            out.add(finite & (nums < f.physical_min), f, "below_physical", nums,
                    lambda v: f"{_fmt(v)} is below the physical minimum {_fmt(f.physical_min)}"
                              f"{' ' + f.unit if f.unit else ''}; check the sensor or the unit",
                    limit=f.physical_min, unit=f.unit or "")
        if f.physical_max is not None:
            out.add(finite & (nums > f.physical_max), f, "above_physical", nums,
                    lambda v: f"{_fmt(v)} is above the physical maximum {_fmt(f.physical_max)}"
                              f"{' ' + f.unit if f.unit else ''}; check the sensor or the unit",
                    limit=f.physical_max, unit=f.unit or "")
        low, high = f.lower_bound, f.upper_bound
        reject = range_policy == "reject"
        phys_ok = finite
        if f.physical_min is not None:
            phys_ok = phys_ok & (nums >= f.physical_min)
        if f.physical_max is not None:
            phys_ok = phys_ok & (nums <= f.physical_max)
        if low is not None and (f.physical_min is None or low > f.physical_min):
            below = phys_ok & (nums < low)
            out.add(below, f, "below_min", nums,
                    lambda v: f"{_fmt(v)} is below the contract minimum {_fmt(low)}"
                              " (the lowest value seen in training, less the tolerance); fix the "
                              f"reading, or widen the range in the contract", reject=reject,
                    limit=low)
            if range_policy == "clip":
                nums = np.where(below, low, nums)
        if high is not None and (f.physical_max is None or high < f.physical_max):
            above = phys_ok & (nums > high)
            out.add(above, f, "above_max", nums,
                    lambda v: f"{_fmt(v)} is above the contract maximum {_fmt(high)}"
                              " (the highest value seen in training, plus the tolerance); fix the "
                              "reading, or widen the range in the contract", reject=reject,
                    limit=high)
            if range_policy == "clip":
                nums = np.where(above, high, nums)
        if f.kind == "integer":
            frac = finite & (np.floor(nums) != nums)
            out.add(frac, f, "not_integer", nums, lambda v: f"{_fmt(v)} is not a whole number")
        return nums
    if f.kind == "boolean":
        nums, bad = _to_bool(raw)
        out.add(bad, f, "type", raw, lambda v: f"{_fmt(v)} is not yes/no (use 1/0 or true/false)",
                key="type_boolean")
        if not f.nullable:
            out.add(np.isnan(nums) & ~bad, f, "null", None,
                    "the value is missing and this field may not be empty")
        return nums
    if f.kind == "datetime":
        moments, bad, missing = _to_datetime(raw, f.datetime_format)
        wanted = (f"a date and time like {f.datetime_format}" if f.datetime_format
                  else "an ISO date and time like 2024-03-01 06:00:00")
        out.add(bad, f, "type", raw, lambda v: f"{_fmt(v)} is not {wanted}",
                key="type_datetime" if f.datetime_format else "type_datetime_iso",
                format=f.datetime_format or "")
        if not f.nullable:
            out.add(missing, f, "null", None, "the value is missing and this field may not be empty")
        return moments
    text, missing = _to_text(raw)
    if not f.nullable:
        out.add(missing, f, "null", None, "the value is missing and this field may not be empty")
    if f.kind == "category" and f.categories is not None:
        allowed = set(f.categories)
        if set(text.tolist()) <= allowed | {None}:  # distinct values first: usually all known
            unknown = np.zeros(text.shape[0], dtype=bool)
        else:
            unknown = np.fromiter((v is not None and v not in allowed for v in text),
                                  dtype=bool, count=text.shape[0])
        shown = ", ".join(f.categories[:12]) + (" …" if len(f.categories) > 12 else "")
        out.add(unknown, f, "unknown_category", text,
                lambda v: f"{_fmt(v)} is a category the model has never seen (known: {shown})",
                known=shown)
    return text


def validate_records(contract: Contract, records: Sequence[Mapping[str, Any]], *,
                     range_policy: str = "reject", extra_policy: str = "reject") -> Validated:
    """Check a list of JSON-like records (the server's and the edge runtime's door).

    Each record must be an object; every key becomes a column. Same rules as
    :func:`validate_columns`; a field absent from one record is missing in that row only.
    """
    if not records:
        raise ContractError("The batch is empty: send at least one record.", [
            Violation(None, None, "empty_batch", None, "The batch is empty.")])
    keys: dict[str, None] = {}
    n = len(records)
    columns: dict[str, np.ndarray] = {}
    absent: dict[str, np.ndarray] = {}
    first = records[0]
    if (type(first) is dict and set(map(type, records)) == {dict}
            and all(map(first.keys().__eq__,
                        map(dict.keys, cast("Sequence[dict[str, Any]]", records))))):
        # JSON objects that all have the same keys (the usual case): no per-record Python
        # loop at all, each column gathered in one C-level pass.
        for k in first:
            columns[k] = np.fromiter(map(itemgetter(k), records), dtype=object, count=n)
    else:
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                raise ContractError(f"Record {i} is not an object of field names and values.",
                                    [Violation(i, None, "type", None,
                                               f"Record {i} is not an object.")])
            for k in rec:
                keys.setdefault(k, None)
    if keys and all(len(rec) == len(keys) for rec in records):
        # Every record has every key (the usual case): one C-level pass per column.
        for k in keys:
            columns[k] = np.fromiter((rec[k] for rec in records), dtype=object, count=n)
        keys = {}
    for k in keys:
        col = np.empty(n, dtype=object)
        gone = np.zeros(n, dtype=bool)
        for i, rec in enumerate(records):
            if k in rec:
                col[i] = rec[k]
            else:
                gone[i] = True
        columns[k] = col
        if gone.any():
            absent[k] = gone
    result = validate_columns(contract, columns, range_policy=range_policy,
                              extra_policy="ignore", n_rows=n, row_word="Record", row_base=0)
    collector = _Collector(n, 0, row_word="Record", row_base=0)
    if extra_policy not in EXTRA_POLICIES:
        raise ContractError(f"Extra-field policy {extra_policy!r} is not one of {EXTRA_POLICIES}.")
    if extra_policy == "reject":
        # Only the records that carry an unknown key are at fault.
        for k in columns:
            if contract.resolve(str(k)) is not None:
                continue
            has = ~absent[k] if k in absent else np.ones(n, dtype=bool)
            start = len(collector.violations)
            collector.add(has, None, "extra_field", None,
                          f"field {k!r} is not in the contract (the server rejects unknown "
                          "fields; remove it or ask for extra fields to be ignored)", name=k)
            # Name the unknown field itself, so a client can point at it.
            collector.violations[start:] = [replace(v, field=str(k))
                                            for v in collector.violations[start:]]
    # A key absent from some records only: name the records, not only "missing value".
    for k, gone in absent.items():
        name = contract.resolve(k)
        if name is None:
            continue
        f = contract.field(name)
        if not f.nullable:
            collector.add(gone, f, "missing_field", None,
                          "this field is required by the contract but is missing from the record")
    if collector.violations:
        # Keep the most precise reason: a missing key is reported before the null it caused.
        drop = {(v.row, v.field) for v in collector.violations}
        result.violations = collector.violations + [
            v for v in result.violations if not (v.rule == "null" and (v.row, v.field) in drop)]
        result.n_violations += collector.n_violations
        for v in collector.violations:
            result.ok[v.row] = False
            result.reasons[v.row] = f"{v.rule}: {v.message}"
    return result


__all__ = [
    "EXTRA_POLICIES",
    "KINDS",
    "RANGE_POLICIES",
    "ROLES",
    "Contract",
    "Field",
    "Validated",
    "Violation",
    "parse_unit",
    "physical_bounds",
    "slugify",
    "text_values",
    "validate_columns",
    "validate_records",
]

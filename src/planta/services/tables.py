"""Plant files in and out: CSV (any delimiter, decimal comma, BOM, latin-1), Excel, Parquet.

    read_table(path)          whole file -> ReadResult(frame, format, sha256, name)
    iter_chunks(path, rows)   big file -> (TableFormat, Chunk, Chunk, ...), memory stays flat
    write_table(data, path)   one table -> .csv / .xlsx / .parquet, by extension
    TableWriter(path, fmt)    many tables -> one file (batch scoring writes chunk by chunk)

Values are kept as read: numbers stay numbers, and text found in a column of numbers stays text,
so that the contract rules can name the row instead of a reader turning it into a silent NaN.
A :class:`TableFormat` remembers the delimiter, decimal mark and encoding of the input, so that
outputs go back in the form the plant's tools expect.

Problems with the file itself (missing, empty, header only, duplicated or ragged columns, binary,
unsupported extension) raise :class:`~planta.errors.FileFormatError` naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import math
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from planta.errors import FileFormatError, keyed

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITERS = (",", ";", "\t", "|")
# Cells read as missing. "-" and "?" are left alone on purpose: they can be real codes.
NULL_VALUES = ["", "NA", "N/A", "n/a", "NaN", "nan", "NAN", "null", "NULL", "None", "#N/A",
               "#NA", "-NaN", "-nan"]
# Excel's own limit, header included.
EXCEL_MAX_ROWS = 1_048_576
_SAMPLE_BYTES = 1 << 20
# pyarrow's streaming CSV reader reads up to 32 blocks ahead in the background, so memory is
# about 32 x the block size whatever ``rows`` is: 9 MB blocks cost 350 MB on a 400 MB file,
# 1 MB blocks under 100 MB, at the same speed. Blocks are then joined to ``rows`` rows.
_STREAM_BLOCK_BYTES = 1 << 20
# A column of text counts as numbers with a few bad cells when at least this share parses.
_NUMERIC_SHARE = 0.5
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d*\.\d+$")


@dataclass(frozen=True)
class TableFormat:
    """How a table was written, so that outputs can be written the same way.

    >>> TableFormat("csv", delimiter=";", decimal=",").describe()
    "CSV, ';'-separated, decimal comma, utf-8"
    """

    kind: str
    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8"

    def describe(self) -> str:
        """The format in a few plain words."""
        if self.kind != "csv":
            return {"xlsx": "Excel workbook", "parquet": "Parquet"}.get(self.kind, self.kind)
        sep = {"\t": "tab"}.get(self.delimiter, repr(self.delimiter))
        mark = "decimal comma" if self.decimal == "," else "decimal point"
        return f"CSV, {sep}-separated, {mark}, {self.encoding}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "delimiter": self.delimiter, "decimal": self.decimal,
                "encoding": self.encoding}


@dataclass(frozen=True)
class ReadResult:
    """A whole table: the frame (original headers, values as read) and where it came from."""

    frame: pd.DataFrame
    format: TableFormat
    sha256: str
    name: str


@dataclass(frozen=True)
class Chunk:
    """A block of rows. ``offset`` is the first data row (0-based) in the file.

    ``columns`` maps each original header to a numpy array: float64 for columns of numbers,
    object (str, None where empty) for text. A column of numbers that holds text in this block
    comes as the original text, so that the contract rules name the rows that are not numbers.
    """

    offset: int
    columns: dict[str, np.ndarray]

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


# --------------------------------------------------------------------------------------------
# kind, bytes, encoding, dialect


def _kind(path: Path) -> tuple[str, bool]:
    """('csv' | 'xlsx' | 'parquet', gzip-compressed?) from the file name."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    last = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if last in CSV_SUFFIXES:
        return "csv", compressed
    if last in EXCEL_SUFFIXES and not compressed:
        return "xlsx", False
    if last in PARQUET_SUFFIXES and not compressed:
        return "parquet", False
    if last == ".xls":
        raise keyed(FileFormatError, "err.file.xls", name=path.name)
    known = ", ".join(CSV_SUFFIXES + EXCEL_SUFFIXES + PARQUET_SUFFIXES)
    if not last:
        raise keyed(FileFormatError, "err.file.no_suffix", name=path.name, known=known)
    raise keyed(FileFormatError, "err.file.suffix", name=path.name, suffix=last, known=known)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise keyed(FileFormatError, "err.file.missing", path=path)
    if path.is_dir():
        raise keyed(FileFormatError, "err.file.folder", path=path)


def _detect_encoding(head: bytes) -> str:
    """Encoding from the byte-order mark, else utf-8 (checked later; cp1252/latin-1 fall back)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _refuse_binary(name: str, head: bytes, encoding: str) -> None:
    if encoding == "utf-16" or b"\x00" not in head[:8192]:
        return
    if head.startswith(b"PK\x03\x04"):
        raise keyed(FileFormatError, "err.file.zip", name=name)
    if head.startswith(b"PAR1"):
        raise keyed(FileFormatError, "err.file.parquet_as_csv", name=name)
    raise keyed(FileFormatError, "err.file.binary", name=name)


def _decode(name: str, data: bytes, encoding: str) -> tuple[str, str]:
    """Text and the encoding that read it: utf-8, else Windows-1252, else latin-1."""
    if encoding != "utf-8":
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise keyed(FileFormatError, "err.file.encoding", name=name, encoding=encoding,
                        byte=exc.start) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Windows exports are usually cp1252 (a superset of latin-1's printable characters).
    for fallback in ("cp1252", "latin-1"):
        try:
            return data.decode(fallback), fallback
        except UnicodeDecodeError:
            continue
    raise FileFormatError(f"{name}: the text encoding is unknown.",  # pragma: no cover
                          hint="Save the file again as UTF-8.")


def _records(text: str, delimiter: str, limit: int) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    out: list[list[str]] = []
    try:
        for row in reader:
            if row:
                out.append(row)
            if len(out) >= limit:
                break
    except csv.Error:
        pass
    return out


def _sniff(sample: str, complete: bool) -> tuple[str, str]:
    """Delimiter and decimal mark from the first lines.

    The delimiter is the candidate that splits the header into most columns with the same
    count on (almost) every data line; the decimal mark is a comma when the delimiter is not
    one and numbers like ``3,14`` outnumber numbers like ``3.14``.

    >>> _sniff("a;b\\n1,5;2\\n3,25;4\\n", True)
    (';', ',')
    >>> _sniff("a,b\\n1.5,2\\n", True)
    (',', '.')
    """
    if not complete:
        # Drop the last, probably cut, line of a sample.
        sample = sample[: sample.rfind("\n") + 1] or sample
    best: tuple[float, int, int] = (-1.0, 0, 0)
    delimiter = ","
    for rank, candidate in enumerate(DELIMITERS):
        rows = _records(sample, candidate, 200)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        body = rows[1:] or rows
        agree = sum(len(r) == width for r in body) / len(body)
        score = (agree, width, -rank)
        if score > best:
            best, delimiter = score, candidate
    decimal = "."
    if delimiter != ",":
        commas = points = 0
        for row in _records(sample, delimiter, 200)[1:]:
            for cell in row:
                cell = cell.strip()
                commas += bool(_DECIMAL_COMMA.match(cell))
                points += bool(_DECIMAL_POINT.match(cell))
        if commas and commas >= points:
            decimal = ","
    return delimiter, decimal


def _header(name: str, text: str, delimiter: str) -> list[str]:
    rows = _records(text, delimiter, 1)
    if not rows:
        raise keyed(FileFormatError, "err.file.empty", name=name)
    return [h.lstrip("\ufeff") for h in rows[0]]


def _check_names(name: str, headers: list[str]) -> list[str]:
    """Headers with blanks named ``column_N``; duplicated names are refused, naming them."""
    fixed = [h if h.strip() else f"column_{i + 1}" for i, h in enumerate(headers)]
    seen: dict[str, list[int]] = {}
    for i, h in enumerate(fixed):
        seen.setdefault(h, []).append(i + 1)
    dups = {h: pos for h, pos in seen.items() if len(pos) > 1}
    if dups:
        shown = "; ".join(f"{h!r} (columns {', '.join(map(str, pos))})" for h, pos in dups.items())
        raise keyed(FileFormatError, "err.file.duplicated", name=name, shown=shown)
    return fixed


def _ragged_line(name: str, lines: Iterable[str], delimiter: str, width: int) -> FileFormatError:
    """Find the first line whose value count differs from the header's (the slow, exact way;
    only run once pyarrow has said some line is ragged). ``lines`` may be an open file."""
    reader = csv.reader(lines, delimiter=delimiter)
    for row in reader:
        if row and len(row) != width:
            return FileFormatError(
                f"{name}: line {reader.line_num} has {len(row)} values, the header has {width}.",
                hint="Look for a delimiter too many or too few in that line, or a text value "
                     "with the delimiter inside that is not in quotes.")
    return FileFormatError(f"{name}: the rows do not all have {width} values.",
                           hint="Check the file for a line with a delimiter too many or too few.")


# --------------------------------------------------------------------------------------------
# reading whole tables


def read_table(path: str | os.PathLike[str]) -> ReadResult:
    """Read a CSV, Excel (.xlsx, first sheet) or Parquet file, values as read.

    CSV: the delimiter (``, ; tab |``) and decimal mark are found from the first lines; UTF-8
    with or without BOM, UTF-16 with BOM, else Windows-1252 / latin-1; CRLF or LF; ``.gz`` works.
    Columns of numbers come as int64/float64; a column of numbers with a few text cells comes as
    objects (numbers as floats, the text as read), so validation can name those rows.

    Raises:
        FileFormatError: missing, empty, header only, duplicated column names, a ragged line,
            binary content or an unsupported extension; the message names the file (and line).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "line.csv"
    >>> _ = p.write_text("Torque [Nm];Type\\n3,5;L\\n4,25;H\\n", encoding="utf-8")
    >>> r = read_table(p)
    >>> r.frame["Torque [Nm]"].tolist(), r.format.delimiter, r.format.decimal
    ([3.5, 4.25], ';', ',')
    """
    path = Path(path)
    _check_exists(path)
    kind, compressed = _kind(path)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if kind == "xlsx":
        frame = _read_excel(path)
        fmt = TableFormat("xlsx")
    elif kind == "parquet":
        frame = _read_parquet(path)
        fmt = TableFormat("parquet")
    else:
        if compressed:
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise FileFormatError(f"{path.name}: the gzip data is damaged ({exc}).",
                                      hint="Copy the file again, or unpack it first.") from None
        frame, fmt = _read_csv_bytes(path.name, raw)
    return ReadResult(frame=frame, format=fmt, sha256=digest, name=path.name)


def _read_csv_bytes(name: str, raw: bytes) -> tuple[pd.DataFrame, TableFormat]:
    if not raw.strip():
        raise keyed(FileFormatError, "err.file.empty", name=name)
    encoding = _detect_encoding(raw[:4])
    _refuse_binary(name, raw, encoding)
    text, encoding = _decode(name, raw, encoding)
    if not text.strip("\ufeff \r\n\t"):
        raise keyed(FileFormatError, "err.file.empty", name=name)
    delimiter, decimal = _sniff(text[:_SAMPLE_BYTES], complete=len(text) <= _SAMPLE_BYTES)
    headers = _header(name, text, delimiter)
    names = _check_names(name, headers)
    body = text.lstrip("\ufeff").encode("utf-8")
    try:
        table = pa_csv.read_csv(
            io.BytesIO(body),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=_parse_options(delimiter, '"' in text[:_SAMPLE_BYTES]),
            convert_options=_convert_options(decimal))
    except pa.ArrowInvalid as exc:
        if "Expected" in str(exc) and "columns" in str(exc):
            raise _ragged_line(name, io.StringIO(text), delimiter, len(names)) from None
        raise keyed(FileFormatError, "err.file.unreadable", name=name, problem=exc) from None
    table = _drop_trailing_blank(table, headers)
    if table.num_rows == 0:
        raise keyed(FileFormatError, "err.file.no_rows", name=name)
    frame = _arrow_to_frame(table, decimal)
    return frame, TableFormat("csv", delimiter, decimal, encoding)


def _parse_options(delimiter: str, quoted: bool) -> pa_csv.ParseOptions:
    # Quoted values may hold line breaks only when the file uses quotes at all (slower path).
    return pa_csv.ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True,
                               newlines_in_values=quoted, ignore_empty_lines=True)


def _convert_options(decimal: str, column_types: dict[str, pa.DataType] | None = None
                     ) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(decimal_point=decimal, null_values=NULL_VALUES,
                                 strings_can_be_null=True, quoted_strings_can_be_null=True,
                                 column_types=column_types)


def _drop_trailing_blank(table: pa.Table, headers: list[str]) -> pa.Table:
    """A delimiter at the end of every line makes a nameless, empty last column: drop it."""
    if headers and not headers[-1].strip() and table.num_columns > 1:
        last = table.column(table.num_columns - 1)
        if last.null_count == len(last):
            return table.drop_columns([table.column_names[-1]])
    return table


def _arrow_to_frame(table: pa.Table, decimal: str) -> pd.DataFrame:
    """pandas frame, with text columns that are mostly numbers turned into numbers + text."""
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            mixed = _mostly_numbers(column, decimal)
            if mixed is not None:
                frame[name] = mixed
    return frame


def _mostly_numbers(column: pa.ChunkedArray, decimal: str) -> np.ndarray | None:
    """Object array of floats and the original text when most cells are numbers, else None."""
    non_null = len(column) - column.null_count
    if non_null == 0:
        return None
    strings = pc.utf8_trim_whitespace(column)
    if decimal == ",":
        strings = pc.replace_substring(strings, ",", ".")
    numbers = pd.to_numeric(pd.Series(strings.to_numpy(zero_copy_only=False), dtype=object),
                            errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    parsed = ~np.isnan(numbers)
    if parsed.sum() < _NUMERIC_SHARE * non_null:
        return None
    if parsed.sum() == non_null:
        return numbers
    original = column.to_numpy(zero_copy_only=False)
    # A cell written "nan" is a missing value (NULL_VALUES), never a number: keep the text.
    return np.where(parsed, numbers.astype(object), original)


def _read_excel(path: Path) -> pd.DataFrame:
    import openpyxl  # imported here: only Excel files need it
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise keyed(FileFormatError, "err.file.not_excel", name=path.name, problem=exc) from None
    try:
        sheet = book.worksheets[0]
        rows = [list(r) for r in sheet.iter_rows(values_only=True)
                if any(v is not None and str(v).strip() != "" for v in r)]
    finally:
        book.close()
    if not rows:
        raise keyed(FileFormatError, "err.file.sheet_empty", name=path.name)
    width = max(len(r) for r in rows)
    # Trailing columns with neither a header nor any value are Excel's formatting, not data.
    while width > 0 and all(len(r) < width or r[width - 1] is None for r in rows):
        width -= 1
    headers = [("" if v is None else str(v)) for v in (rows[0] + [None] * width)[:width]]
    names = _check_names(path.name, headers)
    data = [(r + [None] * width)[:width] for r in rows[1:]]
    if not data:
        raise keyed(FileFormatError, "err.file.sheet_no_rows", name=path.name)
    return pd.DataFrame({n: _excel_column([r[i] for r in data]) for i, n in enumerate(names)})


def _excel_column(values: list[Any]) -> pd.Series | np.ndarray:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if len(present) == len(values) and all(isinstance(v, int) for v in present):
            return np.asarray(values, dtype=np.int64)
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if present and len(present) == len(values) and all(isinstance(v, bool) for v in present):
        return np.asarray(values, dtype=bool)
    if present and all(hasattr(v, "year") and hasattr(v, "hour") for v in present):
        return pd.to_datetime(pd.Series(values, dtype=object))
    return np.asarray(values, dtype=object)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise keyed(FileFormatError, "err.file.not_parquet", name=path.name, problem=exc) from None
    _check_names(path.name, table.column_names)
    if table.num_columns == 0:
        raise FileFormatError(f"{path.name}: the Parquet file has no columns.",
                              hint="Write the file again with its columns.")
    if table.num_rows == 0:
        raise keyed(FileFormatError, "err.file.parquet_no_rows", name=path.name)
    return table.to_pandas()


# --------------------------------------------------------------------------------------------
# streaming


def iter_chunks(path: str | os.PathLike[str], rows: int = 100_000
                ) -> tuple[TableFormat, Iterator[Chunk]]:
    """Stream a table in blocks of ``rows`` rows, memory flat however long the file.

    CSV and Parquet are streamed with pyarrow; Excel is read whole and sliced (a workbook holds
    at most a million rows). Problems found before the first row (missing, empty, header only,
    duplicated names) raise at once; a ragged line further down raises while iterating, naming
    its line.

    CSV columns are read as text and turned into float64 block by block: a column that was
    numbers in the first lines and has text later does not crash the read; that block's column
    comes as the original text and the contract rules reject the rows that are not numbers.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "speed.csv"
    >>> _ = p.write_text("speed\\n1500\\n1600\\nfast\\n", encoding="utf-8")
    >>> fmt, chunks = iter_chunks(p, rows=2)
    >>> [(c.offset, c.columns["speed"].tolist()) for c in chunks]
    [(0, [1500.0, 1600.0]), (2, ['fast'])]
    """
    if rows < 1:
        raise ValueError("rows must be at least 1")
    path = Path(path)
    _check_exists(path)
    kind, compressed = _kind(path)
    if kind == "xlsx":
        frame = _read_excel(path)
        return TableFormat("xlsx"), _frame_chunks(frame, rows)
    if kind == "parquet":
        return TableFormat("parquet"), _parquet_chunks(path, rows)
    return _csv_chunks(path, rows, compressed)


def _frame_chunks(frame: pd.DataFrame, rows: int) -> Iterator[Chunk]:
    for lo in range(0, len(frame), rows):
        part = frame.iloc[lo:lo + rows]
        yield Chunk(lo, {str(c): _numpy_column(part[c]) for c in part.columns})


def _numpy_column(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.to_numpy(dtype="datetime64[ms]")
    values = series.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return values


def _parquet_chunks(path: Path, rows: int) -> Iterator[Chunk]:
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise keyed(FileFormatError, "err.file.not_parquet", name=path.name, problem=exc) from None
    _check_names(path.name, reader.schema_arrow.names)
    if reader.metadata.num_rows == 0:
        raise keyed(FileFormatError, "err.file.parquet_no_rows", name=path.name)

    def generate() -> Iterator[Chunk]:
        offset = 0
        try:
            for batch in reader.iter_batches(batch_size=rows):
                columns = {name: _arrow_numpy(batch.column(i))
                           for i, name in enumerate(batch.schema.names)}
                yield Chunk(offset, columns)
                offset += batch.num_rows
        finally:
            reader.close()

    return generate()


def _arrow_numpy(array: pa.Array) -> np.ndarray:
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
            or pa.types.is_decimal(kind):
        return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            array = pc.cast(array, pa.timestamp(kind.unit))
        return np.asarray(pc.cast(array, pa.timestamp("ms")).to_numpy(zero_copy_only=False),
                          dtype="datetime64[ms]")
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    return array.to_numpy(zero_copy_only=False)


def _open_bytes(path: Path, compressed: bool) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb") if compressed else path.open("rb"))


def _csv_chunks(path: Path, rows: int, compressed: bool) -> tuple[TableFormat, Iterator[Chunk]]:
    name = path.name
    with _open_bytes(path, compressed) as fh:
        head = fh.read(_SAMPLE_BYTES)
        more = bool(fh.read(1))
    if not head.strip():
        raise keyed(FileFormatError, "err.file.empty", name=name)
    encoding = _detect_encoding(head[:4])
    _refuse_binary(name, head, encoding)
    encoding = _stream_encoding(path, compressed, encoding)
    # A multi-byte character may be cut at the end of the sample.
    sample = head.decode(encoding, errors="ignore")
    delimiter, decimal = _sniff(sample, complete=not more)
    names = _check_names(name, _header(name, sample, delimiter))
    fmt = TableFormat("csv", delimiter, decimal, encoding)
    numeric = _numeric_columns(head, more, names, delimiter, decimal, encoding)
    stream = _open_bytes(path, compressed)
    try:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1,
                                            block_size=_STREAM_BLOCK_BYTES,
                                            encoding=_arrow_encoding(encoding)),
            parse_options=_parse_options(delimiter, '"' in sample),
            convert_options=_convert_options(decimal, {n: pa.string() for n in names}))
        first = _next_batch(reader, path, compressed, fmt, len(names))
    except pa.ArrowInvalid as exc:
        # open_csv parses the first block itself: a ragged line in it fails here.
        stream.close()
        raise _stream_error(exc, path, compressed, fmt, len(names)) from None
    except BaseException:
        stream.close()
        raise
    if first is None:
        stream.close()
        raise keyed(FileFormatError, "err.file.no_rows", name=name)
    return fmt, _rebatch(first, reader, stream, rows, numeric, decimal, path, compressed, fmt,
                         len(names))


def _stream_encoding(path: Path, compressed: bool, encoding: str) -> str:
    """Check the whole file is utf-8 before streaming (a bad byte at row 4 million would stop
    the stream); fall back to cp1252 or latin-1. Decoding runs at over 1 GB/s for plain text."""
    if encoding != "utf-8":
        return encoding
    decoder = codecs.getincrementaldecoder("utf-8")()
    with _open_bytes(path, compressed) as fh:
        try:
            for block in iter(lambda: fh.read(1 << 22), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            pass
    with _open_bytes(path, compressed) as fh:
        try:
            for block in iter(lambda: fh.read(1 << 22), b""):
                block.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            return "latin-1"


def _arrow_encoding(encoding: str) -> str:
    # pyarrow skips a UTF-8 byte-order mark by itself.
    return "utf8" if encoding in ("utf-8", "utf-8-sig") else encoding


def _numeric_columns(head: bytes, more: bool, names: list[str], delimiter: str, decimal: str,
                     encoding: str) -> set[str]:
    """Columns of numbers in the first megabyte (the type guess for the stream): those pyarrow
    reads as numbers, and text columns that are mostly numbers (as :func:`read_table` does)."""
    sample = head[: head.rfind(b"\n") + 1] if more else head
    text = sample.decode(encoding, errors="ignore").lstrip("\ufeff")
    try:
        table = pa_csv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=_parse_options(delimiter, '"' in text),
            convert_options=_convert_options(decimal))
    except pa.ArrowInvalid:
        return set()
    out = set()
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        # An empty column in the sample (type null) is tried as numbers too: block by block,
        # a cast that fails leaves that block as text.
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind) or (
                pa.types.is_string(kind) and _mostly_numbers(column, decimal) is not None):
            out.add(name)
    return out


def _next_batch(reader: pa_csv.CSVStreamingReader, path: Path, compressed: bool,
                fmt: TableFormat, width: int) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
    except pa.ArrowInvalid as exc:
        raise _stream_error(exc, path, compressed, fmt, width) from None


def _stream_error(exc: pa.ArrowInvalid, path: Path, compressed: bool, fmt: TableFormat,
                  width: int) -> FileFormatError:
    """pyarrow's parse error as a planta error: a ragged line by its number, else the cause."""
    if "Expected" in str(exc) and "columns" in str(exc):
        with _open_bytes(path, compressed) as fh:
            lines = io.TextIOWrapper(fh, encoding=fmt.encoding, newline="")
            return _ragged_line(path.name, lines, fmt.delimiter, width)
    return FileFormatError(f"{path.name}: cannot read the file as a table ({exc}).",
                           hint="Open it in a spreadsheet and save it again as CSV.")


def _rebatch(first: pa.RecordBatch, reader: pa_csv.CSVStreamingReader, stream: IO[bytes],
             rows: int, numeric: set[str], decimal: str, path: Path, compressed: bool,
             fmt: TableFormat, width: int) -> Iterator[Chunk]:
    """Blocks of exactly ``rows`` rows (the last may be shorter), converted to numpy."""
    offset = 0
    pending: list[pa.RecordBatch] = [first]
    size = first.num_rows
    try:
        while True:
            while size < rows:
                batch = _next_batch(reader, path, compressed, fmt, width)
                if batch is None:
                    break
                pending.append(batch)
                size += batch.num_rows
            if size == 0:
                return
            table = pa.Table.from_batches(pending)
            head, rest = table.slice(0, rows), table.slice(rows)
            yield Chunk(offset, {name: _csv_column(head.column(name), name in numeric, decimal)
                                 for name in head.column_names})
            offset += head.num_rows
            pending = rest.to_batches()
            size = rest.num_rows
            if head.num_rows < rows:
                return
    finally:
        stream.close()


def _csv_column(column: pa.ChunkedArray, numeric: bool, decimal: str) -> np.ndarray:
    """float64 when every cell of the block is a number (or empty); the text as read otherwise."""
    if numeric:
        strings = pc.utf8_trim_whitespace(column)
        if decimal == ",":
            strings = pc.replace_substring(strings, ",", ".")
        try:
            return pc.cast(strings, pa.float64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return column.to_numpy(zero_copy_only=False)


# --------------------------------------------------------------------------------------------
# writing


def _to_arrow(data: pd.DataFrame | pa.Table | pa.RecordBatch) -> pa.Table:
    """Arrow table of a frame; a column mixing numbers and text is written as text."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    arrays: list[pa.Array] = []
    for name in data.columns:
        series = data[name]
        try:
            arrays.append(pa.array(series, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            values = series.to_numpy(dtype=object)
            arrays.append(pa.array([None if v is None or (isinstance(v, float) and math.isnan(v))
                                    else str(v) for v in values], type=pa.string()))
    return pa.Table.from_arrays(arrays, names=[str(c) for c in data.columns])


def _csv_ready(table: pa.Table, decimal: str) -> pa.Table:
    """Floats as text with a decimal comma when the plant's files use one."""
    if decimal != ",":
        return table
    columns = []
    for column in table.columns:
        if pa.types.is_floating(column.type) or pa.types.is_decimal(column.type):
            column = pc.replace_substring(pc.cast(column, pa.string()), ".", ",")
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _quoting(table: pa.Table, delimiter: str) -> str:
    """'none' when no name or text value holds a delimiter, quote or line break, else 'needed'
    (which quotes every text value): plain files read best in a plant's spreadsheet."""
    special = f"[{re.escape(delimiter)}\"\r\n]"
    if any(re.search(special, name) for name in table.column_names):
        return "needed"
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = pc.cast(column, kind.value_type)
            kind = kind.value_type
        if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and pc.any(
                pc.match_substring_regex(column, special)).as_py():
            return "needed"
    return "none"


class TableWriter:
    """Write tables one after another into one file; the format follows the extension.

    ``.csv`` / ``.tsv`` / ``.txt`` use ``fmt``'s delimiter, decimal mark and encoding (default:
    comma, point, UTF-8); ``.parquet`` streams row groups; ``.xlsx`` buffers every table in
    memory and writes the workbook on :meth:`close` (Excel holds at most 1,048,575 data rows).
    The file appears only on a clean :meth:`close`: it is written to ``<name>.part`` first, so
    a crash never leaves a half-written output that looks complete.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> with TableWriter(out, TableFormat("csv", delimiter=";", decimal=",")) as w:
    ...     w.write(pd.DataFrame({"torque": [3.5], "status": ["ok"]}))
    >>> out.read_text()
    'torque;status\\n3,5;ok\\n'
    """

    def __init__(self, path: str | os.PathLike[str], fmt: TableFormat | None = None) -> None:
        self.path = Path(path)
        kind, compressed = _kind(self.path)
        if compressed:
            raise FileFormatError(f"{self.path.name}: planta writes plain files, not .gz.",
                                  hint="Drop the .gz from the output name.")
        self.kind = kind
        default = TableFormat(kind, delimiter="\t" if self.path.suffix.lower() == ".tsv" else ",")
        self.format = fmt if fmt is not None and fmt.kind == "csv" and kind == "csv" else default
        self._part = self.path.with_name(self.path.name + ".part")
        self._handle: IO[bytes] | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._buffer: list[pa.Table] = []
        self._rows = 0
        self._closed = False

    def write(self, data: pd.DataFrame | pa.Table | pa.RecordBatch) -> None:
        """Append a table (same columns every time)."""
        if self._closed:
            raise FileFormatError(f"{self.path.name}: the writer is already closed.")
        table = _to_arrow(data)
        if self._schema is None:
            self._schema = pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type)
                                               else f.type) for f in table.schema])
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif table.column_names != self._schema.names:
            raise FileFormatError(f"{self.path.name}: a block has columns {table.column_names}, "
                                  f"the first had {self._schema.names}.")
        self._rows += table.num_rows
        if self.kind == "csv":
            self._write_csv(table)
        elif self.kind == "parquet":
            self._write_parquet(table)
        else:
            if self._rows > EXCEL_MAX_ROWS - 1:
                raise FileFormatError(
                    f"{self.path.name}: {self._rows:,} rows do not fit in an Excel sheet "
                    f"(at most {EXCEL_MAX_ROWS - 1:,}).", hint="Write .csv or .parquet instead.")
            self._buffer.append(table)

    def _write_csv(self, table: pa.Table) -> None:
        first = self._handle is None
        if self._handle is None:
            self._handle = self._part.open("wb")
            if self.format.encoding == "utf-8-sig":
                self._handle.write(codecs.BOM_UTF8)
        out = io.BytesIO()
        ready = _csv_ready(table, self.format.decimal)
        if first:
            # pyarrow quotes every header name; write the header as a spreadsheet would.
            line = io.StringIO()
            csv.writer(line, delimiter=self.format.delimiter, lineterminator="\n").writerow(
                ready.column_names)
            out.write(line.getvalue().encode("utf-8"))
        pa_csv.write_csv(ready, out, pa_csv.WriteOptions(
            include_header=False, delimiter=self.format.delimiter,
            quoting_style=_quoting(ready, self.format.delimiter)))
        data = out.getvalue()
        if self.format.encoding not in ("utf-8", "utf-8-sig"):
            data = data.decode("utf-8").encode(self.format.encoding, errors="replace")
        self._handle.write(data)

    def _write_parquet(self, table: pa.Table) -> None:
        assert self._schema is not None
        try:
            table = table.cast(self._schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise FileFormatError(f"{self.path.name}: a block does not match the first block's "
                                  f"column types ({exc}).") from None
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._part, self._schema, compression="zstd")
        self._parquet.write_table(table)

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._closed:
            return
        self._closed = True
        if self.kind == "csv":
            if self._handle is None:
                self._handle = self._part.open("wb")
            self._handle.close()
        elif self.kind == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._part, self._schema or pa.schema([]))
            self._parquet.close()
        else:
            _write_xlsx(self._part, self._buffer, self._schema)
            self._buffer = []
        os.replace(self._part, self.path)

    def abort(self) -> None:
        """Give up: remove the partial file."""
        self._closed = True
        if self._handle is not None:
            self._handle.close()
        if self._parquet is not None:
            self._parquet.close()
        self._part.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _excel_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _write_xlsx(path: Path, tables: list[pa.Table], schema: pa.Schema | None) -> None:
    import openpyxl  # imported here: only Excel outputs need it

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("data")
    if schema is not None:
        sheet.append(list(schema.names))
    for table in tables:
        for row in zip(*(c.to_pylist() for c in table.columns)):
            sheet.append([_excel_value(v) for v in row])
    book.save(path)


def write_table(data: pd.DataFrame | pa.Table, path: str | os.PathLike[str],
                format: TableFormat | None = None) -> Path:
    """Write one table; ``.csv`` follows ``format`` (delimiter, decimal mark, encoding).

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "t.parquet"
    >>> write_table(pd.DataFrame({"a": [1, 2]}), out).name
    't.parquet'
    """
    with TableWriter(path, format) as writer:
        writer.write(data)
    return Path(path)


__all__ = [
    "CSV_SUFFIXES",
    "DELIMITERS",
    "EXCEL_SUFFIXES",
    "NULL_VALUES",
    "PARQUET_SUFFIXES",
    "Chunk",
    "ReadResult",
    "TableFormat",
    "TableWriter",
    "iter_chunks",
    "read_table",
    "write_table",
]

"""Reading and writing plant files: real files in tmp_path, the real AI4I and gas turbine files."""

from __future__ import annotations

import codecs
import gzip
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from planta.errors import FileFormatError
from planta.services.tables import (
    TableFormat,
    TableWriter,
    iter_chunks,
    read_table,
    write_table,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
AI4I = DATA / "ai4i2020" / "ai4i2020.csv"
GAS_2015 = DATA / "gas_turbine_co_nox" / "gt_2015.csv"
needs_ai4i = pytest.mark.skipif(not AI4I.is_file(), reason=f"AI4I 2020 data not found at {AI4I}")
needs_gas = pytest.mark.skipif(not GAS_2015.is_file(),
                               reason=f"gas turbine data not found at {GAS_2015}")


def write(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


# ---------------------------------------------------------------- real files


@needs_ai4i
def test_ai4i_is_read_as_is() -> None:
    result = read_table(AI4I)
    frame = result.frame
    assert frame.shape == (10_000, 14)
    assert list(frame.columns)[:3] == ["UDI", "Product ID", "Type"]
    assert result.format == TableFormat("csv", ",", ".", "utf-8-sig")
    # The sha256 of the file as published (shared/data/README.md).
    assert result.sha256 == "dc6630cd9b1f0f853922fad78a1b6436570d3f1ec863f1dd5c4340ac56bc8a8e"
    assert result.name == "ai4i2020.csv"
    assert frame["Machine failure"].sum() == 339
    assert frame["Torque [Nm]"].min() == pytest.approx(3.8)
    assert frame["Type"].value_counts().to_dict() == {"L": 6000, "M": 2997, "H": 1003}
    assert pd.api.types.is_integer_dtype(frame["Rotational speed [rpm]"])


@needs_gas
def test_gas_turbine_header_keeps_its_trailing_space() -> None:
    frame = read_table(GAS_2015).frame
    assert "AFDP " in frame.columns
    assert len(frame) == 7_384


# ---------------------------------------------------------------- dialects


def test_semicolon_and_decimal_comma(tmp_path: Path) -> None:
    path = write(tmp_path / "de.csv", "Temperatur [K];Typ;Drehzahl\n300,5;L;1500\n301,25;M;1600\n")
    result = read_table(path)
    assert result.format.delimiter == ";" and result.format.decimal == ","
    assert result.frame["Temperatur [K]"].tolist() == [300.5, 301.25]
    assert result.frame["Drehzahl"].tolist() == [1500, 1600]


def test_bom_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", codecs.BOM_UTF8 + b"A,B\r\n1,x\r\n2,y\r\n")
    result = read_table(path)
    assert list(result.frame.columns) == ["A", "B"]
    assert result.frame["A"].tolist() == [1, 2]
    assert result.format.encoding == "utf-8-sig"


def test_latin1_fallback(tmp_path: Path) -> None:
    path = write(tmp_path / "win.csv", "Temperatur (°C);Maschine\n20,5;Fräse\n", "cp1252")
    result = read_table(path)
    assert list(result.frame.columns) == ["Temperatur (°C)", "Maschine"]
    assert result.frame["Maschine"].tolist() == ["Fräse"]
    assert result.format.encoding == "cp1252"


@pytest.mark.parametrize("delimiter", ["\t", "|", ",", ";"])
def test_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    lines = [delimiter.join(["a", "b", "c"])] + [delimiter.join([str(i), "x", "2.5"])
                                                 for i in range(5)]
    result = read_table(write(tmp_path / "t.csv", "\n".join(lines) + "\n"))
    assert result.format.delimiter == delimiter
    assert result.frame.shape == (5, 3)


def test_quoted_delimiter_inside_text(tmp_path: Path) -> None:
    result = read_table(write(tmp_path / "q.csv", 'id,note\n1,"a, b"\n2,"c"\n'))
    assert result.frame["note"].tolist() == ["a, b", "c"]


def test_gzip_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n3,4\n"))
    assert read_table(path).frame["b"].tolist() == [2, 4]


def test_text_in_a_numeric_column_stays_text(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{40 + i}.5" for i in range(20))
    path = write(tmp_path / "t.csv", f"n,Torque [Nm]\n{rows}\n20,abc\n21,\n")
    values = read_table(path).frame["Torque [Nm]"].tolist()
    assert values[0] == 40.5 and isinstance(values[0], float)
    assert values[20] == "abc"
    assert values[21] is None or values[21] != values[21]


def test_trailing_delimiter_column_is_dropped(tmp_path: Path) -> None:
    frame = read_table(write(tmp_path / "t.csv", "a;b;\n1;2;\n3;4;\n")).frame
    assert list(frame.columns) == ["a", "b"]


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize("content", [b"", b"   \n\n", codecs.BOM_UTF8])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(FileFormatError, match=r"empty.csv: the file is empty"):
        read_table(write(tmp_path / "empty.csv", content))


def test_header_only(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"head.csv: the file has a header but no data rows"):
        read_table(write(tmp_path / "head.csv", "a,b,c\n"))


def test_duplicated_column_names_are_named(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", "Torque,Speed,Torque\n1,2,3\n")
    with pytest.raises(FileFormatError, match=r"'Torque' \(columns 1, 3\)"):
        read_table(path)


def test_ragged_row_names_line_and_counts(tmp_path: Path) -> None:
    body = "".join(f"{i},{i},{i}\n" for i in range(55))
    path = write(tmp_path / "ragged.csv", f"a,b,c\n{body}1,2,3,4\n5,6,7\n")
    with pytest.raises(FileFormatError,
                       match=r"ragged.csv: line 57 has 4 values, the header has 3"):
        read_table(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"no such file"):
        read_table(tmp_path / "nowhere.csv")


def test_binary_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"binary data"):
        read_table(write(tmp_path / "blob.csv", bytes(range(256)) * 4))


def test_excel_named_csv_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x", "\x00" * 10)
    with pytest.raises(FileFormatError) as info:
        read_table(path)
    assert ".xlsx" in str(info.value)


@pytest.mark.parametrize("name,words", [("t.json", "cannot read .json"), ("t.xls", "save it")])
def test_unsupported_extension(tmp_path: Path, name: str, words: str) -> None:
    with pytest.raises(FileFormatError, match=words):
        read_table(write(tmp_path / name, "a\n1\n"))


def test_not_a_workbook(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"fake.xlsx"):
        read_table(write(tmp_path / "fake.xlsx", "a,b\n1,2\n"))


def test_not_a_parquet_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"not a readable Parquet"):
        read_table(write(tmp_path / "fake.parquet", "a,b\n1,2\n"))


# ---------------------------------------------------------------- excel and parquet


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame({"Torque [Nm]": [40.5, np.nan, 3.8], "Type": ["L", "M", None],
                         "Count": [1, 2, 3]})


def test_xlsx_round_trip(tmp_path: Path) -> None:
    path = write_table(sample_frame(), tmp_path / "t.xlsx")
    result = read_table(path)
    assert result.format.kind == "xlsx"
    frame = result.frame
    assert frame["Torque [Nm]"].tolist()[::2] == [40.5, 3.8]
    assert np.isnan(frame["Torque [Nm]"].iloc[1])
    assert frame["Type"].tolist()[:2] == ["L", "M"] and pd.isna(frame["Type"].iloc[2])
    assert frame["Count"].tolist() == [1, 2, 3]


def test_xlsx_problems(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["a", "b", "a"])
    book.active.append([1, 2, 3])
    book.save(tmp_path / "dup.xlsx")
    with pytest.raises(FileFormatError, match=r"'a' \(columns 1, 3\)"):
        read_table(tmp_path / "dup.xlsx")
    book = openpyxl.Workbook()
    book.active.append(["a", "b"])
    book.save(tmp_path / "head.xlsx")
    with pytest.raises(FileFormatError, match=r"header but no data rows"):
        read_table(tmp_path / "head.xlsx")


def test_parquet_round_trip_and_empty(tmp_path: Path) -> None:
    path = write_table(sample_frame(), tmp_path / "t.parquet")
    frame = read_table(path).frame
    pd.testing.assert_frame_equal(frame, sample_frame(), check_dtype=False)
    write_table(sample_frame().iloc[:0], tmp_path / "empty.parquet")
    with pytest.raises(FileFormatError, match=r"columns but no rows"):
        read_table(tmp_path / "empty.parquet")


# ---------------------------------------------------------------- writing


def test_csv_is_written_back_in_the_input_dialect(tmp_path: Path) -> None:
    source = read_table(write(tmp_path / "in.csv", "Temperatur [K];Typ\n300,5;L\n301,25;M\n"))
    out = write_table(source.frame.assign(Wahrscheinlichkeit=[0.25, 0.5]), tmp_path / "out.csv",
                      source.format)
    assert out.read_text().splitlines() == ["Temperatur [K];Typ;Wahrscheinlichkeit",
                                            "300,5;L;0,25", "301,25;M;0,5"]
    again = read_table(out)
    assert again.format.decimal == "," and again.frame["Temperatur [K]"].tolist() == [300.5, 301.25]


def test_text_with_delimiter_is_quoted(tmp_path: Path) -> None:
    out = write_table(pd.DataFrame({"note": ["a;b", "c"]}), tmp_path / "o.csv",
                      TableFormat("csv", ";", ","))
    assert read_table(out).frame["note"].tolist() == ["a;b", "c"]


def test_mixed_column_is_written_as_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"m": np.array([1.5, "abc"], dtype=object)})
    for name in ("o.csv", "o.parquet", "o.xlsx"):
        assert read_table(write_table(frame, tmp_path / name)).frame["m"].tolist()[1] == "abc"


def test_writer_streams_blocks_and_appears_only_when_closed(tmp_path: Path) -> None:
    target = tmp_path / "scores.parquet"
    writer = TableWriter(target)
    for start in range(0, 30, 10):
        writer.write(pa.table({"row": np.arange(start, start + 10), "p": np.full(10, 0.5)}))
        assert not target.exists()
    writer.close()
    assert read_table(target).frame["row"].tolist() == list(range(30))


def test_writer_leaves_nothing_after_an_error(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    with pytest.raises(RuntimeError), TableWriter(target) as writer:
        writer.write(pd.DataFrame({"a": [1]}))
        raise RuntimeError("scoring failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_too_many_rows_for_excel(tmp_path: Path) -> None:
    writer = TableWriter(tmp_path / "big.xlsx")
    with pytest.raises(FileFormatError, match=r"do not fit in an Excel sheet"):
        writer.write(pa.table({"a": np.zeros(1_048_576)}))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- streaming


def test_chunks_have_exact_sizes_and_offsets(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 0.5},L\n" for i in range(1000))
    fmt, chunks = iter_chunks(write(tmp_path / "t.csv", "n,x,Type\n" + rows), rows=300)
    seen = list(chunks)
    assert fmt.delimiter == ","
    assert [(c.offset, c.n_rows) for c in seen] == [(0, 300), (300, 300), (600, 300), (900, 100)]
    assert seen[1].columns["x"].dtype == np.float64
    assert seen[1].columns["x"][0] == 150.0
    assert seen[0].columns["Type"].dtype == object


def test_text_late_in_a_numeric_column_does_not_crash(tmp_path: Path) -> None:
    # Over a megabyte of numbers first, so that the type guess says "numbers".
    rows = "".join(f"{i},{300 + i % 7}.5\n" for i in range(120_000))
    path = write(tmp_path / "late.csv", "n,Air temperature [K]\n" + rows + "120000,broken\n")
    _, chunks = iter_chunks(path, rows=50_000)
    seen = list(chunks)
    assert sum(c.n_rows for c in seen) == 120_001
    assert seen[0].columns["Air temperature [K]"].dtype == np.float64
    last = seen[-1].columns["Air temperature [K]"]
    assert last.dtype == object and last[-1] == "broken"


def test_column_empty_at_first_comes_as_numbers_later(tmp_path: Path) -> None:
    rows = "".join(f"{i},\n" for i in range(60_000)) + "".join(f"{i},{i}.5\n" for i in range(10))
    _, chunks = iter_chunks(write(tmp_path / "late.csv", "n,x\n" + rows), rows=30_000)
    last = list(chunks)[-1].columns["x"]
    assert last.dtype == np.float64 and last[-1] == 9.5


def test_decimal_comma_chunks(tmp_path: Path) -> None:
    fmt, chunks = iter_chunks(write(tmp_path / "de.csv", "a;b\n1,5;x\n2,25;y\n"), rows=10)
    (chunk,) = list(chunks)
    assert fmt.decimal == "," and chunk.columns["a"].tolist() == [1.5, 2.25]


def test_stream_errors(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"header but no data rows"):
        iter_chunks(write(tmp_path / "h.csv", "a,b\n"))
    with pytest.raises(FileFormatError, match=r"the file is empty"):
        iter_chunks(write(tmp_path / "e.csv", ""))
    with pytest.raises(FileFormatError, match=r"more than once"):
        iter_chunks(write(tmp_path / "d.csv", "a,a\n1,2\n"))
    body = "".join(f"{i},{i}\n" for i in range(200_000))
    _, chunks = iter_chunks(write(tmp_path / "r.csv", "a,b\n" + body + "1,2,3\n"), rows=50_000)
    with pytest.raises(FileFormatError, match=r"line 200002 has 3 values, the header has 2"):
        list(chunks)


def test_parquet_and_xlsx_chunks(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(25), "t": ["x"] * 25})
    for name in ("c.parquet", "c.xlsx"):
        _, chunks = iter_chunks(write_table(frame, tmp_path / name), rows=10)
        seen = list(chunks)
        assert [c.offset for c in seen] == [0, 10, 20]
        assert seen[2].columns["a"].tolist() == [20.0, 21.0, 22.0, 23.0, 24.0]
        assert seen[0].columns["t"].dtype == object


@needs_ai4i
def test_ai4i_chunks_match_the_whole_read() -> None:
    _, chunks = iter_chunks(AI4I, rows=4000)
    torque = np.concatenate([c.columns["Torque [Nm]"] for c in chunks])
    np.testing.assert_array_equal(torque, read_table(AI4I).frame["Torque [Nm]"].to_numpy())


_STREAM_SCRIPT = textwrap.dedent("""
    import resource, sys
    from planta.services.tables import iter_chunks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fmt, chunks = iter_chunks(sys.argv[1], rows=100_000)
    rows = sum(c.n_rows for c in chunks)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(rows, (after - before) // 1024)
""")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kilobytes on Linux only")
def test_a_100_mb_csv_streams_with_flat_memory(tmp_path: Path) -> None:
    """Peak memory while streaming stays far below the file's size (a full read of this file
    takes about 600 MB); measured in a fresh process so earlier tests do not hide the peak."""
    path = tmp_path / "big.csv"
    rng = np.random.default_rng(7)
    rows = 0
    with path.open("wb") as fh:
        while fh.tell() < 100 * 2**20:
            n = 100_000
            block = {f"Sensor {i} [bar]": np.round(rng.normal(100, 10, n), 4) for i in range(10)}
            block["Type"] = np.array(["L", "M", "H"])[rng.integers(0, 3, n)]
            pa_csv.write_csv(pa.table(block), fh, pa_csv.WriteOptions(
                include_header=rows == 0, quoting_style="none"))
            rows += n
    done = subprocess.run([sys.executable, "-c", _STREAM_SCRIPT, str(path)], check=True,
                          capture_output=True, text=True, timeout=120)
    seen, growth_mb = map(int, done.stdout.split())
    assert seen == rows
    assert growth_mb < 200, f"streaming grew peak memory by {growth_mb} MB"

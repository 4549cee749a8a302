"""Batch scoring on a real project (SQLite file, artifacts, a trained model in production).

The pipelined scorer (reader thread, predict pool, writer thread) must write exactly what the
plain chunk-by-chunk loop writes, rejected rows and all; a stage that fails must stop the run
with a planta error, leave no output that looks complete, and leave no thread behind.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from planta.core.models import Calibrator, Predictor, fit_lightgbm, fit_xgboost
from planta.core.spec import Task, UseCase
from planta.errors import FileFormatError, NotFoundError, StoreError
from planta.project import Project
from planta.services import score
from planta.services.demo import demo_data
from planta.services.ingest import ingest
from planta.services.tables import TableWriter, iter_chunks
from planta.services.versions import load_bundle, load_predictor, train_version
from planta.services.workspace import Workspace
from planta_edge.contract import Contract, validate_columns
from planta_edge.model_input import ColumnEncoding, Encoding, build_matrix

CHUNK_ROWS = 50
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """Use case 'failure' trained on 1,500 AI4I rows and in production."""
    root = tmp_path_factory.mktemp("score") / "plant"
    Project.init(root, name="plant")
    project = Project.open(root)
    project.add_usecase(UseCase.from_dict("failure", {
        "task": "binary", "target": "Machine failure", "objective": "recall>=0.1"}))
    workspace = Workspace.from_project(project)
    pd.read_csv(demo_data()).iloc[:1500].to_csv(root / "history.csv", index=False)
    ingest(workspace, "failure", root / "history.csv")
    trained = train_version(workspace, "failure", budget_s=1.0)
    workspace.registry.move("failure", trained.version, "production", action="promote",
                            actor="ana", role="admin", reason="test",
                            exception=trained.state == "rejected")
    yield workspace
    workspace.close()


# Rows broken on purpose, several on each side of a chunk boundary (chunks of 50 rows), and a
# whole chunk (150-199) of which no row reaches the model.
BROKEN = {0: ("Torque [Nm]", "high"), 49: ("Air temperature [K]", 500.0), 50: ("Type", ""),
          51: ("Torque [Nm]", "n/a?"), 99: ("Rotational speed [rpm]", -5.0),
          100: ("Process temperature [K]", 999.0), 249: ("Tool wear [min]", -1.0)}
BROKEN.update({i: ("Tool wear [min]", -1.0) for i in range(150, 200)})


def plant_file(path: Path, n: int = 260) -> Path:
    rows = np.arange(100, 100 + n) % 1500  # rows of the training file: inside its ranges
    frame = pd.read_csv(demo_data()).iloc[rows].drop(columns=["Machine failure"])
    frame = frame.reset_index(drop=True).astype(object)
    for row, (column, value) in BROKEN.items():
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    return path


def reference_table(predictor: Predictor, contract: Contract, columns: dict[str, np.ndarray],
                    offset: int) -> pa.Table:
    """The table the first, one-chunk-at-a-time scorer wrote (binary task), kept as it was."""
    checked = validate_columns(contract, columns, range_policy="reject", extra_policy="ignore",
                               row_offset=offset)
    n, ok = checked.n_rows, checked.ok
    out: dict[str, Any] = {name: pa.array(col, from_pandas=True) if col.dtype != object
                           else pa.array(col.tolist(), from_pandas=True)
                           for name, col in columns.items()}
    label = np.full(n, None, dtype=object)
    probability = np.full(n, np.nan)
    if ok.any():
        pred = predictor.predict({k: v[ok] for k, v in checked.values.items()})
        label[ok] = pred.label
        probability[ok] = pred.probability
    out["prediction"] = pa.array([None if v is None else str(v) for v in label],
                                 type=pa.string())
    out["probability"] = pa.array(probability, from_pandas=True)
    out["model_version"] = pa.array(np.full(n, 1, dtype=np.int64))
    out["status"] = pa.array(np.where(ok, "ok", "rejected").astype(object).tolist(),
                             type=pa.string())
    out["reason"] = pa.array(checked.reasons.tolist(), type=pa.string())
    return pa.table(out)


def reference(ws: Workspace, source: Path, output: Path) -> None:
    """The sequential loop: one chunk after another, validated, predicted, written."""
    predictor, contract = load_predictor(load_bundle(ws, "failure"))
    fmt, chunks = iter_chunks(source, rows=CHUNK_ROWS)
    with TableWriter(output, fmt) as writer:
        for chunk in chunks:
            table = reference_table(predictor, contract, chunk.columns, chunk.offset)
            assert score.score_chunk(predictor, contract, chunk.columns, 1,
                                     chunk.offset)[0].equals(table)
            writer.write(table)


def within_deadline(call: Callable[[], Any]) -> Any:
    """Run ``call`` in a thread; fail (rather than hang the suite) if it does not return."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the test
            outcome["error"] = exc

    runner = threading.Thread(target=target, daemon=True)
    runner.start()
    runner.join(DEADLINE_S)
    assert not runner.is_alive(), f"scoring still running after {DEADLINE_S:.0f} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def assert_nothing_left(output: Path) -> None:
    assert not output.exists(), "a failed run left an output that looks complete"
    assert not output.with_name(output.name + ".part").exists()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("planta-score")]
    assert not alive, f"threads left running: {alive}"


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_pipelined_output_is_the_chunk_by_chunk_output(ws: Workspace, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       suffix: str, threads: int) -> None:
    monkeypatch.setattr(score, "_BLOCK_ROWS", 7)  # several predict calls per chunk
    source = plant_file(tmp_path / "shift.csv")
    piped, plain = tmp_path / f"piped{suffix}", tmp_path / f"plain{suffix}"
    result = score.score_file(ws, "failure", source, piped, chunk_rows=CHUNK_ROWS,
                              threads=threads)
    reference(ws, source, plain)
    if suffix == ".csv":
        assert piped.read_bytes() == plain.read_bytes()
    else:
        assert pq.read_table(piped).equals(pq.read_table(plain))
    out = pq.read_table(piped).to_pandas() if suffix == ".parquet" else pd.read_csv(piped)
    rejected = set(np.flatnonzero(out["status"].to_numpy() == score.STATUS_REJECTED).tolist())
    assert rejected == set(BROKEN)
    for row in (0, 49, 50, 51, 99, 100, 150, 199, 249):
        assert out["reason"][row].split(": ", 1)[1].startswith(f"Row {row + 1}, ")
    assert out["prediction"][list(rejected)].isna().all()
    assert out["prediction"].drop(index=list(rejected)).notna().all()
    assert out["UDI"].tolist() == list(range(101, 361))  # order kept
    assert (result.n_rows, result.n_rejected) == (260, len(BROKEN))
    assert sum(result.rejected_by_rule.values()) == len(BROKEN)
    assert result.rejected_by_rule["type"] == 2 and result.rejected_by_rule["null"] == 1


def test_a_row_is_predicted_the_same_in_any_block() -> None:
    """What lets the pool split a chunk: tree members give a row the same bits whatever rows
    share its call, on one thread or several."""
    encoding = Encoding(columns=(ColumnEncoding("kind", "category", ("L", "M", "H")),
                                 ColumnEncoding("torque_nm"), ColumnEncoding("speed_rpm")))
    rng = np.random.default_rng(3)
    values = {"kind": rng.choice(np.array(["L", "M", "H"], dtype=object), 20_000),
              "torque_nm": rng.normal(40, 10, 20_000), "speed_rpm": rng.normal(1500, 150, 20_000)}
    values["torque_nm"][::13] = np.nan
    X = build_matrix(encoding, values)
    y = (X[:, 1] * X[:, 2] / 1000 > 60).astype(int)
    members = [(0.5, fit_lightgbm(X, y, Task.BINARY, 2, {"num_leaves": 15}, rounds=40,
                                  categorical=(0,)).model),
               (0.5, fit_xgboost(X, y, Task.BINARY, 2, {"max_depth": 4}, rounds=40).model)]
    saved = Predictor(encoding, Task.BINARY, ["ok", "fail"], members,
                      Calibrator("platt", {"a": 1.1, "b": -0.2})).to_members()
    whole = Predictor.from_members(saved).predict_matrix(X)
    single = Predictor.from_members(saved, num_threads=1)
    cuts = [0, 1, 7, 2048, 5000, 13_001, 20_000]
    parts = [single.predict_matrix(X[a:b]) for a, b in zip(cuts, cuts[1:])]
    assert parts[0].probability is not None and whole.probability is not None
    assert np.array_equal(np.concatenate([p.probability for p in parts]),  # type: ignore[misc]
                          whole.probability)
    assert np.array_equal(np.concatenate([p.label for p in parts]), whole.label)


@pytest.mark.parametrize("n_rows", [260, 30_000])  # in the first block read, or far down
def test_a_ragged_line_stops_the_run(ws: Workspace, tmp_path: Path, n_rows: int) -> None:
    source = plant_file(tmp_path / "ragged.csv", n=n_rows)
    lines = source.read_text().splitlines(keepends=True)
    bad = n_rows - 10  # a data row of the last chunk
    lines[bad + 1] = lines[bad + 1].rstrip("\n") + ",extra\n"
    source.write_text("".join(lines))
    output = tmp_path / "out.csv"
    with pytest.raises(FileFormatError, match=f"line {bad + 2} has 14 values"):
        within_deadline(lambda: score.score_file(ws, "failure", source, output,
                                                 chunk_rows=CHUNK_ROWS * 10, threads=2))
    assert_nothing_left(output)


def test_a_reader_crash_is_a_file_format_error(ws: Workspace, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_read(path: Path, rows: int) -> tuple[Any, Iterator[Any]]:
        fmt, chunks = iter_chunks(path, rows=rows)

        def two_then_fail() -> Iterator[Any]:
            yield next(chunks)
            yield next(chunks)
            raise OSError(5, "Input/output error")
        return fmt, two_then_fail()

    monkeypatch.setattr(score, "iter_chunks", failing_read)
    output = tmp_path / "out.csv"
    batches = len(ws.registry.list_batches("failure"))
    with pytest.raises(FileFormatError, match="shift.csv: reading stopped after row 100") as info:
        within_deadline(lambda: score.score_file(ws, "failure", plant_file(tmp_path / "shift.csv"),
                                                 output, chunk_rows=CHUNK_ROWS, threads=2))
    assert "Input/output error" in str(info.value) and info.value.hint
    assert isinstance(info.value.__cause__, OSError)
    assert_nothing_left(output)
    assert len(ws.registry.list_batches("failure")) == batches  # nothing recorded


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_writer_crash_is_a_store_error(ws: Workspace, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    real_write = TableWriter.write
    calls = []

    def write_then_fill_the_disk(self: TableWriter, data: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(TableWriter, "write", write_then_fill_the_disk)
    output = tmp_path / f"out{suffix}"
    with pytest.raises(StoreError, match=f"out{suffix}: writing the scored rows stopped after "
                                         "row 50") as info:
        within_deadline(lambda: score.score_file(ws, "failure", plant_file(tmp_path / "s.csv"),
                                                 output, chunk_rows=CHUNK_ROWS, threads=2))
    assert "No space left on device" in str(info.value)
    assert_nothing_left(output)


def test_a_cancel_from_the_progress_callback_stops_the_run(ws: Workspace,
                                                           tmp_path: Path) -> None:
    class Cancelled(Exception):
        pass

    seen: list[int] = []

    def cancel_after_two_chunks(rows: int) -> None:
        seen.append(rows)
        if rows >= 2 * CHUNK_ROWS:
            raise Cancelled

    output = tmp_path / "out.csv"
    with pytest.raises(Cancelled):
        within_deadline(lambda: score.score_file(ws, "failure", plant_file(tmp_path / "s.csv"),
                                                 output, chunk_rows=CHUNK_ROWS, threads=2,
                                                 progress=cancel_after_two_chunks))
    assert seen == [CHUNK_ROWS, 2 * CHUNK_ROWS]
    assert_nothing_left(output)


def test_an_unknown_use_case_stops_the_started_reader(ws: Workspace, tmp_path: Path) -> None:
    # The model loads while the first chunks are read: a missing version must stop the reader.
    output = tmp_path / "out.csv"
    with pytest.raises(NotFoundError):
        within_deadline(lambda: score.score_file(ws, "leaks", plant_file(tmp_path / "s.csv"),
                                                 output, chunk_rows=CHUNK_ROWS, threads=2))
    assert_nothing_left(output)


def test_an_excel_column_with_a_typo_is_rejected_not_a_crash(ws: Workspace,
                                                            tmp_path: Path) -> None:
    frame = pd.read_csv(demo_data()).iloc[100:120].drop(columns=["Machine failure"])
    frame = frame.astype(object)
    frame.loc[frame.index[3], "Torque [Nm]"] = "high"  # Excel keeps numbers and text apart
    frame.to_excel(tmp_path / "shift.xlsx", index=False)
    result = within_deadline(lambda: score.score_file(
        ws, "failure", tmp_path / "shift.xlsx", tmp_path / "out.csv", threads=2))
    assert (result.n_rows, result.n_rejected) == (20, 1)
    out = pd.read_csv(tmp_path / "out.csv", dtype={"Torque [Nm]": str})
    assert out["Torque [Nm]"][3] == "high" and out["status"][3] == "rejected"
    assert out["reason"][3].startswith("type: Row 4, column 'Torque [Nm]'")


@pytest.mark.parametrize(("limits", "failing"), [
    ({"max_latency_ms": 1e-6}, "latency_ms"),
    ({"max_bundle_mb": 0.001}, "bundle_mb"),
    ({"max_latency_ms": 60_000.0, "max_bundle_mb": 500.0}, None),
])
def test_the_use_cases_constraints_join_the_gate(ws: Workspace, limits: dict[str, float],
                                                failing: str | None) -> None:
    # The same plant and objective as the module's use case, with a latency or size limit: a
    # model over a limit is rejected with the reason, in the registry and in its own bundle.
    name = f"limited_{failing or 'none'}"
    ws.project.add_usecase(UseCase.from_dict(name, {
        "task": "binary", "target": "Machine failure", "objective": "recall>=0.1", **limits}))
    ingest(ws, name, ws.project.root / "history.csv")
    trained = train_version(ws, name, budget_s=1.0)
    mv = ws.registry.get_model(name, trained.version)
    clauses = {c["metric"]: c for c in mv.gate["clauses"]}
    assert set(limits) == {"max_" + m for m in clauses if m in ("latency_ms", "bundle_mb")}
    bundle_gate = load_bundle(ws, name, trained.version).json("metrics.json")["gate"]
    assert bundle_gate == json.loads(json.dumps(mv.gate))
    if failing is None:
        assert all(c["passed"] for m, c in clauses.items() if m in ("latency_ms", "bundle_mb"))
        return
    assert mv.state == "rejected" and not clauses[failing]["passed"]
    assert clauses[failing]["value"] > clauses[failing]["target"]
    assert any("above the limit" in r for r in mv.gate["reasons"])


def test_the_onnx_engine_is_built_only_where_it_can_pay(ws: Workspace) -> None:
    # Its start (about 1.5 s) is repaid by trees x input size: never below 8 MB, and for a
    # small model only on a file large enough (bench/RESULTS.md §2).
    predictor, _ = load_predictor(load_bundle(ws, "failure"))
    trees = sum(m.booster.num_trees() for _, m in predictor.members if m.kind == "lightgbm") + \
        sum(m.booster.num_boosted_rounds() for _, m in predictor.members if m.kind == "xgboost")
    assert trees > 0
    mb = 2**20
    assert not score._engine_pays(predictor, 4 * mb)
    enough = max(8.0, score._ENGINE_MIN_TREE_MB / trees)
    assert score._engine_pays(predictor, int((enough + 1) * mb))
    if enough > 9:
        assert not score._engine_pays(predictor, int((enough - 1) * mb))

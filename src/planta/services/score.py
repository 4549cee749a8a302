"""Batch scoring: stream a file through the contract and the production model.

Rows are read in chunks (pyarrow), so memory stays flat as the file grows. Every row comes out:
accepted rows carry the prediction, rejected rows carry ``status = rejected`` and the reason, so
nothing is lost. Each run is recorded as one batch entry (input hash, counts, model version).

The stages overlap, joined by small bounded queues (so memory stays flat)::

    reader thread ──chunks──▶ main thread ───────────────────────────tables──▶ writer thread
    parse the file            validate, build the matrix, assemble           format + write
    (pyarrow, GIL released)        │ blocks of rows     ▲ predictions        (pyarrow, GIL
                                   ▼                    │                     released)
                              predict pool: one single-threaded predict call per block
                              (LightGBM and XGBoost release the GIL)

The main thread keeps one chunk ahead of the pool: while the pool predicts chunk k + 1 it
assembles chunk k, so the cores stay busy. The output is the same, byte for byte, as scoring
the chunks one after another with :func:`score_chunk`: rows keep their order, a row's
prediction does not depend on the other rows of its block, and the same writer writes the
same tables. A failure in any stage stops the others, removes the partial output and raises
a :class:`~planta.errors.PlantaError` naming the file and the row.
"""

from __future__ import annotations

import hashlib
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from planta.core.models import Predictions, Predictor, default_threads
from planta.errors import FileFormatError, PlantaError, StoreError
from planta.services.onnx_engine import OnnxEngine, build_engine, cheaper
from planta.services.tables import Chunk, TableWriter, iter_chunks
from planta.services.workspace import Workspace
from planta_edge.contract import Contract, validate_columns

STATUS_OK = "ok"
STATUS_REJECTED = "rejected"

# Rows per predict call on the pool. Blocks this size keep every core busy to the end of a
# chunk, and the call overhead (0.17 ms for the bench's 3-member model, against 240 ms for the
# block) stays below 0.1 %.
_BLOCK_ROWS = 32_768
# Items waiting between two stages. With the chunk each stage holds and the two chunks the main
# thread keeps in flight, about six chunks are in memory (55 MB each at 200,000 AI4I rows), however
# long the file.
_HANDOFF_ITEMS = 1
# How often a stage blocked on a queue looks whether the pipeline was stopped.
_POLL_S = 0.05
# Inputs at least this large predict through the onnxruntime engine (planta.services.onnx_engine)
# when it is exact for the model: building it and importing onnx cost about 1 s, which the
# engine's faster trees repay only over some tens of thousands of rows.
_ENGINE_MIN_BYTES = 8 * 1024 * 1024
# ... and only when the trees are many enough for the file: the engine's start (about 1.5 s)
# is repaid at about this many trees × input megabytes (bench/RESULTS.md §2: a 35-tree model
# lost with it on a 45 MB file, 1.23× plain LightGBM against 1.51× native, and about broke even
# on 226 MB; a 460-tree ensemble gained on 45 MB).
_ENGINE_MIN_TREE_MB = 5000.0
# Member kinds whose prediction of a row depends on that row only, bit for bit, however the
# rows are split into blocks (a linear model goes through a matrix product, which BLAS may
# sum differently for other shapes: it is cheap, so its chunks are predicted whole).
_ROW_WISE_KINDS = frozenset({"lightgbm", "xgboost"})


@dataclass(frozen=True)
class ScoreResult:
    """What a batch scoring run did."""

    batch_id: str
    usecase: str
    model_version: int
    input_name: str
    input_sha256: str
    output: str
    n_rows: int
    n_ok: int
    n_rejected: int
    duration_s: float
    rejected_by_rule: dict[str, int]

    @property
    def rows_per_s(self) -> float:
        return self.n_rows / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "usecase": self.usecase,
                "model_version": self.model_version, "input": self.input_name,
                "input_sha256": self.input_sha256, "output": self.output, "rows": self.n_rows,
                "ok": self.n_ok, "rejected": self.n_rejected,
                "rejected_by_rule": self.rejected_by_rule,
                "duration_s": round(self.duration_s, 3), "rows_per_s": round(self.rows_per_s)}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# one chunk: check, predict, assemble


@dataclass(frozen=True)
class _Verdict:
    """What the output needs of a chunk's contract check: accepted rows and the reasons."""

    ok: np.ndarray
    reasons: np.ndarray


def _check(predictor: Predictor, contract: Contract, chunk: Chunk, range_policy: str
           ) -> tuple[_Verdict, np.ndarray | None]:
    """The contract check of a chunk, and the model matrix of its accepted rows (None if none).

    The clean values are dropped once the matrix is built: a chunk waiting for its
    predictions holds only the matrix, the verdict and the columns it writes out.
    """
    checked = validate_columns(contract, chunk.columns, range_policy=range_policy,
                               extra_policy="ignore", row_offset=chunk.offset)
    ok = checked.ok
    verdict = _Verdict(ok, checked.reasons)
    if not ok.any():
        return verdict, None
    return verdict, predictor.matrix({k: v[ok] for k, v in checked.values.items()})


def _assemble(predictor: Predictor, columns: dict[str, np.ndarray], verdict: _Verdict,
              pred: Predictions | None, version: int) -> tuple[pa.Table, dict[str, int]]:
    """The output table of a chunk (its columns, then the prediction, status and reason)."""
    ok, reasons = verdict.ok, verdict.reasons
    n = ok.shape[0]
    out: dict[str, Any] = {name: _arrow_column(col) for name, col in columns.items()}
    label = np.full(n, None, dtype=object)
    probability = np.full(n, np.nan)
    score = np.full(n, np.nan)
    if pred is not None:
        label[ok] = pred.label
        if pred.probability is not None:
            prob = pred.probability
            probability[ok] = prob if prob.ndim == 1 else prob.max(axis=1)
        if pred.score is not None:
            score[ok] = pred.score
    if predictor.task == "regression":
        out["prediction"] = pa.array(np.where(ok, score, np.nan), from_pandas=True)
    else:
        # Class names are text (Predictor keeps them as str); None where rejected.
        out["prediction"] = pa.array(label, type=pa.string(), from_pandas=True)
        out["probability"] = pa.array(probability, from_pandas=True)
    out["model_version"] = pa.array(np.full(n, version, dtype=np.int64))
    out["status"] = pa.array(np.where(ok, STATUS_OK, STATUS_REJECTED), type=pa.string())
    out["reason"] = pa.array(reasons, type=pa.string(), from_pandas=True)
    by_rule: dict[str, int] = {}
    for reason in reasons[~ok]:
        rule = str(reason).split(":", 1)[0]
        by_rule[rule] = by_rule.get(rule, 0) + 1
    return pa.table(out), by_rule


def _arrow_column(col: np.ndarray) -> pa.Array:
    """An input column as it goes out: numbers as numbers, text as text, NaN and None empty.

    pyarrow converts an object array in C, inferring the type as it does for a list. A column
    that mixes numbers and text (an Excel column with a typo in it) goes out as text, as
    :func:`~planta.services.tables.write_table` writes it.
    """
    try:
        return pa.array(col, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None or (isinstance(v, float) and math.isnan(v))
                         else str(v) for v in col], type=pa.string())


def score_chunk(predictor: Predictor, contract: Contract, columns: dict[str, np.ndarray],
                version: int, offset: int, *, range_policy: str = "reject"
                ) -> tuple[pa.Table, dict[str, int]]:
    """Validate and predict one chunk; returns the output table and rejections by rule.

    :func:`score_file` does the same work with the stages overlapped; this is the plain,
    one-chunk form (and the reference the pipelined scorer is tested against).
    """
    verdict, matrix = _check(predictor, contract, Chunk(offset, columns), range_policy)
    pred = predictor.predict_matrix(matrix) if matrix is not None else None
    return _assemble(predictor, columns, verdict, pred, version)


# --------------------------------------------------------------------------------------------
# the pipeline


class _Stopped(Exception):
    """Raised inside the pipeline when another stage has stopped it."""


_END = object()


class _Pipeline:
    """The stop flag shared by the stages, and the first failure of a background stage."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.failure: tuple[str, BaseException] | None = None
        self._lock = threading.Lock()

    def fail(self, stage: str, exc: BaseException) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = (stage, exc)
        self.stop.set()


class _Handoff:
    """A bounded queue between two stages; waiting on it ends when the pipeline stops."""

    def __init__(self, pipeline: _Pipeline, size: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._stop = pipeline.stop

    def put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self) -> Any:
        while not self._stop.is_set():
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        raise _Stopped


class _Reader(threading.Thread):
    """Reads chunks into a handoff; counts the rows read, for error messages."""

    def __init__(self, chunks: Iterator[Chunk], out: _Handoff, pipeline: _Pipeline) -> None:
        super().__init__(name="planta-score-read", daemon=True)
        self.chunks = chunks
        self.out = out
        self.pipeline = pipeline
        self.n_rows = 0

    def run(self) -> None:
        try:
            for chunk in self.chunks:
                self.out.put(chunk)
                self.n_rows += chunk.n_rows
            self.out.put(_END)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the main thread, which raises it
            self.pipeline.fail("read", exc)
        finally:
            # Closes the file; the generator belongs to this thread.
            close = getattr(self.chunks, "close", None)
            if close is not None:
                close()


class _Writer(threading.Thread):
    """Writes tables from a handoff; counts the rows written, for error messages."""

    def __init__(self, writer: TableWriter, inbox: _Handoff, pipeline: _Pipeline) -> None:
        super().__init__(name="planta-score-write", daemon=True)
        self.writer = writer
        self.inbox = inbox
        self.pipeline = pipeline
        self.n_rows = 0

    def run(self) -> None:
        try:
            while (table := self.inbox.get()) is not _END:
                self.writer.write(table)
                self.n_rows += table.num_rows
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the main thread, which raises it
            self.pipeline.fail("write", exc)


@dataclass(frozen=True)
class _InFlight:
    """A chunk whose predictions the pool is computing."""

    chunk: Chunk
    verdict: _Verdict
    blocks: list[Future[Predictions]]


def _join_predictions(parts: list[Predictions]) -> Predictions:
    if len(parts) == 1:
        return parts[0]

    def cat(arrays: list[np.ndarray | None]) -> np.ndarray | None:
        return None if arrays[0] is None else np.concatenate(arrays)  # type: ignore[arg-type]

    label = np.concatenate([p.label for p in parts])
    return Predictions(label=label, probability=cat([p.probability for p in parts]),
                       score=cat([p.score for p in parts]), classes=parts[0].classes)


@dataclass(frozen=True)
class _Model:
    """What a run scores with: the predictor, the inference contract and the version number."""

    predictor: Predictor
    contract: Contract
    version: int
    engine: OnnxEngine | None = None   # the same predictions from onnxruntime, when exact

    def predict_matrix(self, X: np.ndarray) -> Predictions:
        return (self.engine or self.predictor).predict_matrix(X)


def _load_model(ws: Workspace, usecase: str, version: str | int, threads: int,
                input_bytes: int = 0) -> _Model:
    """The model version's predictor (one thread per predict call when the pool has several),
    and its onnxruntime engine when that is exact for the model and an input of
    ``input_bytes`` makes building it worth it (:func:`_engine_pays`)."""
    # Imported here, once the reader thread is parsing: planta.services.versions brings in
    # scipy, scikit-learn and then LightGBM (about 1 s of imports on the 2-core bench box),
    # during which the first chunks are read.
    from planta.services.versions import load_bundle, load_predictor

    bundle = load_bundle(ws, usecase, version)
    predictor, contract = load_predictor(bundle)
    if threads > 1:
        # The pool runs `threads` calls at once, so each call runs on one thread (calls on all
        # threads each would put threads x threads on the cores). On the 2-core bench box the
        # pool and one call on both threads score at the same speed (within 2 %); the pool also
        # balances the blocks across cores that the reader and writer share.
        predictor = Predictor.from_members(bundle.members, num_threads=1)
    fast = None
    if _engine_pays(predictor, input_bytes):
        profile = bundle.json("profile.json") if "profile.json" in bundle.members else {}
        fast = build_engine(predictor, profile).engine
        # Faster per single record, the engine may still cost more on large blocks for some
        # models (XGBoost members): measure both on one block of the size the pool predicts.
        if fast is not None and not cheaper(fast, predictor, profile, _BLOCK_ROWS // 4)[0]:
            fast = None
    return _Model(predictor, contract, int(bundle.version or 0), fast)


def _engine_pays(predictor: Predictor, input_bytes: int) -> bool:
    """Whether building the onnxruntime engine can pay for itself on an input this large."""
    if input_bytes < _ENGINE_MIN_BYTES:
        return False
    trees = 0
    for _, model in predictor.members:
        booster = getattr(model, "booster", None)
        if booster is None:
            continue
        if model.kind == "lightgbm":
            trees += int(booster.num_trees())
        elif model.kind == "xgboost":
            trees += int(booster.num_boosted_rounds()) * max(1, int(getattr(model, "n_classes", 1)))
    return trees * input_bytes / 2**20 >= _ENGINE_MIN_TREE_MB


@dataclass
class _Counts:
    """Rows scored so far, accepted, and rejected by rule (kept by the main thread only)."""

    n_rows: int = 0
    n_ok: int = 0
    rejected_by_rule: dict[str, int] = field(default_factory=dict)


class _Run:
    """One pipelined scoring run: reader and writer threads, the predict pool, the main loop.

    :meth:`execute` returns the model it loaded, the counts and the input's SHA-256 once the
    output is in place; on any failure it stops every stage, removes the partial output and
    raises.
    """

    def __init__(self, source: Path, output: Path, chunks: Iterator[Chunk], writer: TableWriter,
                 threads: int) -> None:
        self.source = source
        self.output = output
        self.writer = writer
        self.pipeline = _Pipeline()
        self.reader = _Reader(chunks, _Handoff(self.pipeline, _HANDOFF_ITEMS), self.pipeline)
        self.write_stage = _Writer(writer, _Handoff(self.pipeline, _HANDOFF_ITEMS),
                                   self.pipeline)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="planta-score-predict") \
            if threads > 1 else None
        self.counts = _Counts()

    def execute(self, load: Callable[[], _Model], range_policy: str,
                progress: Callable[[int], None] | None) -> tuple[_Model, _Counts, str]:
        # Reading starts first: the file is parsed while the model library loads.
        self.reader.start()
        self.write_stage.start()
        # Hashing the input (about 0.5 s per GB) overlaps with reading its first chunks.
        input_hash = self.pool.submit(_sha256_file, self.source) if self.pool else None
        try:
            model = load()
            predictor, contract, version = model.predictor, model.contract, model.version
            row_wise = all(m.kind in _ROW_WISE_KINDS for _, m in predictor.members)
            in_flight: deque[_InFlight] = deque()
            while (chunk := self.reader.out.get()) is not _END:
                in_flight.append(self._launch(model, contract, chunk, range_policy,
                                              row_wise))
                # One chunk ahead: the pool predicts it while this thread assembles the last.
                if len(in_flight) > 1:
                    self._land(predictor, in_flight.popleft(), version, progress)
            while in_flight:
                self._land(predictor, in_flight.popleft(), version, progress)
            self.write_stage.inbox.put(_END)
            self.write_stage.join()
            self.reader.join()
            if self.pipeline.failure is not None:
                raise _Stopped
            input_sha = input_hash.result() if input_hash else _sha256_file(self.source)
            try:
                self.writer.close()
            except Exception as exc:  # finishing the file is the last write
                self.pipeline.fail("write", exc)
                raise _Stopped from None
            return model, self.counts, input_sha
        except BaseException as exc:
            self.pipeline.stop.set()
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            self.reader.join()
            self.write_stage.join()
            self.writer.abort()
            failure = self.pipeline.failure
            if isinstance(exc, _Stopped) and failure is not None:
                # A background stage failed: show its error, not the stop it caused here.
                raise _stage_error(failure, self.source, self.output, self.reader.n_rows,
                                   self.write_stage.n_rows) from failure[1]
            raise
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=False)

    def _launch(self, model: _Model, contract: Contract, chunk: Chunk,
                range_policy: str, row_wise: bool) -> _InFlight:
        """Check a chunk and hand its accepted rows to the pool, in blocks."""
        verdict, matrix = _check(model.predictor, contract, chunk, range_policy)
        blocks: list[Future[Predictions]] = []
        if matrix is not None:
            n = matrix.shape[0]
            step = _BLOCK_ROWS if row_wise else n
            for lo in range(0, n, step):
                part = matrix[lo:lo + step]
                if self.pool is None:
                    done: Future[Predictions] = Future()
                    done.set_result(model.predict_matrix(part))
                    blocks.append(done)
                else:
                    blocks.append(self.pool.submit(model.predict_matrix, part))
        return _InFlight(chunk, verdict, blocks)

    def _land(self, predictor: Predictor, job: _InFlight, version: int,
              progress: Callable[[int], None] | None) -> None:
        """Wait for a chunk's predictions, assemble its table and hand it to the writer."""
        pred = _join_predictions([b.result() for b in job.blocks]) if job.blocks else None
        table, by_rule = _assemble(predictor, job.chunk.columns, job.verdict, pred, version)
        self.write_stage.inbox.put(table)
        counts = self.counts
        counts.n_rows += table.num_rows
        counts.n_ok += table.num_rows - sum(by_rule.values())
        for rule, count in by_rule.items():
            counts.rejected_by_rule[rule] = counts.rejected_by_rule.get(rule, 0) + count
        if progress is not None:
            progress(counts.n_rows)


def score_file(ws: Workspace, usecase: str, source: Path, output: Path, *,
               version: str | int = "production", chunk_rows: int = 200_000,
               range_policy: str = "reject",
               progress: Callable[[int], None] | None = None,
               threads: int | None = None) -> ScoreResult:
    """Score a CSV, Excel or Parquet file with a model version (production by default).

    The output format follows ``output``'s extension (.parquet, .csv, .xlsx); a CSV output uses
    the input's delimiter and decimal mark. ``threads`` predict at once (default: the cores
    this process may use). ``progress`` is called with the rows scored so far, from the
    calling thread; an exception it raises stops the run.

    The output appears only when every row is written: if reading, predicting or writing
    fails, the partial file is removed and a :class:`~planta.errors.PlantaError` names the
    file and the row (a read error is a :class:`~planta.errors.FileFormatError`, a failed
    write of the output a :class:`~planta.errors.StoreError`).
    """
    start = time.perf_counter()
    threads = max(1, threads or default_threads())
    source = Path(source)
    output = Path(output)
    fmt, chunks = iter_chunks(source, rows=chunk_rows)
    writer = TableWriter(output, fmt)
    model, counts, input_sha = _Run(source, output, chunks, writer, threads).execute(
        lambda: _load_model(ws, usecase, version, threads,
                            input_bytes=source.stat().st_size),
        range_policy, progress)
    model_version = model.version
    duration = time.perf_counter() - start
    n_rows, n_ok = counts.n_rows, counts.n_ok
    batch = ws.registry.add_batch(
        usecase=usecase, model_version=model_version, input_name=source.name,
        input_hash=input_sha, n_rows=n_rows, n_ok=n_ok, n_rejected=n_rows - n_ok,
        output=str(output), actor=ws.actor, duration_s=duration)
    ws.audit.append("score", f"usecase/{usecase}/batch/{batch.id}", ws.actor,
                    {"model_version": model_version, "input": source.name,
                     "input_sha256": input_sha, "rows": n_rows, "rejected": n_rows - n_ok})
    return ScoreResult(batch_id=batch.id, usecase=usecase, model_version=model_version,
                       input_name=source.name, input_sha256=input_sha, output=str(output),
                       n_rows=n_rows, n_ok=n_ok, n_rejected=n_rows - n_ok, duration_s=duration,
                       rejected_by_rule=counts.rejected_by_rule)


def _stage_error(failure: tuple[str, BaseException], source: Path, output: Path,
                 rows_read: int, rows_written: int) -> PlantaError:
    """The error to show for a failed reader or writer thread, in plant words."""
    stage, exc = failure
    if isinstance(exc, PlantaError):
        return exc
    if stage == "read":
        return FileFormatError(
            f"{source.name}: reading stopped after row {rows_read:,} ({type(exc).__name__}: "
            f"{exc}); {output.name} was not written.",
            hint="Check that the file is complete and readable (copy it again if it came over "
                 "the network), then score it again.")
    return StoreError(
        f"{output.name}: writing the scored rows stopped after row {rows_written:,} "
        f"({type(exc).__name__}: {exc}); the partial file was removed.",
        hint=f"Check the free space and the permissions of {output.parent}, or write the "
             "result elsewhere with -o, then score again.")


__all__ = ["STATUS_OK", "STATUS_REJECTED", "ScoreResult", "score_chunk", "score_file"]

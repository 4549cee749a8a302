"""Async jobs: queue records or a file for scoring, and the worker that scores them.

    submit_records(ws, usecase, records) ─┐  input stored as an artifact,
    submit_file(ws, usecase, name, data) ─┴► then a queued job (planta.store.jobs)
                                                  │
    Worker.run(stop) ── claim ── score ── result artifact ── complete
                          │ lease renewed every lease_s / 3 while the job runs
                          └ worker killed: the lease runs out and another worker takes the job

* A **file** job is scored by :func:`planta.services.score.score_file`, exactly like
  ``planta score``: every row comes out with ``status`` ok or rejected and the reason; the run is
  recorded as a batch and audited (actor: the job's caller). The result is a file
  ``scored-<input stem>.<format>`` (``options["format"]``: parquet by default, csv or xlsx).
* A **records** job is scored by :class:`planta.services.predict.Scorer`, like the online API,
  except that a record that breaks the contract does not refuse the others: it comes back with
  ``status`` rejected and its reason. The result is ``results.json``:
  ``{"usecase", "model_version", "results": [{"status", "prediction", "probability", ...}]}``.

Given a prediction log, the worker logs each job's accepted records (channel ``job``, request id
= the job id), one entry per chunk, and counts the rejected ones as a rejection.

A job fails only for trouble on planta's side (store down, disk full, a crash): it is queued
again with a growing wait, up to ``max_attempts``. An input that can never be scored (an
unreadable file, a use case with no production model) fails at once, with the reason.
Work is done at least once and completed exactly once: if a worker dies mid-job, the next one
starts the job over, and only one completion is ever recorded (a batch row or prediction-log
entry of the dead attempt may remain).

Uploaded file names are labels only: the suffix is matched against an allow-list and the name
is never joined into a path.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planta.errors import (
    FileFormatError,
    InputError,
    IntegrityError,
    NotFoundError,
    PlantaError,
    StateError,
    StoreError,
    keyed,
)
from planta.i18n import DEFAULT_LANG, said, said_number, say, translator
from planta.services.workspace import Workspace
from planta.store.jobs import Job, JobQueue
from planta.store.metadata import json_dumps

if TYPE_CHECKING:
    from planta.store.predictions import PredictionLog

# What an upload may be, longest first so ".csv.gz" wins over ".gz". The suffix used on disk
# comes from this tuple, never from the uploaded name.
INPUT_SUFFIXES = (".csv.gz", ".tsv.gz", ".txt.gz", ".parquet", ".xlsx", ".csv", ".tsv", ".txt",
                  ".pq")
RESULT_FORMATS = ("parquet", "csv", "xlsx")
RANGE_POLICIES = ("reject", "flag", "clip")
# A records job holds its records in memory twice (input and results); past this, send a file.
MAX_RECORDS = 100_000
# Records are validated and predicted this many at a time, with a lease check in between.
RECORDS_CHUNK = 5_000
_FILE_OPTIONS = {"version", "range_policy", "format"}
_RECORDS_OPTIONS = {"version", "range_policy", "extra_policy", "explain"}
# A planta error in these classes means the input can never be scored: no retry.
_PERMANENT = (InputError, NotFoundError, IntegrityError, StateError)


@dataclass(frozen=True)
class JobOutput:
    """What a job produced: the result artifact, its name, and a JSON summary."""

    digest: str
    name: str
    summary: dict[str, Any]


class JobInterrupted(Exception):
    """Raised inside a job at a checkpoint: the lease was lost, or the worker is stopping."""

    def __init__(self, reason: str, *, release: bool) -> None:
        super().__init__(reason)
        self.release = release


# -- submitting ------------------------------------------------------------------------------

def submit_records(ws: Workspace, usecase: str, records: Sequence[Mapping[str, Any]], *,
                   caller: str, options: Mapping[str, Any] | None = None,
                   max_attempts: int = 3) -> Job:
    """Store ``records`` (a list of JSON objects) as an artifact and queue a records job.

    ``options``: ``version`` (number or alias, production by default, resolved when the job
    runs), ``range_policy`` (reject, flag, clip), ``extra_policy`` (ignore by default, or
    reject), ``explain`` (bool).

    Raises:
        InputError: not a non-empty list of objects, too many records, or a bad option.
        NotFoundError: no such use case or model version.
    """
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence) or not records:
        raise keyed(InputError, "job.no_records")
    if len(records) > MAX_RECORDS:
        raise keyed(InputError, "job.too_many", most=f"{MAX_RECORDS:,}", n=f"{len(records):,}")
    bad = next((i for i, r in enumerate(records) if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise keyed(InputError, "job.not_object", record=bad)
    checked = _check_options(ws, usecase, "records", options)
    try:
        data = json_dumps(list(records)).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise keyed(InputError, "job.not_json", reason=str(exc)) from None
    digest = ws.artifacts.put_bytes(data)
    return JobQueue(ws.store).submit(usecase, "records", digest, "records.json", checked,
                                     caller, max_attempts=max_attempts)


def submit_file(ws: Workspace, usecase: str, filename: str, data: bytes | str | os.PathLike[str],
                *, caller: str, options: Mapping[str, Any] | None = None,
                max_attempts: int = 3) -> Job:
    """Store an uploaded CSV, Excel or Parquet file as an artifact and queue a file job.

    ``filename`` is the uploader's name for the file: a label, checked against the allowed
    suffixes and never used as a path. ``data`` is the bytes, or the path of a local file.
    ``options``: ``version``, ``range_policy``, ``format`` of the result (parquet, csv, xlsx).

    Raises:
        FileFormatError: the suffix is not allowed, or the file is empty.
        InputError: a bad option.
        NotFoundError: no such use case or model version.
    """
    label = _label(filename)
    _suffix(label)
    checked = _check_options(ws, usecase, "file", options)
    if isinstance(data, (bytes, bytearray, memoryview)):
        if not data:
            raise keyed(FileFormatError, "job.empty_file", file=label)
        digest = ws.artifacts.put_bytes(bytes(data))
    else:
        path = Path(data)
        if not path.is_file() or path.stat().st_size == 0:
            raise keyed(FileFormatError, "job.empty_file", file=label)
        digest = ws.artifacts.put_file(path)
    return JobQueue(ws.store).submit(usecase, "file", digest, label, checked, caller,
                                     max_attempts=max_attempts)


def _check_options(ws: Workspace, usecase: str, kind: str,
                   options: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(options or {})
    allowed = _FILE_OPTIONS if kind == "file" else _RECORDS_OPTIONS
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise keyed(InputError, "job.unknown_options", kind=kind, names=", ".join(unknown),
                    allowed=", ".join(sorted(allowed)))
    out: dict[str, Any] = {"version": given.get("version", "production")}
    if not isinstance(out["version"], (str, int)) or isinstance(out["version"], bool):
        raise keyed(InputError, "job.bad_version", value=repr(out["version"]))
    out["range_policy"] = given.get("range_policy", "reject")
    if out["range_policy"] not in RANGE_POLICIES:
        raise keyed(InputError, "job.bad_choice", option="range_policy",
                    choices=", ".join(RANGE_POLICIES), value=repr(out["range_policy"]))
    if kind == "file":
        out["format"] = given.get("format", "parquet")
        if out["format"] not in RESULT_FORMATS:
            raise keyed(InputError, "job.bad_choice", option="format",
                        choices=", ".join(RESULT_FORMATS), value=repr(out["format"]))
    else:
        out["extra_policy"] = given.get("extra_policy", "ignore")
        if out["extra_policy"] not in ("ignore", "reject"):
            raise keyed(InputError, "job.bad_choice", option="extra_policy",
                        choices="ignore, reject", value=repr(out["extra_policy"]))
        out["explain"] = bool(given.get("explain", False))
    ws.project.usecase(usecase)  # NotFoundError naming the known use cases
    ws.registry.resolve(usecase, out["version"])  # fail now, not in the worker, if none
    return out


def _label(filename: str) -> str:
    """The last part of an uploaded name, printable, at most 200 characters."""
    name = str(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[-200:] or "upload"


def _suffix(label: str) -> str:
    low = label.lower()
    for suffix in INPUT_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return suffix
    raise keyed(FileFormatError, "job.bad_suffix", file=label,
                suffixes=", ".join(INPUT_SUFFIXES))


# -- results ---------------------------------------------------------------------------------

def result_path(ws: Workspace, job: Job) -> Path | None:
    """The result file of a done job on this machine (None if artifacts are remote).

    Raises:
        StateError: the job is not done.
    """
    return ws.artifacts.local_path(_result_digest(job))


def result_bytes(ws: Workspace, job: Job) -> bytes:
    """The result of a done job (checked against its digest).

    Raises:
        StateError: the job is not done.
    """
    return ws.artifacts.get_bytes(_result_digest(job))


def _result_digest(job: Job) -> str:
    if job.status != "done" or job.result_digest is None:
        why = said(f"job.why.{job.status}", error=job.error or "") if job.status in (
            "queued", "running", "failed", "cancelled") else said("job.why.other",
                                                                  status=job.status)
        raise keyed(StateError, "job.no_result", job=job.id, why=why)
    return job.result_digest


# -- the worker ------------------------------------------------------------------------------

def default_owner() -> str:
    """A worker name unique on the network: host, process id and a random suffix."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Claims jobs and scores them, one at a time.

    ``owner`` names this worker in the queue (unique: see :func:`default_owner`). ``lease_s`` is
    how long a job stays ours without a heartbeat; a dead worker's job is taken over after it.
    ``poll_s`` is the wait when the queue is empty. ``log``, a
    :class:`~planta.store.predictions.PredictionLog`, receives every accepted record's
    prediction (channel ``job``, request id = the job id; a records job's results then carry
    their ``prediction_id``) and a count of the rejected ones. ``say`` receives one line per
    event, for people, in ``lang`` (default: the project's, ``PLANTA_LANG`` over ``[ui] lang``);
    ``on_job`` each handled job as it ended.
    """

    def __init__(self, ws: Workspace, *, owner: str | None = None, lease_s: float = 30.0,
                 poll_s: float = 0.5, log: PredictionLog | None = None,
                 say: Callable[[str], None] | None = None,
                 on_job: Callable[[Job], None] | None = None, queue: JobQueue | None = None,
                 lang: str | None = None) -> None:
        self.ws = ws
        self.t = translator(lang or _project_lang(ws))
        self.owner = owner or default_owner()
        self.lease_s = float(lease_s)
        self.poll_s = float(poll_s)
        self.log = log
        self.say = say or (lambda _text: None)
        self.on_job = on_job
        self.queue = queue or JobQueue(ws.store)
        self.last_job: Job | None = None  # the job the last run_once handled, as it ended

    # -- loops -------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> int:
        """Handle jobs until ``stop`` is set; return how many were handled.

        When ``stop`` is set during a job, the job is given back to the queue at its next
        checkpoint (a chunk boundary), so shutting down takes one chunk, not one file.
        The store being unreachable is waited out, with growing pauses up to 30 s.
        """
        handled = 0
        pause = self.poll_s
        while not stop.is_set():
            try:
                worked = self.run_once(stop)
            except StoreError as exc:
                self.say(self.t("job.say.store_down", reason=exc.message,
                                seconds=say(said_number(pause), self.t)))
                stop.wait(pause)
                pause = min(max(pause, 0.5) * 2, 30.0)
                continue
            pause = self.poll_s
            if worked:
                handled += 1
            else:
                stop.wait(self.poll_s)
        return handled

    def run_once(self, stop: threading.Event | None = None) -> bool:
        """Claim one job and handle it; False when no job was ready. Setting ``stop`` during
        the job gives it back to the queue at its next checkpoint."""
        job = self.queue.claim(self.owner, self.lease_s)
        if job is None:
            return False
        self.say(self.t("job.say.claimed", job=job.id, kind=job.kind, name=job.input_name,
                        usecase=job.usecase, attempt=job.attempts, most=job.max_attempts))
        self.last_job = self._process(job, stop)
        if self.on_job is not None:
            self.on_job(self.last_job)
        return True

    # -- one job -----------------------------------------------------------------------------
    def _process(self, job: Job, stop: threading.Event | None) -> Job:
        lease = _Lease(self.queue, job.id, self.owner, self.lease_s, stop)
        lease.start()
        try:
            output = self.handle(job, lease.check)
        except JobInterrupted as exc:
            lease.stop()
            if exc.release:
                self._settle(lambda: self.queue.release(job.id, self.owner))
                self.say(self.t("job.say.given_back", job=job.id, reason=str(exc)))
            else:
                self.say(self.t("job.say.dropped", job=job.id, reason=str(exc)))
            return self._current(job)
        except _PERMANENT as exc:
            lease.stop()
            return self._failed(job, str(exc), retry=False)
        except Exception as exc:  # noqa: BLE001 - any other trouble is ours: retry
            lease.stop()
            self.say(traceback.format_exc().rstrip())
            text = exc.message if isinstance(exc, PlantaError) else f"{type(exc).__name__}: {exc}"
            return self._failed(job, text, retry=True)
        except BaseException:
            # Ctrl-C twice or SystemExit: give the job back before leaving.
            lease.stop()
            self._settle(lambda: self.queue.release(job.id, self.owner))
            raise
        lease.stop()
        done = self._settle(lambda: self.queue.complete(job.id, self.owner, output.digest,
                                                        output.name, output.summary))
        if done is None:
            return self._current(job)
        self.say(self.t("job.say.done", job=job.id, name=output.name,
                        summary=say(_describe(output.summary), self.t)))
        return done

    def handle(self, job: Job, check: Callable[[], None]) -> JobOutput:
        """Score one claimed job and store its result. ``check`` is called at each
        checkpoint and raises :class:`JobInterrupted` when the job must stop.
        Subclasses (tests, new kinds) override this."""
        if job.kind == "file":
            return self._score_file(job, check)
        if job.kind == "records":
            return self._score_records(job, check)
        raise keyed(InputError, "job.unknown_kind", job=job.id, kind=job.kind)

    def _failed(self, job: Job, error: str, *, retry: bool) -> Job:
        ended = self._settle(lambda: self.queue.fail(job.id, self.owner, error, retry=retry))
        if ended is None:
            return self._current(job)
        if ended.status == "queued":
            self.say(self.t("job.say.requeued", job=job.id, attempt=job.attempts, error=error))
        else:
            self.say(self.t("job.say.failed", job=job.id, error=ended.error))
        return ended

    def _settle(self, step: Callable[[], Job]) -> Job | None:
        """Run a queue step; a lost lease (StateError) means another worker owns the job.
        A store that is briefly down gets three tries; after that the lease runs out and the
        job is retried elsewhere, which is safe."""
        for attempt in range(3):
            try:
                return step()
            except StateError as exc:
                self.say(exc.message)
                return None
            except StoreError as exc:
                if attempt == 2:
                    self.say(self.t("job.say.not_recorded", reason=exc.message))
                    return None
                time.sleep(1.0)
        return None  # pragma: no cover

    def _current(self, job: Job) -> Job:
        try:
            return self.queue.get(job.id)
        except StoreError:
            return job

    # -- scoring -----------------------------------------------------------------------------
    def _score_file(self, job: Job, check: Callable[[], None]) -> JobOutput:
        from planta.services.score import score_file

        suffix = _suffix(job.input_name)
        fmt = str(job.options.get("format", "parquet"))
        if fmt not in RESULT_FORMATS:
            raise keyed(InputError, "job.bad_format", job=job.id, format=fmt,
                        choices=", ".join(RESULT_FORMATS))
        stem = job.input_name[: -len(suffix)]
        with tempfile.TemporaryDirectory(prefix="planta-job-") as tmp:
            # The input keeps the job id as its name: the batch row and audit event show it.
            source = Path(tmp) / f"job-{job.id}{suffix}"
            self._materialize(job.input_digest, source)
            output = Path(tmp) / f"scored-{job.id}.{fmt}"
            result = score_file(_acting_for(self.ws, job.caller), job.usecase, source, output,
                                version=job.options.get("version", "production"),
                                range_policy=str(job.options.get("range_policy", "reject")),
                                progress=lambda _n: check())
            check()
            if self.log is not None:
                self._log_file(job, result.model_version, output, check)
                if result.rejected_by_rule:
                    self.log.record_rejection(job.usecase, "job", job.caller[:200],
                                              result.n_rejected, result.rejected_by_rule)
            digest = self.ws.artifacts.put_file(output)
        summary = {k: v for k, v in result.to_dict().items() if k not in ("input", "output")}
        return JobOutput(digest=digest, name=f"scored-{stem}.{fmt}", summary=summary)

    def _materialize(self, digest: str, target: Path) -> None:
        local = self.ws.artifacts.local_path(digest)
        if local is not None:
            try:
                target.symlink_to(local)
                return
            except OSError:  # pragma: no cover - filesystems without symlinks
                pass
        with self.ws.artifacts.open(digest) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def _score_records(self, job: Job, check: Callable[[], None]) -> JobOutput:
        import json

        from planta.services.predict import Scorer
        from planta.services.versions import load_bundle
        from planta_edge.contract import validate_records

        start = time.perf_counter()
        records = json.loads(self.ws.artifacts.get_bytes(job.input_digest))
        mv = self.ws.registry.resolve(job.usecase, job.options.get("version", "production"))
        scorer = Scorer.from_bundle(load_bundle(self.ws, job.usecase, mv.version),
                                    digest=mv.bundle_digest)
        range_policy = str(job.options.get("range_policy", "reject"))
        extra_policy = str(job.options.get("extra_policy", "ignore"))
        explain = bool(job.options.get("explain", False))
        # One validation pass over all records (record numbers in the reasons stay absolute);
        # the accepted ones are then predicted in chunks, with a checkpoint between chunks.
        checked = validate_records(scorer.contract, records, range_policy=range_policy,
                                   extra_policy=extra_policy)
        results: list[dict[str, Any]] = [
            {"status": "rejected", "model_version": scorer.version,
             "reason": str(checked.reasons[i])} if not checked.ok[i] else {}
            for i in range(len(records))]
        ok = [i for i in range(len(records)) if checked.ok[i]]
        for lo in range(0, len(ok), RECORDS_CHUNK):
            check()
            part = ok[lo:lo + RECORDS_CHUNK]
            began = time.perf_counter()
            batch = scorer.predict([records[i] for i in part], explain=explain,
                                   range_policy=range_policy, extra_policy=extra_policy)
            latency_ms = (time.perf_counter() - began) * 1000
            ids: list[str | None] = [None] * len(part)
            if self.log is not None:
                inputs = [{name: column[i] for name, column in checked.values.items()}
                          for i in part]
                ids = list(self._log(job, scorer.version, inputs, batch.outputs(),
                                     entities=batch.entities, latency_ms=latency_ms))
            for j, i in enumerate(part):
                results[i] = {"status": "ok"} | batch.record(j)
                if ids[j] is not None:
                    results[i]["prediction_id"] = ids[j]
        by_rule: dict[str, int] = {}
        for r in results:
            if r["status"] == "rejected":
                rule = str(r["reason"]).split(":", 1)[0]
                by_rule[rule] = by_rule.get(rule, 0) + 1
        check()
        n_rejected = sum(by_rule.values())
        if self.log is not None and n_rejected:
            self.log.record_rejection(job.usecase, "job", job.caller[:200], n_rejected, by_rule)
        document = {"usecase": job.usecase, "model_version": scorer.version, "results": results}
        digest = self.ws.artifacts.put_bytes(json_dumps(document).encode("utf-8"))
        summary = {"usecase": job.usecase, "model_version": scorer.version,
                   "rows": len(results), "ok": len(results) - n_rejected,
                   "rejected": n_rejected, "rejected_by_rule": by_rule,
                   "duration_s": round(time.perf_counter() - start, 3)}
        return JobOutput(digest=digest, name="results.json", summary=summary)

    # -- prediction log ------------------------------------------------------------------------
    def _log(self, job: Job, version: int, inputs: list[dict[str, Any]],
             outputs: Mapping[str, Any], *, entities: Sequence[Any] | None = None,
             latency_ms: float | None = None) -> list[str]:
        """Log one chunk of a job's accepted records (channel ``job``, request id = the job
        id); return their prediction ids. Blocks until the entry is committed."""
        from planta.store.ids import id_range, reserve
        from planta.store.metadata import utc_now
        from planta.store.predictions import LogEntry

        assert self.log is not None
        n = len(inputs)
        first = reserve(n)
        pinned = str(job.options.get("version", "production")) != "production"
        self.log.write_now(LogEntry(
            first_id=first, n=n, at=utc_now(), usecase=job.usecase, version=int(version),
            route="pinned" if pinned else "production", channel="job", caller=job.caller[:200],
            request_id=job.id, latency_ms=latency_ms,
            entities=None if entities is None else list(entities),
            inputs_json=json_dumps(inputs), outputs_json=json_dumps(dict(outputs))))
        return id_range(first, n)

    def _log_file(self, job: Job, version: int, output: Path, check: Callable[[], None]) -> None:
        """Log a scored file's accepted rows, one entry per chunk, read back from the output
        (``score_file`` keeps its chunks to itself): the input columns under their canonical
        names, and the prediction as ``planta score`` wrote it."""
        from planta.services.tables import iter_chunks
        from planta.services.versions import load_bundle
        from planta_edge.contract import Contract

        doc = load_bundle(self.ws, job.usecase, version).json("contract.json")
        contract = Contract.from_dict({k: v for k, v in doc.items()
                                       if k in ("fields", "target", "version")})
        wanted = {f.name for f in contract.inputs}
        entity = next((f.name for f in contract.inputs if f.role == "entity"), None)
        _fmt, chunks = iter_chunks(output, rows=LOG_CHUNK_ROWS)
        for chunk in chunks:
            check()
            cols = chunk.columns
            rows = [i for i, s in enumerate(cols["status"]) if s == "ok"]
            if not rows:
                continue
            fields = {name: header for header in cols if header not in _SCORE_COLUMNS
                      and (name := contract.resolve(header)) in wanted}
            inputs = [{name: cols[h][i] for name, h in fields.items()} for i in rows]
            if "probability" in cols:  # a classifier: labels, read back as text
                outputs: dict[str, Any] = {
                    "prediction": [_label_text(cols["prediction"][i]) for i in rows],
                    "probability": [cols["probability"][i] for i in rows], "score": None}
            else:
                values = [cols["prediction"][i] for i in rows]
                outputs = {"prediction": values, "probability": None, "score": values}
            entities = [row[entity] for row in inputs] if entity in fields else None
            self._log(job, version, inputs, outputs, entities=entities)


# Columns ``planta score`` adds to the input's.
_SCORE_COLUMNS = ("prediction", "probability", "model_version", "status", "reason")
# Rows per prediction-log entry for a file job.
LOG_CHUNK_ROWS = 5_000


def _label_text(value: Any) -> Any:
    """A class label as ``planta score`` wrote it (a CSV read back gives 1.0 for "1")."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _describe(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A finished job's figures as a sentence (:func:`planta.i18n.said`)."""
    rows, rejected = summary.get("rows"), summary.get("rejected")
    if rows is None:
        return said("job.say.no_rows")
    return said("job.say.rows", rows=said_number(rows, 0), rejected=said_number(rejected or 0, 0),
                version=summary.get("model_version"))


def _project_lang(ws: Any) -> str:
    """The project's language for the worker's lines (English where there is no project)."""
    try:
        return str(ws.project.settings.lang)
    except AttributeError:
        return DEFAULT_LANG


@dataclass
class _JobWorkspace(Workspace):
    """The workspace as seen by one job: the actor is the job's caller, so the batch row and
    the audit event name who asked for the scoring, not the OS user running the worker."""

    acting_for: str = ""

    @property
    def actor(self) -> str:
        return self.acting_for


def _acting_for(ws: Workspace, caller: str) -> Workspace:
    return _JobWorkspace(project=ws.project, store=ws.store, registry=ws.registry, audit=ws.audit,
                         artifacts=ws.artifacts, acting_for=caller)


class _Lease:
    """The heartbeat of one running job: renews the lease every ``lease_s / 3`` in a thread.

    ``check()`` (called by the job at checkpoints) raises :class:`JobInterrupted` once the lease
    is lost (cancelled, or taken over) or the worker is stopping.
    """

    def __init__(self, queue: JobQueue, job_id: str, owner: str, lease_s: float,
                 stopping: threading.Event | None) -> None:
        self.queue, self.job_id, self.owner, self.lease_s = queue, job_id, owner, lease_s
        self.stopping = stopping
        self.lost: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def check(self) -> None:
        if self.lost is not None:
            raise JobInterrupted(self.lost, release=False)
        if self.stopping is not None and self.stopping.is_set():
            raise JobInterrupted("the worker is stopping", release=True)

    def _beat(self) -> None:
        while not self._done.wait(self.lease_s / 3):
            try:
                self.queue.renew(self.job_id, self.owner, self.lease_s)
            except StateError as exc:
                self.lost = exc.message
                return
            except PlantaError:
                continue  # the store may be back before the lease runs out


__all__ = ["INPUT_SUFFIXES", "MAX_RECORDS", "RESULT_FORMATS", "JobInterrupted", "JobOutput",
           "Worker", "default_owner", "result_bytes", "result_path",
           "submit_file", "submit_records"]

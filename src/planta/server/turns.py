"""Work gathered over one turn of the event loop: scoring and log hand-over, once per turn.

Concurrent requests reach the server together: the connections whose bytes arrived in one
``select`` are handled in one turn of the event loop. For one-record requests, what a request
costs beside its own HTTP work is mostly fixed per call, not per record: a contract check and a
model call cost about the same for eight records as for one, a group commit fsyncs once
however many rows it holds, and each wake-up of the event loop from the log's writer thread is
a system call on both sides. So the requests of a turn are

* scored together (:class:`ScoreTurn`): one contract check and one model call per model
  version, each request then given its own share of the answer. If the shared call refuses
  (a record breaks a rule), each request of the group is scored on its own, so a refusal names
  the record indexes of its own request and never fails another;
* handed to the prediction log together (:class:`LogTurn`): one group commit, and one wake-up
  of the event loop when the last of their rows is committed.

Neither waits for company: a request alone in its turn is scored and handed over at once, in
the next turn of the loop. The speed-up is measured in bench/RESULTS.md ("Serving").
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from planta.services.predict import PredictionBatch, Scorer

# A shared call scores at most this many records, so a turn of many requests does not hold the
# event loop longer than one inline request may (planta.server.runtime.INLINE_RECORDS).
MAX_SHARED_RECORDS = 256

Records = Sequence[Mapping[str, Any]]


class ScoreTurn:
    """Scores the requests of one event-loop turn with one call per model version.

    ``score(scorer, records, explain)`` does the scoring (Scorer.predict with the server's
    policies); whatever it raises for a request (a refusal) is what that request gets.
    """

    def __init__(self, score: Callable[[Scorer, Records, bool], PredictionBatch]) -> None:
        self._score = score
        self._waiting: list[tuple[Scorer, Records, bool, asyncio.Future[PredictionBatch]]] = []

    async def score(self, scorer: Scorer, records: Records, explain: bool) -> PredictionBatch:
        """The batch for ``records``, scored together with the rest of this turn's."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[PredictionBatch] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._next_turn, loop)
        self._waiting.append((scorer, records, explain, done))
        return await done

    def _next_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        # One more turn: requests whose bytes arrive in the next poll join this group.
        loop.call_soon(self._run)

    def _run(self) -> None:
        waiting, self._waiting = self._waiting, []
        groups: dict[tuple[int, bool], list[tuple[Records, asyncio.Future[PredictionBatch]]]] = {}
        scorers: dict[int, Scorer] = {}
        for scorer, records, explain, done in waiting:
            scorers[id(scorer)] = scorer
            groups.setdefault((id(scorer), explain), []).append((records, done))
        for (key, explain), members in groups.items():
            scorer = scorers[key]
            start = 0
            while start < len(members):
                chunk: list[tuple[Records, asyncio.Future[PredictionBatch]]] = []
                total = 0
                while start < len(members) and (
                        not chunk or total + len(members[start][0]) <= MAX_SHARED_RECORDS):
                    chunk.append(members[start])
                    total += len(members[start][0])
                    start += 1
                self._shared(scorer, explain, chunk)

    def _shared(self, scorer: Scorer, explain: bool,
                members: list[tuple[Records, asyncio.Future[PredictionBatch]]]) -> None:
        if len(members) > 1:
            together = [r for records, _ in members for r in records]
            batch: PredictionBatch | None
            try:
                batch = self._score(scorer, together, explain)
            except Exception:  # noqa: BLE001 - each request is scored alone and gets its own
                batch = None
            if batch is not None:
                lo = 0
                for records, done in members:
                    hi = lo + len(records)
                    if not done.done():  # a request abandoned meanwhile
                        done.set_result(batch.part(lo, hi))
                    lo = hi
                return
        for records, done in members:
            if done.done():
                continue
            try:
                done.set_result(self._score(scorer, records, explain))
            except Exception as exc:  # noqa: BLE001 - raised in the request that sent them
                done.set_exception(exc)


class LogTurn:
    """Hands the log entries of one event-loop turn to the prediction log together.

    Each entry's caller waits until its row is committed. The writer thread resolves one
    concurrent future per row; here they are counted down on that thread, and the event loop
    is woken once, when the last of the turn's rows is settled, instead of once per row.
    """

    def __init__(self, log: Any) -> None:
        self.log = log  # planta.store.predictions.PredictionLog
        self._waiting: list[tuple[Any, asyncio.Future[str]]] = []

    async def write(self, entry: Any) -> str:
        """Log ``entry``; return its first prediction id once its row is committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._hand_over, loop)
        self._waiting.append((entry, done))
        return await done

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            futures = self.log.submit_many([entry for entry, _ in waiting])
        except Exception as exc:  # noqa: BLE001 - the log itself failed: each request hears it
            for _, done in waiting:
                if not done.done():
                    done.set_exception(exc)
            return
        submitted = [(committed, done) for committed, (_, done) in zip(futures, waiting,
                                                                      strict=True)]
        if not submitted:
            return
        left = [len(submitted)]
        lock = threading.Lock()

        def settled(_: Future[str]) -> None:  # on the writer thread (or here, if already done)
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                try:
                    loop.call_soon_threadsafe(_answer, submitted)
                except RuntimeError:  # the loop closed meanwhile: nobody is waiting
                    pass

        for committed, _ in submitted:
            committed.add_done_callback(settled)


def _answer(submitted: list[tuple[Future[str], asyncio.Future[str]]]) -> None:
    for committed, done in submitted:
        if done.done():  # abandoned by its request: the row is written all the same
            continue
        exc = committed.exception()
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(committed.result())


__all__ = ["MAX_SHARED_RECORDS", "LogTurn", "ScoreTurn"]

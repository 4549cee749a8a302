"""Requests of one event-loop turn are scored with one call and logged with one group commit
(planta.server.turns): each still gets exactly its own answer, its own refusal and its own
committed log row, and a refused or abandoned request never fails another."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from servers import GOOD_RECORD

from planta.errors import ContractError, InputError, StoreError
from planta.server.turns import MAX_SHARED_RECORDS, LogTurn, ScoreTurn
from planta.services.predict import PredictionBatch, Scorer
from planta.services.versions import load_bundle
from planta.services.workspace import Workspace
from planta.store.ids import reserve
from planta.store.predictions import LogEntry, PredictionLog


@pytest.fixture(scope="module")
def workspace(served_project: Path) -> Iterator[Workspace]:
    ws = Workspace.open(served_project)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def scorer(workspace: Workspace) -> Scorer:
    return Scorer.from_bundle(load_bundle(workspace, "failure"), version=1)


class Counting:
    """Scorer.predict with the server's policies, counting the calls and their sizes."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, scorer: Scorer, records: Sequence[Mapping[str, Any]],
                 explain: bool) -> PredictionBatch:
        self.calls.append(len(records))
        return scorer.predict(records, explain=explain)


def record(i: int) -> dict[str, Any]:
    """A good record, a different one for each ``i`` (within the contract's ranges)."""
    return GOOD_RECORD | {"torque_nm": 20.0 + i % 40, "tool_wear_min": 10 * (i % 20)}


async def gather_turn(turn: ScoreTurn, scorer: Scorer, requests: list[list[dict[str, Any]]],
                      explain: bool = False) -> list[Any]:
    return await asyncio.gather(*(turn.score(scorer, r, explain) for r in requests),
                                return_exceptions=True)


def test_a_turn_is_scored_in_one_call_and_each_gets_its_own_share(scorer: Scorer) -> None:
    count = Counting()
    requests = [[record(i)] for i in range(6)] + [[record(7), record(8), record(9)]]
    answers = asyncio.run(gather_turn(ScoreTurn(count), scorer, requests, explain=True))
    assert count.calls == [9]  # one shared call for the seven requests
    for req, got in zip(requests, answers, strict=True):
        alone = scorer.predict(req, explain=True)
        assert isinstance(got, PredictionBatch)
        assert got.n == len(req)
        assert got.prediction == alone.prediction
        assert got.probability == alone.probability
        assert got.reasons == alone.reasons and got.flagged == alone.flagged
        assert got.checked is not None and alone.checked is not None
        for name, values in alone.checked.values.items():
            assert got.checked.values[name].tolist() == values.tolist()


def test_a_refused_request_names_its_own_records_and_fails_no_other(scorer: Scorer) -> None:
    count = Counting()
    bad = [record(1), record(2) | {"torque_nm": "lots"}]
    requests = [[record(0)], bad, [record(3)]]
    first, refused, last = asyncio.run(gather_turn(ScoreTurn(count), scorer, requests))
    assert count.calls == [4, 1, 2, 1]  # the shared call refused: each scored alone
    assert isinstance(first, PredictionBatch) and isinstance(last, PredictionBatch)
    assert first.prediction == scorer.predict([record(0)]).prediction
    assert isinstance(refused, ContractError)
    assert [(v.row, v.field) for v in refused.violations] == [(1, "torque_nm")]


def test_turns_split_by_model_version_explain_and_size(scorer: Scorer,
                                                      workspace: Workspace) -> None:
    other = Scorer.from_bundle(load_bundle(workspace, "failure", 2), version=2)
    count = Counting()

    async def run() -> list[Any]:
        turn = ScoreTurn(count)
        big = [record(i) for i in range(MAX_SHARED_RECORDS - 1)]
        return await asyncio.gather(turn.score(scorer, [record(0)], False),
                                    turn.score(other, [record(1)], False),
                                    turn.score(scorer, [record(2)], True),
                                    turn.score(scorer, big, False),
                                    turn.score(scorer, [record(3), record(4)], False))

    answers = asyncio.run(run())
    # v1 without reasons: 1 + 255 records in one call, the next two (over 256) in another.
    assert sorted(count.calls) == [1, 1, 2, MAX_SHARED_RECORDS]
    assert [a.version for a in answers] == [1, 2, 1, 1, 1]
    assert answers[2].reasons is not None and answers[0].reasons is None
    assert answers[3].n == MAX_SHARED_RECORDS - 1 and answers[4].n == 2


def test_a_request_alone_is_scored_without_waiting_for_company(scorer: Scorer) -> None:
    count = Counting()

    async def run() -> PredictionBatch:
        return await asyncio.wait_for(ScoreTurn(count).score(scorer, [record(5)], False), 5)

    assert asyncio.run(run()).n == 1 and count.calls == [1]


def entry(n: int = 1, usecase: str = "failure") -> LogEntry:
    return LogEntry(first_id=reserve(n), n=n, at=datetime.now(UTC), usecase=usecase,
                    version=1, route="production", channel="sync", caller="tester",
                    request_id=None, latency_ms=1.0, device=None, entities=None,
                    inputs_json=b"[" + b",".join([b'{"a":1}'] * n) + b"]",
                    outputs_json=b'{"prediction":[0]}')


def test_a_turns_entries_share_one_commit_and_each_gets_its_id(workspace: Workspace) -> None:
    log = PredictionLog(workspace.store, max_wait_ms=0)
    try:
        entries = [entry() for _ in range(8)]

        async def run() -> list[str]:
            turn = LogTurn(log)
            return await asyncio.gather(*(turn.write(e) for e in entries))

        commits = log.commits
        ids = asyncio.run(run())
        assert ids == [e.prediction_id for e in entries]
        assert log.commits - commits == 1
        assert {r.prediction_id for r in log.get_many(ids).values()} == set(ids)
    finally:
        log.close()


def test_a_malformed_entry_fails_alone_and_a_failed_commit_fails_each(
        workspace: Workspace) -> None:
    log = PredictionLog(workspace.store, max_wait_ms=0)
    good, bad = entry(), entry()
    bad.usecase = ""  # refused by the log's own check before it is queued

    async def run(turn: LogTurn, items: list[LogEntry]) -> list[Any]:
        return await asyncio.gather(*(turn.write(e) for e in items), return_exceptions=True)

    try:
        ok, refused = asyncio.run(run(LogTurn(log), [good, bad]))
        assert ok == good.prediction_id and isinstance(refused, InputError)
    finally:
        log.close()
    # A closed log fails what it is given: every request of the turn hears it.
    answers = asyncio.run(run(LogTurn(log), [entry(), entry()]))
    assert all(isinstance(a, StoreError) for a in answers)


def test_an_abandoned_request_is_still_logged(workspace: Workspace) -> None:
    log = PredictionLog(workspace.store, max_wait_ms=0)
    kept = entry()
    try:
        async def run() -> None:
            task = asyncio.ensure_future(LogTurn(log).write(kept))
            await asyncio.sleep(0)  # handed over in this turn ...
            task.cancel()           # ... then the client went away
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(run())
    finally:
        log.close()  # drains what was queued
    assert log.get(kept.prediction_id) is not None


def test_concurrent_requests_to_a_real_server_get_their_own_answers(server: Any) -> None:
    """Eight clients at once, one sending a bad record: the same answers as one by one."""
    records = [record(i) for i in range(8)]
    records[5] = records[5] | {"tool_wear_min": -3}
    with server.client() as c:
        alone = [c.post("/v1/usecases/failure/predict", json={"records": [r]}) for r in records]

    def send(r: dict[str, Any]) -> Any:
        with server.client() as c:
            return c.post("/v1/usecases/failure/predict", json={"records": [r]})

    for _ in range(3):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            together = list(pool.map(send, records))
        for a, b in zip(alone, together, strict=True):
            assert a.status_code == b.status_code
            if a.status_code == 200:
                pa, pb = a.json()["predictions"][0], b.json()["predictions"][0]
                assert pa["probability"] == pb["probability"]
                assert pa["prediction_id"] != pb["prediction_id"]
            else:
                assert a.status_code == 422
                assert a.json()["error"]["violations"] == b.json()["error"]["violations"]
        ids = [r.json()["predictions"][0]["prediction_id"] for r in together
               if r.status_code == 200]
        with server.client() as c:
            for pid in ids:
                assert c.get(f"/v1/predictions/{pid}").status_code == 200

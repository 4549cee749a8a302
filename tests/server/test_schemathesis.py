"""Schemathesis against a real `planta serve`: whatever a client sends to a documented route, the
server never answers with a 5xx, and its answers fit the documented schema.

The schema is read from the shared server's own ``/openapi.json`` (so it includes the concrete
``/v1/usecases/failure/predict`` path written from the contract). Routes that change the
project's models (promote, decline, canary, shadow, stop, rollback, bundle upload) and DELETE
are left out: the shared server must keep serving the same model to the other tests of the
module. Both positive data (fits the schema) and negative data (breaks it) are sent, a few
examples per route, so that the whole run stays well under a minute.

Schemathesis' pytest integration (``schemathesis.pytest.from_fixture``) does not run under
pytest 9, so each operation's Hypothesis strategy is driven directly (the Python API).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

# Operations that change which model answers, or register one.
MUTATING_PATHS = r"^/v1/usecases/\{name\}/(versions/\{version\}/\{action\}|rollback|bundles)$"
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
USECASE = "failure"  # the served project's use case
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def api_schema(server: Any) -> Any:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    return schema.exclude(path_regex=MUTATING_PATHS).exclude(method="DELETE")


def test_schema_lists_the_routes(api_schema: Any) -> None:
    ops = {f"{op.method.upper()} {op.path}" for op in _operations(api_schema)}
    assert "POST /v1/usecases/failure/predict" in ops  # written from the live contract
    assert "POST /v2/models/{name}/infer" in ops and "GET /v1/jobs/{job_id}/result" in ops
    assert not any("rollback" in o or "{action}" in o or o.startswith("DELETE") for o in ops)


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
def test_no_server_error_and_schema_conformance(api_schema: Any, server: Any,
                                                mode: GenerationMode) -> None:
    failures: list[str] = []
    for op in _operations(api_schema):
        @settings(max_examples=EXAMPLES[mode], deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode), known=st.booleans())
        def check(case: Any, known: bool) -> None:
            if known and "name" in (case.path_parameters or {}):
                case.path_parameters["name"] = USECASE  # past the 404, into the route
            response = case.call(base_url=server.url, timeout=30)
            case.validate_response(response, checks=CHECKS)

        if mode is GenerationMode.NEGATIVE and not _can_break(op):
            continue
        try:
            check()
        except Unsatisfiable:  # every draw was filtered out: nothing negative to send
            assert mode is GenerationMode.NEGATIVE, f"{op.method.upper()} {op.path}"
        except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert '"level": "error"' not in server.log(), server.log()[-3000:]


# Values at the edges that random generation rarely draws; each was a 500 once.
EDGES = [
    ("GET", "/v1/usecases/failure/predictions?since=9999999d", None),
    ("GET", "/v1/usecases/failure/predictions?since=0001-01-01T00:00:00%2B14:00", None),
    ("GET", "/v1/usecases/failure/predictions?until=9999-12-31T23:59:59-14:00", None),
    ("POST", "/v1/usecases/failure/feedback",
     {"feedback": [{"entity": "M-1", "event_time": "0001-01-01T00:00:00+14:00", "value": 1}]}),
    ("POST", "/v1/usecases/failure/feedback",
     {"feedback": [{"entity": "M-1", "event_time": "0001-01-01T00:00:00", "value": 1}]}),
    ("POST", "/v1/usecases/failure/jobs",
     {"records": [{"type": "L"}], "options": {"version": 2**64 - 1}}),
    ("GET", "/v1/usecases/failure/versions/9223372036854775808", None),
    ("GET", "/v2/models/failure/versions/9223372036854775808", None),
]


@pytest.mark.parametrize(("method", "path", "body"), EDGES, ids=[f"{m} {p}" for m, p, _ in EDGES])
def test_edge_values_are_refused_as_4xx(server: Any, method: str, path: str,
                                        body: Any) -> None:
    with server.client() as c:
        r = c.request(method, path, json=body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert "error" in r.json()


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _can_break(op: Any) -> bool:
    """Whether an operation has something negative data can break: a body, a query
    parameter, or a path parameter that is not free text."""
    raw = op.definition.raw
    return "requestBody" in raw or any(
        p.get("in") != "path" or p.get("schema", {}).get("type") != "string"
        for p in raw.get("parameters", []))

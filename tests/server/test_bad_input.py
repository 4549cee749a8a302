"""Everything a client can get wrong, against a real `planta serve`: each refusal is a 4xx with
planta's error JSON naming the rule (and the field and the record where there is one), never a
5xx, never a traceback in the server's log.

One server for the module, started with a small batch limit (``--max-records 5``); nothing here
changes the project's models.
"""

from __future__ import annotations

import http.client
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from servers import GOOD_RECORD, Server, launch

MAX_RECORDS = 5
MAX_BODY_BYTES = 10 * 1024 * 1024  # ServeOptions.max_body_bytes
PREDICT = "/v1/usecases/failure/predict"


@pytest.fixture(scope="module")
def srv(served_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("bad") / "plant"
    shutil.copytree(served_project, root)
    server = launch(root, "--max-records", str(MAX_RECORDS))
    assert server.process.poll() is None, server.log()
    yield server
    server.stop()


def rec(**changes: Any) -> dict[str, Any]:
    """GOOD_RECORD with some fields changed (a value of ``...`` removes the field)."""
    out = dict(GOOD_RECORD) | changes
    return {k: v for k, v in out.items() if v is not ...}


def records(*recs: dict[str, Any]) -> bytes:
    return json.dumps({"records": list(recs)}).encode()


def good_json_with(literal: str, field: str = "torque_nm") -> bytes:
    """The JSON text of one good record whose ``field`` holds ``literal`` as written."""
    marker = "__LITERAL__"
    text = json.dumps({"records": [rec(**{field: marker})]})
    return text.replace(f'"{marker}"', literal).encode()


def chunks_over_limit() -> Iterator[bytes]:
    """A body with no Content-Length (chunked) that grows past the limit."""
    yield b'{"records": ['
    piece = b" " * (1024 * 1024)
    for _ in range(MAX_BODY_BYTES // len(piece) + 2):
        yield piece


@dataclass(frozen=True)
class Case:
    body: Any                    # bytes, or a callable giving an iterator of chunks (chunked)
    status: int
    rule: str
    field: str | None = None
    record: int | None = None
    says: str | None = None      # a phrase the message must contain
    content_type: str | None = "application/json"
    path: str = PREDICT
    query: str = ""


CASES = [
    # -- the contract's rules --------------------------------------------------------------
    pytest.param(Case(records(GOOD_RECORD, rec(torque_nm=...)), 422, "missing_field",
                      "torque_nm", 1, "missing"), id="missing_field"),
    pytest.param(Case(records(rec(spindle_hum=3)), 422, "extra_field", None, 0,
                      "spindle_hum"), id="extra_field"),
    pytest.param(Case(records(rec(torque_nm="abc")), 422, "type", "torque_nm", 0,
                      "not a number"), id="wrong_type_text_in_number"),
    pytest.param(Case(records(rec(type=7.5)), 422, "unknown_category", "type", 0),
                 id="wrong_type_number_in_category"),
    pytest.param(Case(records(rec(torque_nm=[40])), 422, "type", "torque_nm", 0),
                 id="wrong_type_list"),
    pytest.param(Case(records(rec(torque_nm=None)), 422, "null", "torque_nm", 0, "missing"),
                 id="null_value"),
    pytest.param(Case(records(rec(torque_nm="NaN")), 422, "null", "torque_nm", 0),
                 id="nan_as_text"),
    pytest.param(Case(records(GOOD_RECORD, GOOD_RECORD, rec(torque_nm=900)), 422, "above_max",
                      "torque_nm", 2, "above the contract maximum"), id="above_max"),
    pytest.param(Case(records(rec(air_temperature_k=250.0)), 422, "below_min",
                      "air_temperature_k", 0, "below the contract minimum"), id="below_min"),
    pytest.param(Case(records(rec(air_temperature_k=-5.0)), 422, "below_physical",
                      "air_temperature_k", 0, "physical minimum"),
                 id="physically_impossible"),
    pytest.param(Case(records(rec(rotational_speed_rpm=-1500)), 422, "below_physical",
                      "rotational_speed_rpm", 0), id="negative_speed"),
    pytest.param(Case(records(rec(type="X")), 422, "unknown_category", "type", 0,
                      "never seen"), id="unknown_category"),
    pytest.param(Case(records(rec(rnf=0.5)), 422, "not_integer", "rnf", 0), id="not_integer"),
    # -- the shape of the request -----------------------------------------------------------
    pytest.param(Case(records(), 422, "empty_batch", says="empty"), id="empty_batch"),
    pytest.param(Case(records(*[GOOD_RECORD] * (MAX_RECORDS + 1)), 413, "batch_too_large",
                      says=f"limit is {MAX_RECORDS}"), id="batch_over_limit"),
    pytest.param(Case(b'{"rows": []}', 422, "records_missing"), id="records_missing"),
    pytest.param(Case(b'{"records": {"a": 1}}', 422, "records_not_list"),
                 id="records_not_a_list"),
    pytest.param(Case(b'{"records": [1]}', 422, "type", record=0), id="record_not_an_object"),
    pytest.param(Case(b'[{"records": []}]', 422, "records_missing"), id="body_is_a_list"),
    # -- JSON text --------------------------------------------------------------------------
    pytest.param(Case(good_json_with("NaN"), 400, "malformed_json", says="not valid JSON"),
                 id="nan_literal"),
    pytest.param(Case(good_json_with("Infinity"), 400, "malformed_json"),
                 id="infinity_literal"),
    pytest.param(Case(good_json_with("-Infinity"), 400, "malformed_json"),
                 id="minus_infinity_literal"),
    pytest.param(Case(good_json_with("1e999"), 400, "malformed_json"), id="float_overflow"),
    pytest.param(Case(good_json_with("99999999999999999999999"), 400, "malformed_json",
                      says="64 bits"), id="integer_beyond_64_bits"),
    pytest.param(Case(good_json_with("-9223372036854775809", "rnf"), 400, "malformed_json",
                      says="64 bits"), id="negative_integer_beyond_64_bits"),
    pytest.param(Case(good_json_with('"\\ud800"', "type"), 400, "malformed_json"),
                 id="lone_surrogate"),
    pytest.param(Case(good_json_with('"LXX"', "type").replace(b"LXX", b"L\xff"), 400,
                      "malformed_json"), id="invalid_utf8"),
    pytest.param(Case(b'{"records": [' * 600 + b"]}" * 600, 400, "malformed_json"),
                 id="deep_nesting"),
    pytest.param(Case(b"[" * 1100 + b"]" * 1100, 400, "malformed_json"),
                 id="deep_nesting_arrays"),
    pytest.param(Case(b'{"records": [{"type": "L",', 400, "malformed_json"),
                 id="malformed_json"),
    pytest.param(Case(b"{'records': []}", 400, "malformed_json"), id="single_quotes"),
    pytest.param(Case(b"", 400, "empty_body"), id="empty_body"),
    # -- HTTP -------------------------------------------------------------------------------
    pytest.param(Case(records(GOOD_RECORD), 415, "unsupported_media_type",
                      content_type="text/plain"), id="wrong_content_type"),
    pytest.param(Case(records(GOOD_RECORD), 415, "unsupported_media_type",
                      content_type="application/x-www-form-urlencoded"), id="form_content_type"),
    pytest.param(Case(records(GOOD_RECORD), 415, "unsupported_media_type", content_type=None),
                 id="no_content_type"),
    pytest.param(Case(b" " * (MAX_BODY_BYTES + 1), 413, "body_too_large"),
                 id="body_over_limit"),
    pytest.param(Case(chunks_over_limit, 413, "body_too_large"),
                 id="chunked_body_over_limit"),
    pytest.param(Case(records(GOOD_RECORD), 400, "bad_parameter", query="explain=maybe"),
                 id="bad_explain_flag"),
    pytest.param(Case(records(GOOD_RECORD), 400, "bad_parameter", query="version=two"),
                 id="bad_version_parameter"),
    pytest.param(Case(records(GOOD_RECORD), 400, "bad_parameter",
                      query="version=99999999999999999999999"), id="huge_version_parameter"),
    # -- other routes -----------------------------------------------------------------------
    pytest.param(Case(b'{"feedback": []}', 422, "feedback_missing",
                      path="/v1/usecases/failure/feedback"), id="feedback_empty"),
    pytest.param(Case(b"{}", 422, "reason_missing",
                      path="/v1/usecases/failure/versions/1/promote"), id="move_without_reason"),
    pytest.param(Case(b'{"reason": "x", "share": 7}', 422, "type",
                      path="/v1/usecases/failure/versions/1/canary"), id="canary_share_out_of_0_1"),
    pytest.param(Case(b'{"records": "x"}', 422, "records_missing",
                      path="/v1/usecases/failure/jobs"), id="job_records_not_a_list"),
    pytest.param(Case(b'{"records": [], "options": {"colour": 1}}', 422, "bad_option",
                      path="/v1/usecases/failure/jobs"), id="job_unknown_option"),
    pytest.param(Case(b"data", 415, "unsupported_media_type", content_type="image/png",
                      path="/v1/usecases/failure/jobs"), id="job_wrong_content_type"),
    pytest.param(Case(b"not a bundle", 422, "", content_type="application/octet-stream",
                      path="/v1/usecases/failure/bundles"), id="bundle_not_a_bundle"),
]


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    doc = response.json()
    assert set(doc) == {"error"}, doc
    error: dict[str, Any] = doc["error"]
    assert error["status"] == response.status_code
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return error


@pytest.mark.parametrize("case", CASES)
def test_refusal(srv: Server, case: Case) -> None:
    headers = {"content-type": case.content_type} if case.content_type else {}
    body = case.body() if callable(case.body) else case.body
    url = case.path + (f"?{case.query}" if case.query else "")
    with srv.client() as c:
        r = c.post(url, content=body, headers=headers)
        assert r.status_code == case.status, r.text
        error = error_of(r)
        if case.says:
            assert case.says in error["message"], error["message"]
        if case.rule:
            rules = [v["rule"] for v in error["violations"]]
            assert case.rule in rules, error
            named = [v for v in error["violations"] if v["rule"] == case.rule]
            if case.field is not None:
                assert any(v["field"] == case.field for v in named), named
            if case.record is not None:
                assert any(v["record"] == case.record for v in named), named
        # the server is still there and still answers a good request
        assert c.post(PREDICT, json={"records": [GOOD_RECORD]}).status_code == 200


def test_a_refused_request_scores_nothing(srv: Server) -> None:
    """One bad record refuses the whole request, and nothing of it reaches the log."""
    with srv.client() as c:
        before = c.get("/v1/usecases/failure/predictions", params={"limit": 10000}).json()
        r = c.post(PREDICT, json={"records": [GOOD_RECORD, rec(torque_nm=900), GOOD_RECORD]})
        assert r.status_code == 422
        after = c.get("/v1/usecases/failure/predictions", params={"limit": 10000}).json()
    assert len(after["predictions"]) == len(before["predictions"])
    assert "Nothing was scored" in r.json()["error"]["message"]


def test_every_violation_is_reported_with_its_record(srv: Server) -> None:
    bad = [rec(torque_nm=900), GOOD_RECORD, rec(type="Z", air_temperature_k=-1.0)]
    with srv.client() as c:
        r = c.post(PREDICT, json={"records": bad})
    assert r.status_code == 422
    found = {(v["record"], v["field"], v["rule"]) for v in error_of(r)["violations"]}
    assert found == {(0, "torque_nm", "above_max"), (2, "type", "unknown_category"),
                     (2, "air_temperature_k", "below_physical")}


def _raw(srv: Server, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent exactly as written (no client-side normalizing)."""
    parts = urlsplit(srv.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_declared_length_over_limit_is_refused_before_the_body_is_sent(srv: Server) -> None:
    """Content-Length alone decides: the answer comes though not one byte of the body was."""
    status, headers, body = _raw(srv, "POST", PREDICT, {
        "Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES * 4)})
    assert status == 413
    assert json.loads(body)["error"]["violations"][0]["rule"] == "body_too_large"
    assert json.loads(body)["error"]["message_key"] == "http.body_too_large"
    status, _, body = _raw(srv, "POST", PREDICT, {
        "Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES * 4),
        "Accept-Language": "es-MX,es;q=0.9"})
    error = json.loads(body)["error"]
    assert status == 413 and error["message"].startswith("El cuerpo de la solicitud supera")
    assert error["violations"][0]["message"] == error["message"]  # one language throughout


@pytest.mark.parametrize("path", [
    "/v1/usecases/failure/versions/../../etc/passwd/bundle",
    "/v1/usecases/failure/versions/..%2f..%2f..%2fetc%2fpasswd/bundle",
    "/v1/usecases/failure/versions/%2e%2e%2f%2e%2e%2fetc%2fpasswd/bundle",
    "/v1/usecases/failure/versions/1/../../../../../../../etc/passwd",
    "/v1/usecases/failure/versions/99999999999999999999999/bundle",
    "/v1/usecases/failure/versions/9223372036854775808/bundle",
    "/v1/usecases/failure/versions/2147483648/bundle",
    "/v1/usecases/failure/versions/0/bundle",
    "/v1/usecases/failure/versions/-1/bundle",
    "/v1/usecases/failure/versions/1e3/bundle",
    "/v1/usecases/failure/versions/99999999999999999999999",
    "/v1/usecases/fail.ure/versions/1/bundle",
    "/v1/usecases/failure.planta/versions/1/bundle",
    "/v1/usecases/../../etc/versions/1/bundle",
    "/v1/usecases/..%2f..%2fetc/versions/1/bundle",
    "/v1/usecases/%2e%2e/versions/1/bundle",
    "/v1/usecases/a%2fb/versions/1/bundle",
    "/v1/usecases/..%5c..%5cetc/versions/1/bundle",
    "/v1/usecases/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/v1/usecases/%00/versions",
    "/v1/predictions/..%2f..%2fetc%2fpasswd",
    "/v1/jobs/..%2f..%2fetc%2fpasswd/result",
    "/static/docs/../../../../../../etc/passwd",
    "/static/docs/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/v2/models/failure/versions/99999999999999999999999",
    "/v2/models/failure/versions/%C2%B2/ready",
    "/v2/models/..%2f..%2fetc/ready",
], ids=lambda p: p.replace("/", "|")[:60])
def test_path_traversal_finds_nothing(srv: Server, path: str) -> None:
    status, headers, body = _raw(srv, "GET", path)
    assert status in (400, 404, 422), (status, body[:300])
    assert headers["content-type"].startswith("application/json")
    assert b"root:" not in body and b"PK\x03\x04" not in body
    doc = json.loads(body)
    assert "error" in doc or doc == {"name": "failure", "ready": False}, doc  # V2 readiness


def test_huge_version_in_a_move_is_not_found(srv: Server) -> None:
    with srv.client() as c:
        r = c.post("/v1/usecases/failure/versions/99999999999999999999999/promote",
                   json={"reason": "no such version"})
    assert r.status_code == 404 and error_of(r)["kind"] == "NotFoundError"


def test_unknown_paths_and_methods_answer_in_plantas_shape(srv: Server) -> None:
    with srv.client() as c:
        r = c.get("/v1/nothing-here")
        assert r.status_code == 404 and error_of(r)["violations"][0]["rule"] == "not_found"
        r = c.delete("/v1/usecases/failure")
        assert r.status_code == 405 and "allow" in r.headers
        error_of(r)
        r = c.get("/v1/usecases/failure/versions/abc")
        assert r.status_code == 422 and "version" in error_of(r)["message"]


def test_the_server_log_has_no_traceback_after_the_table(srv: Server) -> None:
    """Runs last in this module: every refusal above was handled, none was a crash."""
    with srv.client() as c:
        metrics = c.get("/metrics").text
    assert srv.process.poll() is None
    log = srv.log()
    assert "Traceback" not in log, log[-3000:]
    assert '"level": "error"' not in log, log[-3000:]
    five_xx = [line for line in metrics.splitlines()
               if line.startswith("planta_http_requests_total") and 'status="5' in line]
    assert not five_xx, five_xx


def test_refusals_speak_the_callers_language(srv: Server) -> None:
    """``message_key`` names the catalogue entry; ``message`` follows Accept-Language."""
    body = {"records": [rec(torque_nm=900), GOOD_RECORD, rec(type="Z")]}
    with srv.client() as c:
        en = c.post(PREDICT, json=body)
        es = c.post(PREDICT, json=body, headers={"Accept-Language": "es-AR,es;q=0.9,en;q=0.5"})
        other = c.post(PREDICT, json=body, headers={"Accept-Language": "fr-FR"})
        missing = c.post("/v1/usecases/nope/predict", json=body,
                         headers={"Accept-Language": "es"})
    assert en.status_code == es.status_code == other.status_code == 422
    e, s = error_of(en), error_of(es)
    assert e["message_key"] == s["message_key"] == "api.refused"
    assert "Nothing was scored" in e["message"] and "2 problems in 2 of 3 records" in e["message"]
    assert "No se puntuó nada" in s["message"] and "2 problemas en 2 de 3 registros" in s["message"]
    assert "Corrija" in s["hint"]
    assert s["violations"] == e["violations"]  # rules, fields and records stay as they are
    assert error_of(other)["message"] == e["message"]  # a language planta does not speak
    assert missing.status_code == 404 and error_of(missing)["message_key"]


def test_job_refusals_speak_the_callers_language(srv: Server) -> None:
    jobs = "/v1/usecases/failure/jobs"
    with srv.client() as c:
        suffix = c.post(jobs, files={"file": ("readings.pdf", b"%PDF-1.4", "application/pdf")},
                        headers={"Accept-Language": "es"})
        english = c.post(jobs, files={"file": ("readings.pdf", b"%PDF-1.4", "application/pdf")})
    assert suffix.status_code == english.status_code and 400 <= suffix.status_code < 500
    assert error_of(suffix)["message_key"] == error_of(english)["message_key"] == "job.bad_suffix"
    assert "planta puntúa solo archivos CSV" in error_of(suffix)["message"]
    assert "planta scores CSV, Excel (.xlsx) and Parquet files only" in \
        error_of(english)["message"]


def test_http_level_refusals_speak_the_callers_language(srv: Server) -> None:
    es = {"Accept-Language": "es"}
    with srv.client() as c:
        broken = c.post(PREDICT, content=b'{"records": [', headers=es | {
            "content-type": "application/json"})
        too_many = c.post(PREDICT, json={"records": [GOOD_RECORD] * (MAX_RECORDS + 1)},
                          headers=es)
        english = c.post(PREDICT, json={"records": [GOOD_RECORD] * (MAX_RECORDS + 1)})
        wrong_flag = c.post(PREDICT + "?explain=maybe", json={"records": [GOOD_RECORD]},
                            headers=es)
    assert broken.status_code == 400
    assert error_of(broken)["message"].startswith("El cuerpo de la solicitud no es JSON válido")
    assert error_of(broken)["violations"][0]["rule"] == "malformed_json"
    assert too_many.status_code == english.status_code == 413
    assert error_of(too_many)["message"] == \
        f"El lote tiene {MAX_RECORDS + 1} registros; el límite es {MAX_RECORDS} por solicitud."
    assert error_of(english)["message_key"] == "http.batch_too_large"
    assert error_of(english)["message"].startswith(f"The batch has {MAX_RECORDS + 1} records")
    assert wrong_flag.status_code == 400 and "no es true ni false" in \
        error_of(wrong_flag)["message"]

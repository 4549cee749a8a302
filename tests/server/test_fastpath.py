"""The scoring routes' short way past FastAPI (planta.server.fastpath) answers exactly as the
normal route does.

Two real `planta serve` processes on one project copy: one as shipped (the short way), one with
``PLANTA_FAST_PATH=off`` (every request through FastAPI's router). Every request of the
bad-input table, good ones (explain, pinned version, V2 infer) and the guard's refusals go to
both with the same ``X-Request-Id``; status, headers and JSON must be the same, prediction ids
aside (fresh per answer).
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from servers import GOOD_RECORD, PLANTA, Server, launch
from test_bad_input import CASES, MAX_RECORDS, Case, chunks_over_limit

PREDICT = "/v1/usecases/failure/predict"
V2_BODY = {"inputs": [{"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP64",
                       "shape": [1], "data": [v]} for k, v in GOOD_RECORD.items()]}


@pytest.fixture(scope="module")
def pair(served_project: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("fast") / "plant"
    shutil.copytree(served_project, root)
    fast = launch(root, "--max-records", str(MAX_RECORDS))
    slow = launch(root, "--max-records", str(MAX_RECORDS), env={"PLANTA_FAST_PATH": "off"})
    assert fast.process.poll() is None, fast.log()
    assert slow.process.poll() is None, slow.log()
    yield fast, slow
    fast.stop()
    slow.stop()


def _scrub(doc: Any) -> Any:
    """``doc`` with its fresh ids replaced by a placeholder."""
    if isinstance(doc, dict):
        return {k: "<id>" if k in ("prediction_id",) else _scrub(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_scrub(v) for v in doc]
    return doc


def _outputs_scrubbed(doc: Any) -> Any:
    if isinstance(doc, dict) and "outputs" in doc:
        return doc | {"outputs": [o | {"data": ["<id>"] * len(o["data"])}
                                  if o.get("name") == "prediction_id" else o
                                  for o in doc["outputs"]]}
    return doc


def answers(pair: tuple[Server, Server], method: str, url: str, rid: str, *,
            headers: dict[str, str] | None = None, content: Any = None, json: Any = None
            ) -> tuple[httpx.Response, httpx.Response]:
    """The same request (same ``X-Request-Id``) to the short-way server, then the other."""
    out = []
    for srv in pair:
        body = content() if callable(content) else content
        with srv.client() as c:
            out.append(c.request(method, url, headers={"x-request-id": rid} | (headers or {}),
                                 content=body, json=json))
    return out[0], out[1]


def assert_same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    for header in ("content-type", "www-authenticate", "x-request-id", "allow"):
        assert fast.headers.get(header) == slow.headers.get(header), header
    # A redirect names each server's own address.
    assert urlsplit(fast.headers.get("location", "")).path == \
        urlsplit(slow.headers.get("location", "")).path
    if fast.headers.get("content-type", "").startswith("application/json"):
        a, b = fast.json(), slow.json()
        assert _outputs_scrubbed(_scrub(a)) == _outputs_scrubbed(_scrub(b))
    else:
        assert fast.content == slow.content


@pytest.mark.parametrize("case", [c for c in CASES if c.values[0].path == PREDICT
                                  and not callable(c.values[0].body)])
def test_every_bad_input_is_refused_the_same(pair: tuple[Server, Server], case: Case) -> None:
    headers = {"content-type": case.content_type} if case.content_type else {}
    url = case.path + (f"?{case.query}" if case.query else "")
    fast, slow = answers(pair, "POST", url, "bad-input", content=case.body, headers=headers)
    assert fast.status_code == case.status
    assert_same(fast, slow)


def test_a_chunked_body_over_the_limit_is_refused_the_same(pair: tuple[Server, Server]) -> None:
    fast, slow = answers(pair, "POST", PREDICT, "chunked", content=chunks_over_limit,
                         headers={"content-type": "application/json"})
    assert fast.status_code == 413
    assert_same(fast, slow)


@pytest.mark.parametrize("query", ["", "explain=true", "version=1", "explain=1&version=1",
                                   "explain=", "version=2&version=1"])
def test_good_requests_are_answered_the_same(pair: tuple[Server, Server], query: str) -> None:
    body = {"records": [GOOD_RECORD, GOOD_RECORD | {"torque_nm": 61.0}]}
    fast, slow = answers(pair, "POST", f"{PREDICT}?{query}", "good", json=body)
    assert fast.status_code == 200, fast.text
    assert_same(fast, slow)
    doc = fast.json()
    assert doc["usecase"] == "failure" and len(doc["predictions"]) == 2
    assert ("reasons" in doc["predictions"][0]) == ("explain" in query)


@pytest.mark.parametrize(("method", "url"), [
    ("POST", "/v1/usecases/nothing-here/predict"),   # unknown use case: 404 from the runtime
    ("POST", "/v1/usecases/failure/predict/"),       # not the route: FastAPI answers both
    ("POST", "/v1/usecases//predict"),
    ("POST", "/v1/usecases/a/b/predict"),
    ("GET", PREDICT),                                # 405 from FastAPI on both
    ("PUT", PREDICT),
    ("POST", "/v1/usecases/fail%2Fure/predict"),
])
def test_near_misses_and_other_methods_are_the_same(pair: tuple[Server, Server], method: str,
                                                    url: str) -> None:
    kwargs: dict[str, Any] = {"json": {"records": [GOOD_RECORD]}} if method != "GET" else {}
    fast, slow = answers(pair, method, url, "miss", **kwargs)
    assert fast.status_code >= 300  # a redirect (trailing slash), 404 or 405
    assert_same(fast, slow)


@pytest.mark.parametrize(("url", "body"), [
    ("/v2/models/failure/infer", V2_BODY),
    ("/v2/models/failure/infer", V2_BODY | {"id": "abc", "outputs": [{"name": "probability"}]}),
    ("/v2/models/failure/versions/1/infer", V2_BODY),
    ("/v2/models/failure/versions/99/infer", V2_BODY),
    ("/v2/models/failure/versions/x/infer", V2_BODY),
    ("/v2/models/failure/infer", {"inputs": [{"name": "torque_nm", "datatype": "FP64",
                                              "shape": [1], "data": [900.0]}]}),
    ("/v2/models/failure/infer", {"inputs": "nope"}),
    ("/v2/models/nothing/infer", V2_BODY),
])
def test_v2_infer_is_answered_the_same(pair: tuple[Server, Server], url: str,
                                       body: dict[str, Any]) -> None:
    fast, slow = answers(pair, "POST", url, "v2", json=body)
    assert_same(fast, slow)


def test_v2_binary_tensors_are_answered_the_same(pair: tuple[Server, Server]) -> None:
    header = b'{"inputs": [{"name": "torque_nm", "datatype": "FP64", "shape": [1], ' \
             b'"parameters": {"binary_data_size": 8}}]}'
    fast, slow = answers(pair, "POST", "/v2/models/failure/infer", "bin",
                         content=header + b"\x00" * 8,
                         headers={"inference-header-content-length": str(len(header)),
                                  "content-type": "application/octet-stream"})
    assert fast.status_code >= 400  # the other fields are missing
    assert_same(fast, slow)


@pytest.mark.parametrize(("headers", "status"), [
    ({"host": "evil.example"}, 421),
    ({"origin": "http://evil.example"}, 403),
    ({"origin": "null"}, 403),
    ({"content-length": "999999999999"}, 413),
])
def test_the_guard_refuses_the_same(pair: tuple[Server, Server], headers: dict[str, str],
                                    status: int) -> None:
    content = b"{}" if "content-length" in headers else b'{"records": []}'
    # httpx would correct a wrong Content-Length: raw requests.
    (fs, fb), (ss, sb) = (_raw_post(srv, PREDICT, content, headers | {"x-request-id": "guard"})
                          for srv in pair)
    assert fs == ss == status
    assert fb == sb


def _raw_post(srv: Server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    url = urlsplit(srv.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.putrequest("POST", path, skip_host="host" in headers)
        sent = {"content-type": "application/json", "content-length": str(len(body))} | headers
        for key, value in sent.items():
            conn.putheader(key, value)
        conn.endheaders()
        try:
            conn.send(body)
        except OSError:
            pass  # refused before the body was read
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_metrics_count_the_short_way_under_the_route_template(
        pair: tuple[Server, Server]) -> None:
    fast, _ = pair
    with fast.client() as c:
        assert c.post(PREDICT, json={"records": [GOOD_RECORD]}).status_code == 200
        assert c.post(PREDICT, json={"records": []}).status_code == 422
        assert c.post("/v2/models/failure/infer", json=V2_BODY).status_code == 200
        text = c.get("/metrics").text
    for route in ("/v1/usecases/{name}/predict", "/v2/models/{name}/infer"):
        line = next((ln for ln in text.splitlines() if ln.startswith(
            "planta_http_requests_total{") and f'route="{route}"' in ln
            and 'status="200"' in ln), None)
        assert line is not None and float(line.rsplit(" ", 1)[1]) >= 1, route
    assert any('route="/v1/usecases/{name}/predict"' in ln and 'status="422"' in ln
               for ln in text.splitlines() if ln.startswith("planta_http_requests_total{"))


def test_every_answered_prediction_is_in_the_log(pair: tuple[Server, Server]) -> None:
    fast, _ = pair
    with fast.client() as c:
        ids = [c.post(PREDICT, json={"records": [GOOD_RECORD]}).json()["predictions"][0]
               ["prediction_id"] for _ in range(5)]
        for pid in ids:
            logged = c.get(f"/v1/predictions/{pid}")
            assert logged.status_code == 200, logged.text


def test_auth_on_the_short_way(project_copy: Path, start_server: Any) -> None:
    def token(role: str) -> str:
        out = subprocess.run([PLANTA, "token", "create", "--role", role, "--name", role,
                              "--json"], cwd=project_copy, capture_output=True, text=True,
                             check=True, timeout=120)
        return str(json.loads(out.stdout)["secret"])

    viewer, operator = token("viewer"), token("operator")
    fast = start_server(project_copy, "--require-auth")
    slow = start_server(project_copy, "--require-auth", env={"PLANTA_FAST_PATH": "off"})
    body = {"records": [GOOD_RECORD]}
    for secret, status in ((None, 401), ("not-a-token", 401), (viewer, 403),
                           (operator, 200)):
        headers = {"authorization": f"Bearer {secret}"} if secret else {}
        f, s = answers((fast, slow), "POST", PREDICT, "auth", json=body, headers=headers)
        assert f.status_code == status, f.text
        assert_same(f, s)
        f, s = answers((fast, slow), "POST", "/v2/models/failure/infer", "auth",
                       json=V2_BODY, headers=headers)
        assert f.status_code == status, f.text
        assert_same(f, s)


def test_request_ids_are_ulids_in_time_order() -> None:
    from planta.server.guard import new_request_id
    from planta.store.ids import is_id, timestamp

    ids = [new_request_id() for _ in range(2000)]
    assert all(is_id(i) for i in ids) and len(set(ids)) == len(ids)
    times = [timestamp(i) for i in ids]
    assert times == sorted(times)

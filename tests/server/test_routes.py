"""Every route of `planta serve` answers as documented, against a real server process.

Read-only and logging routes use the module's shared ``server``; uploads and lifecycle moves
run on ``copy_server``, a second server on a private copy of the project.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from servers import GOOD_RECORD, PLANTA, Server, launch

from planta_edge.bundle import read_bundle

PREDICT = "/v1/usecases/failure/predict"
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@pytest.fixture(scope="module")
def copy_server(served_project: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Server]:
    """A server of its own on a private copy: the tests using it change the models."""
    root = tmp_path_factory.mktemp("moves") / "plant"
    shutil.copytree(served_project, root)
    srv = launch(root)
    yield srv
    srv.stop()


def records(n: int) -> list[dict[str, Any]]:
    """n good, different records."""
    return [GOOD_RECORD | {"torque_nm": 25.0 + 3 * (i % 10), "tool_wear_min": (7 * i) % 250,
                           "type": "LMH"[i % 3]} for i in range(n)]


def eventually(check: Callable[[], Any], within: float, every: float = 0.05) -> Any:
    """``check()``'s first truthy result within ``within`` seconds (AssertionError after)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s: {check}")
        time.sleep(every)


# -- predictions -------------------------------------------------------------------------------

def test_predict_one_record(server: Server) -> None:
    with server.client() as c:
        r = c.post(PREDICT, json={"records": [GOOD_RECORD]})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["usecase"] == "failure" and doc["model_version"] == 1
    assert doc["route"] == "production"
    (answer,) = doc["predictions"]
    assert ULID.match(answer["prediction_id"])
    assert str(answer["prediction"]) in ("0", "1") and 0 <= answer["probability"] <= 1
    assert "reasons" not in answer


def test_predict_many_records_gives_unique_sortable_ids_all_logged(server: Server) -> None:
    batch = records(25)
    with server.client() as c:
        r = c.post(PREDICT, json={"records": batch})
        assert r.status_code == 200, r.text
        answers = r.json()["predictions"]
        ids = [a["prediction_id"] for a in answers]
        assert len(ids) == 25 and len(set(ids)) == 25
        assert ids == sorted(ids), "ids follow the records' order"
        again = c.post(PREDICT, json={"records": batch[:3]}).json()["predictions"]
        assert again[0]["prediction_id"] > ids[-1], "later requests sort later"
        for i, pid in enumerate(ids):
            logged = c.get(f"/v1/predictions/{pid}")
            assert logged.status_code == 200, logged.text
            doc = logged.json()
            assert doc["prediction_id"] == pid and doc["usecase"] == "failure"
            assert doc["inputs"] == batch[i]
            assert doc["probability"] == pytest.approx(answers[i]["probability"])
            assert doc["version"] == 1 and doc["channel"] == "sync"
        listed = c.get("/v1/usecases/failure/predictions", params={"limit": 10000}).json()
    listed_ids = [p["prediction_id"] for p in listed["predictions"]]
    assert set(ids) <= set(listed_ids)
    assert listed_ids == sorted(listed_ids, reverse=True), "newest first"


def test_prediction_lookups_that_find_nothing(server: Server) -> None:
    with server.client() as c:
        missing = c.get("/v1/predictions/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        assert missing.status_code == 404 and missing.json()["error"]["kind"] == "NotFoundError"
        bad = c.get("/v1/predictions/not-an-id")
        assert bad.status_code == 422
        assert bad.json()["error"]["violations"][0]["rule"] == "bad_id"


def test_explain_gives_reasons_naming_fields(server: Server) -> None:
    with server.client() as c:
        fields = {f["name"] for f in c.get("/v1/usecases/failure").json()["fields"]}
        r = c.post(PREDICT, params={"explain": "true"}, json={"records": records(3)})
    assert r.status_code == 200, r.text
    for answer in r.json()["predictions"]:
        reasons = answer["reasons"]
        assert 1 <= len(reasons) <= 3
        for reason in reasons:
            assert reason["field"] in fields
            assert isinstance(reason["text"], str) and len(reason["text"]) > 5
            assert reason["level"] in ("low", "usual", "high")
            assert isinstance(reason["effect"], float)


def test_version_pins_the_answering_model(server: Server) -> None:
    with server.client() as c:
        pinned = c.post(PREDICT, params={"version": 1}, json={"records": [GOOD_RECORD]})
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["model_version"] == 1 and pinned.json()["route"] == "pinned"
        state = c.get("/v1/usecases/failure/versions/2").json()["state"]
        second = c.post(PREDICT, params={"version": 2}, json={"records": [GOOD_RECORD]})
        if state == "rejected":  # the fixture's tiny budget may fail the gate: never served
            assert second.status_code == 404, second.text
            assert "rejected" in second.json()["error"]["message"]
        else:
            assert second.status_code == 200, second.text
            doc = second.json()
            assert doc["model_version"] == 2 and doc["route"] == "pinned"
            assert {a["model_version"] for a in doc["predictions"]} == {2}
            logged = c.get(f"/v1/predictions/{doc['predictions'][0]['prediction_id']}")
            assert logged.json()["version"] == 2 and logged.json()["route"] == "pinned"
        none = c.post(PREDICT, params={"version": 99}, json={"records": [GOOD_RECORD]})
        assert none.status_code == 404 and none.json()["error"]["kind"] == "NotFoundError"


def test_unknown_usecase_is_a_plain_404(server: Server) -> None:
    with server.client() as c:
        for r in (c.post("/v1/usecases/boiler/predict", json={"records": [GOOD_RECORD]}),
                  c.get("/v1/usecases/boiler"), c.get("/v1/usecases/boiler/predictions"),
                  c.get("/v1/usecases/boiler/versions"),
                  c.post("/v1/usecases/boiler/feedback", json={"feedback": [{"value": 1}]})):
            assert r.status_code == 404, r.text
            error = r.json()["error"]
            assert "There is no use case 'boiler'" in error["message"]
            assert "Traceback" not in r.text and "File \"" not in r.text


# -- use cases and versions --------------------------------------------------------------------

def test_usecases_describe_the_contract(server: Server) -> None:
    with server.client() as c:
        listed = c.get("/v1/usecases").json()["usecases"]
        one = c.get("/v1/usecases/failure").json()
        versions = c.get("/v1/usecases/failure/versions").json()["versions"]
        first = c.get("/v1/usecases/failure/versions/1").json()
    assert [u["name"] for u in listed] == ["failure"] and listed[0] == one
    assert one["task"] == "binary" and one["live"] == {"production": 1}
    fields = {f["name"]: f for f in one["fields"]}
    assert set(fields) == set(GOOD_RECORD)
    assert fields["type"]["categories"] == ["H", "L", "M"]
    assert fields["torque_nm"]["unit"] == "Nm"
    assert [v["version"] for v in versions][:2] == [1, 2]
    assert first["version"] == 1 and first["state"] == "production"


def test_readyz_reports_the_models(server: Server) -> None:
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "alive"}
        r = c.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready" and r.json()["models"] == {"failure": 1}
    assert r.json()["problems"] == []


def test_metrics_after_traffic(server: Server) -> None:
    with server.client() as c:
        assert c.post(PREDICT, json={"records": records(2)}).status_code == 200
        assert c.post(PREDICT, json={"records": [GOOD_RECORD | {"torque_nm": 999}]}
                      ).status_code == 422
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for needle in (
            'planta_http_requests_total{method="POST",route="/v1/usecases/{name}/predict",'
            'status="200"}',
            'planta_http_requests_total{method="POST",route="/v1/usecases/{name}/predict",'
            'status="422"}',
            "planta_http_request_duration_seconds_bucket",
            'planta_predictions_total{prediction="0",route="production",usecase="failure",'
            'version="1"}',
            "planta_prediction_score_bucket",
            "planta_prediction_log_queue_depth ",
            'planta_rejected_records_total{rule="above_max",usecase="failure"}',
            'planta_model_live{route="production",usecase="failure",version="1"} 1.0',
            "planta_jobs"):
        assert needle in text, needle
    served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("planta_predictions_total{"))
    assert served >= 2


def test_request_id_is_echoed_and_logged(server: Server) -> None:
    with server.client() as c:
        r = c.post(PREDICT, json={"records": [GOOD_RECORD]},
                   headers={"X-Request-ID": "line4-plc-000123"})
        assert r.headers["x-request-id"] == "line4-plc-000123"
        pid = r.json()["predictions"][0]["prediction_id"]
        assert c.get(f"/v1/predictions/{pid}").json()["request_id"] == "line4-plc-000123"
        refused = c.post(PREDICT, json={"records": []}, headers={"X-Request-ID": "req-7"})
        assert refused.headers["x-request-id"] == "req-7"
        assert refused.json()["error"]["request_id"] == "req-7"
        odd = c.get("/healthz", headers={"X-Request-ID": "no spaces <allowed>"})
        assert ULID.match(odd.headers["x-request-id"]), "replaced by a fresh id"
        assert ULID.match(c.get("/healthz").headers["x-request-id"])


def test_docs_use_only_local_assets(server: Server) -> None:
    with server.client() as c:
        r = c.get("/docs")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        html = r.text
        assert not re.search(r"https?://", html), "no CDN or other remote URL"
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert len(assets) >= 3
        for asset in assets:
            assert asset.startswith("/static/"), asset
            got = c.get(asset)
            assert got.status_code == 200 and len(got.content) > 100, asset
        assert c.get("/", follow_redirects=False).headers["location"] == "/ui"


def test_openapi_has_the_concrete_predict_path(server: Server) -> None:
    with server.client() as c:
        doc = c.get("/openapi.json").json()
        fields = c.get("/v1/usecases/failure").json()["fields"]
    paths = doc["paths"]
    assert "/v1/usecases/failure/predict" in paths
    assert "/v1/usecases/{name}/predict" not in paths
    op = paths["/v1/usecases/failure/predict"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["records"]
    ref = body["properties"]["records"]["items"]["$ref"]
    record = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(record["properties"]) == {f["name"] for f in fields}
    assert set(record["required"]) == set(GOOD_RECORD)
    for f in fields:
        schema = record["properties"][f["name"]]
        if f["kind"] in ("number", "integer"):
            assert "minimum" in schema and "maximum" in schema, f
            assert schema["minimum"] <= GOOD_RECORD[f["name"]] <= schema["maximum"]
    assert record["properties"]["type"]["enum"] == ["H", "L", "M"]
    assert record["properties"]["torque_nm"]["maximum"] < 900  # 900 Nm is refused
    assert {"400", "413", "415", "422"} <= set(op["responses"])
    for route in ("/v1/usecases/{name}/feedback", "/v1/usecases/{name}/jobs",
                  "/v2/models/{name}/infer", "/readyz", "/metrics"):
        assert route in paths, route


# -- feedback ----------------------------------------------------------------------------------

def test_feedback_by_prediction_id(server: Server) -> None:
    with server.client() as c:
        ids = [a["prediction_id"] for a in
               c.post(PREDICT, json={"records": records(2)}).json()["predictions"]]
        url = "/v1/usecases/failure/feedback"
        first = c.post(url, json={"feedback": [{"prediction_id": ids[0], "value": 1},
                                               {"prediction_id": ids[1], "value": 0}]})
        assert first.status_code == 200, first.text
        assert first.json() == {"added": 2, "unchanged": 0, "updated": 0, "unknown": []}
        again = c.post(url, json={"feedback": [{"prediction_id": ids[0], "value": 1}]})
        assert again.json() == {"added": 0, "unchanged": 1, "updated": 0, "unknown": []}
        changed = c.post(url, json={"feedback": [{"prediction_id": ids[1], "value": 1}]})
        assert changed.json()["updated"] == 1
        unknown = c.post(url, json={"feedback": [
            {"prediction_id": ids[0], "value": 1},
            {"prediction_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "value": 1},
            {"prediction_id": "nonsense", "value": 0},
            {"prediction_id": ids[1]}]}).json()
    assert unknown["unchanged"] == 1
    reported = {u["index"]: u["reason"] for u in unknown["unknown"]}
    assert set(reported) == {1, 2, 3}
    assert "01ARZ3NDEKTSV4RRFFQ69G5FAV" in reported[1] and "nonsense" in reported[2]


# -- bundles and moves -------------------------------------------------------------------------

def test_bundle_download_verifies(server: Server) -> None:
    with server.client() as c:
        r = c.get("/v1/usecases/failure/versions/1/bundle")
        v1 = c.get("/v1/usecases/failure/versions/1").json()
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    digest = r.headers["x-planta-sha256"]
    assert hashlib.sha256(r.content).hexdigest() == digest == v1["bundle_digest"]
    assert r.headers["etag"] == f'"{digest}"'
    assert 'filename="failure-v1.planta"' in r.headers["content-disposition"]
    bundle = read_bundle(r.content, expected_digest=digest)
    assert bundle.usecase == "failure" and "contract.json" in bundle.members


def _live(c: httpx.Client) -> dict[str, int]:
    live: dict[str, int] = c.get("/v1/usecases/failure").json()["live"]
    return live


def _move(c: httpx.Client, version: int, action: str, **body: Any) -> httpx.Response:
    r = c.post(f"/v1/usecases/failure/versions/{version}/{action}",
               json={"reason": f"test: {action}"} | body)
    assert r.status_code == 200, r.text
    return r


def test_upload_then_move_versions_over_http(copy_server: Server) -> None:
    with copy_server.client() as c:
        data = c.get("/v1/usecases/failure/versions/1/bundle").content
        before = c.get("/v1/usecases/failure/versions").json()["versions"]
        # a tampered byte is refused, and nothing is registered
        tampered = bytearray(data)
        tampered[len(tampered) // 2] ^= 0x01
        bad = c.post("/v1/usecases/failure/bundles", content=bytes(tampered),
                     headers={"content-type": "application/octet-stream"})
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["kind"] == "IntegrityError"
        wrong_type = c.post("/v1/usecases/failure/bundles", content=data,
                            headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        assert c.get("/v1/usecases/failure/versions").json()["versions"] == before
        # the downloaded bundle, uploaded again, is a new version
        up = c.post("/v1/usecases/failure/bundles", content=data,
                    headers={"content-type": "application/octet-stream"})
        assert up.status_code == 201, up.text
        new = up.json()
        assert new["version"] == max(v["version"] for v in before) + 1
        assert new["bundle_sha256"] == hashlib.sha256(data).hexdigest()
        version = new["version"]
        shown = c.get(f"/v1/usecases/failure/versions/{version}").json()
        assert shown["summary"]["imported"] is True and shown["state"] == new["state"]
        again = c.get(f"/v1/usecases/failure/versions/{version}/bundle")
        assert again.content == data

        if new["state"] == "candidate":
            _move(c, version, "canary", share=0.5)
            live = eventually(lambda: _live(c).get("canary") == version and _live(c), 1.0)
            assert live["production"] == 1
            assert c.get("/v1/usecases/failure").json()["canary_share"] == 0.5
            _move(c, version, "stop")
            eventually(lambda: "canary" not in _live(c), 1.0)
            _move(c, version, "shadow")
            eventually(lambda: _live(c).get("shadow") == version, 1.0)
            answered = c.post(PREDICT, json={"records": [GOOD_RECORD]}).json()
            assert answered["model_version"] == 1, "the shadow answers nobody"
            eventually(lambda: any(
                p["route"] == "shadow" and p["version"] == version for p in
                c.get("/v1/usecases/failure/predictions").json()["predictions"]), 2.0)
            _move(c, version, "stop")
            eventually(lambda: _live(c) == {"production": 1}, 1.0)
            _move(c, version, "promote")
        else:  # the imported gate verdict failed: only a recorded exception promotes it
            refused = c.post(f"/v1/usecases/failure/versions/{version}/promote",
                             json={"reason": "try"})
            assert refused.status_code == 409
            _move(c, version, "promote", exception=True)
        moved_at = time.monotonic()
        eventually(lambda: _live(c) == {"production": version}, 1.0)
        assert time.monotonic() - moved_at < 1.0
        assert c.post(PREDICT, json={"records": [GOOD_RECORD]}).json()[
            "model_version"] == version
        assert c.get("/readyz").json()["models"] == {"failure": version}

        r = c.post("/v1/usecases/failure/rollback", json={"reason": "test: roll back"})
        assert r.status_code == 200, r.text
        moved_at = time.monotonic()
        eventually(lambda: _live(c) == {"production": 1}, 1.0)
        assert time.monotonic() - moved_at < 1.0
        assert c.post(PREDICT, json={"records": [GOOD_RECORD]}).json()["model_version"] == 1
        archived = c.post(f"/v1/usecases/failure/versions/{version}/decline",
                          json={"reason": "archived now"})
        assert archived.status_code == 409 and archived.json()["error"]["kind"] == "StateError"
        assert c.post(f"/v1/usecases/failure/versions/{version}/retire",
                      json={"reason": "x"}).status_code == 404


def test_a_move_made_elsewhere_reaches_the_server_within_a_second(
        copy_server: Server) -> None:
    """The CLI (another process) promotes; the hub's poll picks it up without a restart."""
    with copy_server.client() as c:
        live = _live(c)
        data = c.get("/v1/usecases/failure/versions/1/bundle").content
        up = c.post("/v1/usecases/failure/bundles", content=data,
                    headers={"content-type": "application/octet-stream"}).json()
        exception = ["--exception"] if up["state"] == "rejected" else []
        done = subprocess.run([PLANTA, "promote", "failure", str(up["version"]), "--reason",
                               "from the CLI", *exception], cwd=copy_server.root,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        moved_at = time.monotonic()
        eventually(lambda: _live(c) == {"production": up["version"]}, 1.0)
        assert time.monotonic() - moved_at < 1.0
        assert c.post("/v1/usecases/failure/rollback", json={"reason": "back"}).status_code \
            == 200
        assert _live(c) == live


# -- jobs --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batch_file(server: Server) -> Path:
    """30 rows of the held-back data, four of them broken in different ways."""
    frame = pd.read_csv(server.root / "new.csv").head(30)
    frame.loc[3, "Torque [Nm]"] = 900.0
    frame.loc[7, "Type"] = "X"
    frame.loc[11, "Air temperature [K]"] = -5.0
    frame.loc[15, "Tool wear [min]"] = None
    path = server.root / "batch.csv"
    frame.to_csv(path, index=False)
    return path


def _finished(c: httpx.Client, job: dict[str, Any], within: float = 60.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = c.get(f"/v1/jobs/{job['id']}").json()
        return doc if doc["status"] in ("done", "failed", "cancelled") else None

    doc = eventually(done, within, every=0.1)
    assert doc["status"] == "done", doc
    return doc


def test_file_jobs_match_planta_score(server: Server, batch_file: Path) -> None:
    expected_path = batch_file.with_name("cli-scored.csv")
    cli = subprocess.Popen([PLANTA, "score", "failure", batch_file.name, "-o",
                            expected_path.name], cwd=batch_file.parent,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    data = batch_file.read_bytes()
    with server.client() as c:
        multipart = c.post("/v1/usecases/failure/jobs",
                           files={"file": ("batch.csv", data, "text/csv")})
        raw = c.post("/v1/usecases/failure/jobs", content=data,
                     params={"filename": "batch.csv", "format": "csv"},
                     headers={"content-type": "text/csv"})
        assert multipart.status_code == 202 and raw.status_code == 202, (multipart.text,
                                                                         raw.text)
        assert multipart.json()["status"] == "queued"
        results = []
        for job, reader in ((multipart.json(), pd.read_parquet), (raw.json(), pd.read_csv)):
            doc = _finished(c, job)
            assert doc["summary"]["rows"] == 30 and doc["summary"]["rejected"] == 4
            assert doc["links"]["result"] == f"/v1/jobs/{job['id']}/result"
            r = c.get(doc["links"]["result"])
            assert r.status_code == 200
            results.append(reader(io.BytesIO(r.content)))
        listed = {j["id"] for j in c.get("/v1/jobs").json()["jobs"]}
        assert {multipart.json()["id"], raw.json()["id"]} <= listed
        cancel = c.delete(f"/v1/jobs/{raw.json()['id']}")
        assert cancel.status_code == 409  # done: nothing to cancel
        assert c.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    out, _ = cli.communicate(timeout=120)
    assert cli.returncode in (0, 3), out
    expected = pd.read_csv(expected_path)
    assert expected["status"].tolist().count("rejected") == 4
    for result in results:
        assert result["status"].tolist() == expected["status"].tolist()
        rejected = result["status"] == "rejected"
        assert rejected[[3, 7, 11, 15]].all()
        assert result.loc[rejected, "reason"].str.len().gt(0).all()
        assert result.loc[rejected, "reason"].tolist() == \
            expected.loc[rejected, "reason"].tolist()
        assert result.loc[~rejected, "probability"].to_numpy() == pytest.approx(
            expected.loc[~rejected, "probability"].to_numpy())


def test_records_job(server: Server) -> None:
    with server.client() as c:
        r = c.post("/v1/usecases/failure/jobs",
                   json={"records": [GOOD_RECORD, GOOD_RECORD | {"type": "X"}]})
        assert r.status_code == 202, r.text
        doc = _finished(c, r.json())
        result = c.get(doc["links"]["result"]).json()
    statuses = [row["status"] for row in result["results"]]
    assert statuses == ["ok", "rejected"]
    assert "X" in str(result["results"][1])

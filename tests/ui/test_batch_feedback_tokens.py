"""Batch scoring, ground truth and tokens in the web UI, against a real `planta serve`.

A file uploaded on the batch page becomes a job scored by the server's worker exactly like
`planta score` (same status column); a ground-truth file is counted in words and sending it
again changes nothing; an admin creates a token (its secret shown once) and revokes it, and a
viewer gets neither the page nor its link.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from html import unescape
from pathlib import Path

import httpx
import pandas as pd
import pytest
from servers import GOOD_RECORD, PLANTA, Server

from planta.server.guard import Guard, GuardConfig
from planta.services.demo import demo_data
from planta.services.workspace import Workspace
from planta.store.tokens import TokenStore

TARGET = "Machine failure"
ROWS = 200
# Rows (0-based) made unscorable: a torque the model never saw, an unknown machine type.
BAD_TORQUE, BAD_TYPE = (3, 50), (7,)
JOB_TIMEOUT_S = 30


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _only_local_refs(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    for ref in re.findall(r'(?:src|href|action)="([^"]*)"', html):
        assert ref.startswith(("/", "?", "#")) or ref == "data:,", ref


def _batch_frame() -> pd.DataFrame:
    frame = pd.read_csv(demo_data()).iloc[1000:1000 + ROWS].drop(columns=[TARGET])
    frame = frame.reset_index(drop=True)
    torque = next(c for c in frame.columns if c.startswith("Torque"))
    frame[torque] = frame[torque].astype(float)
    for i in BAD_TORQUE:
        frame.loc[i, torque] = 900.0
    frame["Type"] = frame["Type"].astype(object)
    for i in BAD_TYPE:
        frame.loc[i, "Type"] = "Q"
    return frame


def _wait_for_job(c: httpx.Client, location: str) -> str:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        page = c.get(location)
        assert page.status_code == 200, page.text
        status = re.search(r'data-status="(\w+)"', page.text)
        assert status is not None
        if status.group(1) not in ("queued", "running"):
            return page.text
        # Until it ends, the page reloads itself (no script needed).
        assert '<meta http-equiv="refresh" content="2">' in page.text
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)


def test_a_file_is_scored_as_a_job_like_planta_score(server: Server, tmp_path: Path) -> None:
    frame = _batch_frame()
    source = tmp_path / "march.csv"
    frame.to_csv(source, index=False)
    with server.client() as c:
        page = c.get("/ui/usecases/failure/batch")
        assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
        _only_local_refs(page.text)
        r = c.post("/ui/usecases/failure/batch", data={"format": "csv"},
                   files={"file": ("march.csv", source.read_bytes(), "text/csv")})
        assert r.status_code == 303, r.text
        location = r.headers["location"]
        assert re.fullmatch(r"/ui/jobs/\w{26}", location), location
        html = _wait_for_job(c, location)
        text = _text(html)
        assert "Done" in text and "http-equiv" not in html  # a finished job stops refreshing
        rejected = len(BAD_TORQUE) + len(BAD_TYPE)
        assert f"{ROWS} rows read: {ROWS - rejected} scored, {rejected} rejected." in text
        assert f"{len(BAD_TORQUE)} × a value above the highest the model learned from" in text
        assert "1 × a value the model does not know" in text
        _only_local_refs(html)
        link = re.search(r'<a href="([^"]+)" download id="download">', html)
        assert link is not None and link.group(1).endswith("/result")
        result = c.get(link.group(1))
        assert result.status_code == 200
        assert 'filename="scored-march.csv"' in result.headers["content-disposition"]
        # The job is listed on the batch page with its counts.
        listed = _text(c.get("/ui/usecases/failure/batch").text)
        assert "march.csv" in listed and f"{ROWS - rejected} scored, {rejected} rejected" in listed
    with httpx.Client(base_url=server.url, timeout=30) as es:  # a client of its own: the cookie
        assert "filas leídas" in es.get(f"{location}?lang=es").text
    scored = pd.read_csv(io.BytesIO(result.content))
    assert len(scored) == ROWS
    assert scored["status"].tolist().count("rejected") == rejected
    assert set(scored.index[scored["status"] == "rejected"]) == {*BAD_TORQUE, *BAD_TYPE}
    # Exactly what `planta score` writes for the same file.
    cli_out = tmp_path / "cli.csv"
    subprocess.run([PLANTA, "score", "failure", str(source), "--output", str(cli_out)],
                   cwd=server.root, capture_output=True, text=True, timeout=120, check=False)
    cli = pd.read_csv(cli_out)
    assert scored["status"].tolist() == cli["status"].tolist()
    assert scored["prediction"].fillna(-1).tolist() == cli["prediction"].fillna(-1).tolist()


def test_a_bad_upload_is_explained_and_queues_nothing(server: Server) -> None:
    with server.client() as c:
        before = len(c.get("/v1/jobs", params={"usecase": "failure"}).json()["jobs"])
        pdf = c.post("/ui/usecases/failure/batch", data={"format": "csv"},
                     files={"file": ("report.pdf", b"%PDF-1.4 ...", "application/pdf")})
        assert pdf.status_code == 422
        assert "planta scores CSV, Excel (.xlsx) and Parquet files only" in _text(pdf.text)
        assert "Traceback" not in pdf.text and 'type="file"' in pdf.text  # the form, again
        # A decompression bomb is refused at the door, as on the API.
        bomb = gzip.compress(b"0" * (201 * 2**20), compresslevel=1)
        r = c.post("/ui/usecases/failure/batch", data={"format": "csv"},
                   files={"file": ("big.csv.gz", bomb, "application/gzip")})
        assert r.status_code == 413 and "expands to more than" in _text(r.text)
        after = len(c.get("/v1/jobs", params={"usecase": "failure"}).json()["jobs"])
    assert after == before


def test_the_batch_and_feedback_paths_get_the_upload_limit() -> None:
    guard = Guard(lambda *a: None,  # type: ignore[arg-type, return-value]
                  config=GuardConfig(require_auth=False, allowed_hosts=None,
                                     max_body_bytes=10, max_upload_bytes=1000),
                  metrics=None, tokens=None)  # type: ignore[arg-type]
    for path, limit in (("/ui/usecases/failure/batch", 1000),
                        ("/ui/usecases/failure/feedback", 1000),
                        ("/ui/usecases/failure/score", 10), ("/ui/tokens", 10),
                        ("/ui/usecases/a/b/batch", 10)):
        assert guard._limit({"path": path, "headers": []}) == limit, path


def _feedback_csv(rows: Sequence[tuple[str, object]]) -> bytes:
    return pd.DataFrame(rows, columns=["prediction_id", TARGET]).to_csv(index=False).encode()


def test_ground_truth_upload_is_counted_in_words(server: Server) -> None:
    with server.client() as c:
        r = c.post("/v1/usecases/failure/predict",
                   json={"records": [GOOD_RECORD, GOOD_RECORD | {"torque_nm": 55.0},
                                     GOOD_RECORD | {"tool_wear_min": 200}]})
        assert r.status_code == 200, r.text
        ids = [p["prediction_id"] for p in r.json()["predictions"]]
        page = c.get("/ui/usecases/failure/feedback")
        assert page.status_code == 200
        _only_local_refs(page.text)
        rows = [(ids[0], 0), (ids[1], 1), (ids[2], 0), ("01J00000000000000000000000", 1),
                ("nope", 0)]

        def send(data: bytes) -> str:
            r = c.post("/ui/usecases/failure/feedback",
                       files={"file": ("labels.csv", data, "text/csv")})
            assert r.status_code == 200, r.text
            return _text(r.text)

        first = send(_feedback_csv(rows))
        assert "Added 3, already known 0, corrected 0." in first
        assert "labels.csv: 5 rows, true values from the column “Machine failure”." in first
        assert "Not found: 2 rows were not recorded." in first
        assert "row 4: no prediction 01J00000000000000000000000 in the log" in first
        assert "row 5: 'nope' is not a prediction id" in first
        again = send(_feedback_csv(rows))
        assert "Added 0, already known 3, corrected 0." in again
        fixed = send(_feedback_csv([(ids[0], 1)]))
        assert "Added 0, already known 0, corrected 1." in fixed
        assert "each correction is kept in the audit trail" in fixed
        no_column = c.post("/ui/usecases/failure/feedback",
                           files={"file": ("labels.csv", b"prediction_id,x\n1,2\n", "text/csv")})
        assert no_column.status_code == 400
        assert "no column “Machine failure”, label or value" in _text(no_column.text)
    with httpx.Client(base_url=server.url, timeout=30) as es:
        page = es.post("/ui/usecases/failure/feedback?lang=es",
                       files={"file": ("labels.csv", _feedback_csv(rows[:3]), "text/csv")})
        assert "Añadidos 0, ya conocidos 2, corregidos 1." in _text(page.text)
    ws = Workspace.open(server.root)
    try:
        corrections = [e for e in ws.audit.events(limit=None) if e.action == "feedback_correct"]
    finally:
        ws.close()
    assert [e.payload["updated"] for e in corrections] == [1, 1]
    assert corrections[0].payload["source"] == "file:labels.csv"


def _token(root: Path, role: str, name: str) -> str:
    ws = Workspace.open(root)  # as `planta token create` does, without a process per token
    try:
        return TokenStore(ws.store, ws.audit).create(name, role, actor="setup")[1]
    finally:
        ws.close()


def _bearer(srv: Server, secret: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=30,
                        headers={"authorization": f"Bearer {secret}"})


def test_admin_creates_and_revokes_tokens_a_viewer_cannot(
        project_copy: Path, start_server: Callable[..., Server]) -> None:
    admin = _token(project_copy, "admin", "ada")
    viewer = _token(project_copy, "viewer", "vera")
    srv = start_server(project_copy, "--require-auth")
    with _bearer(srv, viewer) as c:
        assert 'href="/ui/tokens"' not in c.get("/ui").text  # not in the viewer's navigation
        refused = c.get("/ui/tokens")
        assert refused.status_code == 403 and "needs admin" in _text(refused.text)
        assert c.post("/ui/tokens", data={"name": "x", "role": "admin"}).status_code == 403
    with _bearer(srv, admin) as c:
        assert 'href="/ui/tokens"' in c.get("/ui").text
        page = c.get("/ui/tokens")
        assert page.status_code == 200 and "vera" in page.text and "ada" in page.text
        _only_local_refs(page.text)
        r = c.post("/ui/tokens", data={"name": "mes-line-3", "role": "operator"})
        assert r.status_code == 200, r.text
        secret = re.search(r'value="(planta_[A-Za-z0-9_-]{43})"', r.text)
        assert secret is not None
        assert "it will not be shown again" in r.text
        listed = c.get("/ui/tokens").text
        assert secret.group(1) not in listed and "mes-line-3" in listed
        assert secret.group(1)[:15] + "…" in listed  # people tell tokens apart by the start
        clash = c.post("/ui/tokens", data={"name": "mes-line-3", "role": "viewer"})
        assert clash.status_code == 400 and "already named" in _text(clash.text)
        with _bearer(srv, secret.group(1)) as mes:
            assert mes.get("/v1/usecases").status_code == 200
        row = re.search(r'<td>mes-line-3</td>.*?action="/ui/tokens/(\w+)/revoke"', listed, re.S)
        assert row is not None
        unconfirmed = c.post(f"/ui/tokens/{row.group(1)}/revoke", data={})
        assert unconfirmed.status_code == 400 and "Tick the box" in _text(unconfirmed.text)
        with _bearer(srv, secret.group(1)) as mes:
            assert mes.get("/v1/usecases").status_code == 200
        done = c.post(f"/ui/tokens/{row.group(1)}/revoke", data={"confirm": "yes"})
        assert done.status_code == 303
        shown = _text(c.get(done.headers["location"]).text)
        assert "The token of mes-line-3 is revoked" in shown and "revoked" in shown
        assert "Crear token" in c.get("/ui/tokens?lang=es").text
    deadline = time.monotonic() + 6
    with _bearer(srv, secret.group(1)) as mes:
        while mes.get("/v1/usecases").status_code != 401:
            assert time.monotonic() < deadline, "the revoked token still works"
            time.sleep(0.2)
    ws = Workspace.open(project_copy)
    try:
        events = [e for e in ws.audit.events(limit=None)
                  if e.action in ("token_create", "token_revoke")]
    finally:
        ws.close()
    mine = [(e.action, e.actor, e.payload.get("name"), e.payload.get("role")) for e in events
            if e.payload.get("name") == "mes-line-3"]
    assert mine == [("token_create", "ada", "mes-line-3", "operator"),
                    ("token_revoke", "ada", "mes-line-3", "operator")]
    assert all(secret.group(1) not in json.dumps(e.payload) for e in events)


@pytest.mark.parametrize("path", ["/ui/usecases/failure/batch", "/ui/usecases/failure/feedback",
                                  "/ui/tokens"])
def test_new_pages_in_spanish(server: Server, path: str) -> None:
    with server.client() as c:
        r = c.get(path, params={"lang": "es"})
    assert r.status_code == 200 and '<html lang="es">' in r.text
    assert any(word in r.text for word in ("Puntuar un archivo", "Lo que pasó de verdad",
                                           "Crear token"))
    _only_local_refs(r.text)


def test_a_file_scored_from_the_browser(server: Server, tmp_path: Path) -> None:
    """Chromium picks the file, follows the job page as it refreshes, and sees the link."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    source = tmp_path / "april.csv"
    _batch_frame().iloc[:50].to_csv(source, index=False)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox"])
        page = browser.new_page()
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(f"{server.url}/ui/usecases/failure/score")
        page.get_by_role("link", name="Score a whole file").click()
        page.set_input_files("#batch-file", str(source))
        page.get_by_role("button", name="Upload and score").click()
        page.wait_for_url(re.compile(r"/ui/jobs/\w+$"))
        page.locator('#job[data-status="done"]').wait_for(timeout=JOB_TIMEOUT_S * 1000)
        bad = len([i for i in (*BAD_TORQUE, *BAD_TYPE) if i < 50])
        assert f"50 rows read: {50 - bad} scored, {bad} rejected." in \
            page.locator("#counts").inner_text()
        assert page.locator("#download").get_attribute("href", timeout=1000)
        assert failed == []
        browser.close()

"""One test per attack class of docs/SECURITY.md, each against a real `planta serve`.

The names match the table "Attack classes" in docs/SECURITY.md. Servers listen on 127.0.0.1
only. Where a defence is "this never happens" (no pickle is loaded, no URL is fetched, no shell
runs) the test plants a tripwire the attack would set off (a marker file a pickle would
create, a listener a fetch would reach) and checks it was not set off, besides checking the
refusal itself. The JSON classes are tested on /feedback, /jobs and the V2 infer route;
test_bad_input.py tables them for the predict route.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import os
import pickle
import re
import select
import shutil
import socket
import stat
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import GOOD_RECORD, PLANTA, Server, launch

from planta.server.body import MAX_DEPTH
from planta.server.runtime import ServeOptions
from planta_edge.bundle import SEAL_BYTES, read_bundle, seal, sha256_bytes

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "src", REPO / "edge" / "src"]
FEEDBACK = "/v1/usecases/failure/feedback"
JOBS = "/v1/usecases/failure/jobs"
INFER = "/v2/models/failure/infer"
BUNDLES = "/v1/usecases/failure/bundles"
MAX_BODY = ServeOptions().max_body_bytes
MAX_UPLOAD = ServeOptions().max_upload_bytes
OCTETS = {"content-type": "application/octet-stream"}


# -- helpers ----------------------------------------------------------------------------------

def wait_for_job(c: httpx.Client, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
        if doc["status"] in ("done", "failed", "cancelled"):
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.2)


def bundle_bytes(srv: Server) -> bytes:
    with srv.client() as c:
        r = c.get("/v1/usecases/failure/versions/1/bundle")
    assert r.status_code == 200
    return r.content


def rebuild(original: bytes, change: dict[str, bytes | None], *, names: dict[str, str] | None
            = None, sealed: bool = True, compression: int = zipfile.ZIP_STORED) -> bytes:
    """The bundle ``original`` with members replaced, added or (None) removed, its manifest
    rewritten to match and the whole sealed again: what someone who knows the format makes."""
    with zipfile.ZipFile(io.BytesIO(original)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    for name, data in change.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    manifest = json.loads(members.pop("manifest.json"))
    manifest["members"] = {n: {"sha256": sha256_bytes(b), "size": len(b)}
                           for n, b in members.items()}
    members = {"manifest.json": json.dumps(manifest).encode(), **members}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as out:
        for name, data in members.items():
            out.writestr((names or {}).get(name, name), data)
        out.comment = b"0" * SEAL_BYTES
    return seal(buf.getvalue()) if sealed else buf.getvalue()


def peak_rss_mb(srv: Server) -> float | None:
    """The server process's peak resident memory (Linux), in MB."""
    try:
        text = Path(f"/proc/{srv.process.pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def raw_request(srv: Server, head: str, body: bytes = b"", wait: float = 10) -> tuple[int, bytes]:
    """Send ``head`` (request line and headers) and ``body`` on a plain socket, without
    closing it, and read the answer: the server must answer without the rest of the body."""
    port = int(srv.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            top, sep, rest = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", top)
            if sep and len(rest) >= (int(length[1]) if length else 0):
                break
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def error_rule(r: httpx.Response) -> str:
    doc = r.json()["error"]
    assert isinstance(doc, dict), doc
    rule: str = doc["violations"][0]["rule"]
    return rule


def create_token(root: Path, role: str, name: str) -> str:
    result = subprocess.run([PLANTA, "token", "create", "--role", role, "--name", name,
                             "--json"], cwd=root, capture_output=True, text=True, timeout=120,
                            env=os.environ | {"PLANTA_USER": "it-admin"})
    assert result.returncode == 0, result.stdout + result.stderr
    secret: str = json.loads(result.stdout)["secret"]
    return secret


@pytest.fixture(scope="module")
def auth_server(served_project: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[Server, dict[str, str]]]:
    root = tmp_path_factory.mktemp("sec-auth") / "plant"
    shutil.copytree(served_project, root)
    tokens = {role: create_token(root, role, f"{role}-1") for role in ("viewer", "operator")}
    srv = launch(root, "--require-auth")
    yield srv, tokens
    srv.stop()


# -- path traversal and local file reads ------------------------------------------------------

def test_path_traversal(server: Server) -> None:
    """Names that arrive as data (an uploaded file's name, a bundle member's name) never
    become paths: the upload is stored by digest, the result is named from a clean label, and
    a bundle with a member outside the archive is refused. (test_bad_input.py sends
    traversal in URLs.)"""
    csv = (server.root / "new.csv").read_bytes()
    evil = [("../../../../../../tmp/planta-traversal-raw.csv", "raw"),
            ("..\\..\\..\\..\\tmp\\planta-traversal-form.csv", "form"),
            ("/etc/cron.d/planta-traversal.csv", "raw")]
    with server.client() as c:
        for name, how in evil:
            if how == "raw":
                r = c.post(JOBS, content=csv, params={"filename": name, "format": "csv"},
                           headers={"content-type": "text/csv"})
            else:
                r = c.post(JOBS, files={"file": (name, csv, "text/csv")})
            assert r.status_code == 202, r.text
            job = r.json()
            assert "/" not in job["input_name"] and "\\" not in job["input_name"]
            assert job["input_name"].startswith("planta-traversal")
            done = wait_for_job(c, job["id"])
            assert done["status"] == "done", done
            result = c.get(done["links"]["result"])
            assert result.status_code == 200
            disposition = result.headers["content-disposition"]
            assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._-]+"', disposition)
            assert ".." not in disposition
        # A job id is an id, never a file name.
        for job_id in ("..", "...%2f..%2fetc%2fpasswd", "01ARZ3NDEKTSV4RRFFQ69G5FAV/../..",
                       "%2e%2e%2f%2e%2e%2fplanta.db"):
            r = c.get(f"/v1/jobs/{job_id}/result")
            assert r.status_code in (400, 404, 422) and b"SQLite" not in r.content, job_id
    for name in ("/tmp/planta-traversal-raw.csv", "/tmp/planta-traversal-form.csv",
                 "/etc/cron.d/planta-traversal.csv", "/tmp/scored-planta-traversal-raw.csv"):
        assert not Path(name).exists(), name
    # A bundle whose member would land outside the archive: refused before anything is read.
    original = bundle_bytes(server)
    for bad in ("../../escaped.json", "/tmp/escaped.json", "model/../../escaped.json",
                "C:\\escaped.json"):
        data = rebuild(original, {"lineage.json": b"{}"}, names={"lineage.json": bad})
        with server.client() as c:
            r = c.post(BUNDLES, content=data, headers=OCTETS)
        assert r.status_code == 422, (bad, r.text)
        assert "unsafe member name" in r.json()["error"]["message"]
    assert not list(server.root.parent.rglob("escaped.json"))
    assert not Path("/tmp/escaped.json").exists()


# -- code execution when loading a model file -------------------------------------------------

class _Tripwire:
    """Unpickling this creates ``marker``: proof that something unpickled the upload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_model_file_runs_no_code(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Tripwire(marker))
    original = bundle_bytes(server)
    # The rebuilding itself is sound: unchanged, it makes a bundle that loads.
    from planta.services.predict import Scorer

    Scorer.from_bundle(read_bundle(rebuild(original, {})))
    cases = {
        "bare pickle": payload,
        "zip with a pickle, not sealed": rebuild(original, {"model/model.pkl": payload},
                                                 sealed=False),
        # Every model file model.json names (whatever the search picked) becomes the pickle.
        "sealed bundle, pickle as its model": rebuild(original, dict.fromkeys(
            (m["file"] for m in json.loads(zipfile.ZipFile(io.BytesIO(original)).read(
                "model/model.json"))["members"]), payload)),
        "sealed bundle with an extra pickle member": rebuild(original,
                                                             {"model/model.pkl": payload}),
        "sealed bundle, model.json points at a pickle": rebuild(original, {
            "model/model.pkl": payload, "model/model.json": json.dumps(
                {**json.loads(zipfile.ZipFile(io.BytesIO(original)).read("model/model.json")),
                 "members": [{"file": "model/model.pkl", "kind": "sklearn"}]}).encode()}),
        "a zip of a pickle": _zip({"model.pkl": payload}),
    }
    with server.client() as c:
        before = c.get("/v1/usecases/failure/versions").json()["versions"]
        for label, data in cases.items():
            r = c.post(BUNDLES, content=data, headers=OCTETS)
            assert r.status_code == 422, (label, r.text)
            assert r.json()["error"]["kind"] == "IntegrityError", label
        # A pickle sent as a data file: refused by its name, or stored and never unpickled.
        r = c.post(JOBS, content=payload, params={"filename": "model.pkl"}, headers=OCTETS)
        assert r.status_code == 422, r.text
        r = c.post(JOBS, content=payload, params={"filename": "batch.parquet"},
                   headers=OCTETS)
        assert r.status_code == 202, r.text
        assert wait_for_job(c, r.json()["id"])["status"] == "failed"
        assert c.get("/v1/usecases/failure/versions").json()["versions"] == before
    time.sleep(0.5)
    assert not marker.exists(), "something unpickled an upload"
    # And nothing in planta could: no module imports a deserializer that runs code.
    banned = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve",
              "marshal", "jsonpickle"}
    found = [(str(path.relative_to(REPO)), name) for path, name in _imports(SOURCES)
             if name.split(".")[0] in banned]
    assert not found


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


# -- unauthenticated job submission -----------------------------------------------------------

def test_unauthenticated_job_submission(auth_server: tuple[Server, dict[str, str]]) -> None:
    srv, tokens = auth_server
    csv = (srv.root / "new.csv").read_bytes()
    attempts: list[dict[str, Any]] = [
        {"json": {"records": [GOOD_RECORD]}},
        {"files": {"file": ("batch.csv", csv, "text/csv")}},
        {"content": csv, "params": {"filename": "batch.csv"},
         "headers": {"content-type": "text/csv"}},
    ]
    with srv.client() as c:
        for kwargs in attempts:
            r = c.post(JOBS, **kwargs)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
            headers = {**kwargs.pop("headers", {}), "Authorization": "Bearer planta_forged"}
            r = c.post(JOBS, headers=headers, **kwargs)
            assert r.status_code == 401, r.text
            headers["Authorization"] = f"Bearer {tokens['viewer']}"
            r = c.post(JOBS, headers=headers, **kwargs)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["kind"] == "AccessError"
    # The token is checked before the body is read: 100 MB announced, 10 bytes sent.
    status, _ = raw_request(srv, f"POST {JOBS} HTTP/1.1\nHost: 127.0.0.1\n"
                                 f"Content-Type: text/csv\nContent-Length: {100 * 2**20}\n",
                            b"type,rnf\n")
    assert status == 401
    with srv.client(headers={"Authorization": f"Bearer {tokens['operator']}"}) as c:
        assert c.get("/v1/jobs").json()["jobs"] == []  # nothing above was queued
        r = c.post(JOBS, json={"records": [GOOD_RECORD]})
        assert r.status_code == 202 and r.json()["caller"] == "operator-1"


# -- SSRF -------------------------------------------------------------------------------------

URL_NAMES = {"url", "uri", "href", "callback", "callback_url", "webhook", "webhook_url",
             "endpoint", "redirect", "redirect_uri", "return_url", "source", "source_url",
             "link", "fetch", "download_url", "location"}


def test_ssrf(server: Server) -> None:
    with server.client() as c:
        doc = c.get("/openapi.json").json()
    names = _request_names(doc)
    assert names, "the scan found no parameter at all"
    assert not {n.lower() for n in names} & URL_NAMES, sorted(names)
    assert '"format": "uri"' not in json.dumps(doc) and '"format": "url"' not in json.dumps(doc)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        target = f"http://127.0.0.1:{listener.getsockname()[1]}/steal"
        with server.client(headers={"Referer": target, "X-Forwarded-Host": target[7:]}) as c:
            r = c.post(JOBS, json={"records": [GOOD_RECORD], "options": {"url": target}})
            assert r.status_code == 422 and error_rule(r) == "bad_option", r.text
            r = c.post(JOBS, json={"records": [GOOD_RECORD], "options": {"callback": target}})
            assert r.status_code == 422, r.text
            # URLs as data are just data: the job runs, nothing is fetched.
            r = c.post(JOBS, json={"records": [GOOD_RECORD | {"url": target},
                                               GOOD_RECORD | {"type": target}]})
            assert r.status_code == 202, r.text
            assert wait_for_job(c, r.json()["id"])["status"] == "done"
            r = c.post(JOBS, content=b"type,url\nL," + target.encode() + b"\n",
                       params={"filename": target + ".csv"},
                       headers={"content-type": "text/csv"})
            assert r.status_code in (202, 422), r.text
            if r.status_code == 202:
                wait_for_job(c, r.json()["id"])
            r = c.post("/v1/usecases/failure/predict",
                       json={"records": [GOOD_RECORD | {"url": target}]})
            assert r.status_code == 422, r.text
            pid = c.post("/v1/usecases/failure/predict",
                         json={"records": [GOOD_RECORD]}).json()["predictions"][0]
            r = c.post(FEEDBACK, json={"feedback": [{"prediction_id": pid["prediction_id"],
                                                     "value": 0, "callback": target}]})
            assert r.status_code == 200, r.text
            r = c.post(INFER, json={"parameters": {"url": target, "callback": target},
                                    "inputs": _v2_inputs(), "outputs": [{"name": target}]})
            assert r.status_code == 400, r.text
            r = c.post(BUNDLES, content=target.encode(), headers=OCTETS)
            assert r.status_code == 422, r.text
        time.sleep(1.0)
        readable, _, _ = select.select([listener], [], [], 0)
        assert not readable, "planta connected to a URL it was sent"


def _request_names(doc: dict[str, Any]) -> set[str]:
    """Every parameter name and request-body property name in the OpenAPI document."""
    schemas = doc.get("components", {}).get("schemas", {})
    names: set[str] = set()
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                walk(schemas.get(ref.rsplit("/", 1)[-1]))
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    names.update(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for item in doc["paths"].values():
        for op in item.values():
            if isinstance(op, dict):
                names.update(p["name"] for p in op.get("parameters", []))
                walk(op.get("requestBody"))
    return names


def _v2_inputs(n: int = 1) -> list[dict[str, Any]]:
    return [{"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP64", "shape": [n],
             "data": [v] * n} for k, v in GOOD_RECORD.items()]


# -- DNS rebinding and cross-site requests ----------------------------------------------------

def test_dns_rebinding(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    with server.client() as c:
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}",
                     f"localhost.evil.example:{port}", "10.0.0.1", "0.0.0.0"):  # noqa: S104
            for method, path in (("GET", "/v1/usecases"), ("GET", "/healthz"),
                                 ("POST", "/v1/usecases/failure/predict")):
                r = c.request(method, path, headers={"Host": host},
                              json={"records": [GOOD_RECORD]})
                assert r.status_code == 421, (host, path, r.status_code)
                assert error_rule(r) == "host_not_allowed"
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}",
                     "127.0.0.1"):
            assert c.get("/v1/usecases", headers={"Host": host}).status_code == 200, host
    # No Host at all (HTTP/1.0): refused too.
    status, _ = raw_request(server, "GET /v1/usecases HTTP/1.0\n")
    assert status == 400


def test_cross_site_request(server: Server) -> None:
    own = [server.url, server.url.replace("127.0.0.1", "localhost")]
    with server.client() as c:
        jobs_before = len(c.get("/v1/jobs").json()["jobs"])
        for origin in ("http://evil.example", "https://evil.example", "null",
                       "http://127.0.0.1.evil.example", "file://"):
            for path, body in (("/v1/usecases/failure/predict", {"records": [GOOD_RECORD]}),
                               (JOBS, {"records": [GOOD_RECORD]}),
                               ("/v1/usecases/failure/rollback", {"reason": "csrf"}),
                               ("/v1/usecases/failure/versions/2/promote",
                                {"reason": "csrf", "exception": True})):
                r = c.post(path, json=body, headers={"Origin": origin})
                assert r.status_code == 403, (origin, path, r.text)
                assert error_rule(r) == "cross_site_request"
            # Reading still works, and grants the other site nothing.
            r = c.get("/v1/usecases", headers={"Origin": origin})
            assert r.status_code == 200
            assert "access-control-allow-origin" not in r.headers
            r = c.options("/v1/usecases/failure/predict", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST"})
            assert "access-control-allow-origin" not in r.headers
        assert len(c.get("/v1/jobs").json()["jobs"]) == jobs_before
        assert c.get("/readyz").json()["models"] == {"failure": 1}
        for origin in own:
            r = c.post("/v1/usecases/failure/predict", json={"records": [GOOD_RECORD]},
                       headers={"Origin": origin})
            assert r.status_code == 200, (origin, r.text)


# -- world-readable temporary files -----------------------------------------------------------

def test_world_readable_temp_files(project_copy: Path, tmp_path: Path) -> None:
    """With a umask that would make every new file world-readable (000), everything planta
    writes while serving (the store, its WAL, uploads, job inputs and results) is private,
    and no temporary file is left behind."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    old = os.umask(0)
    try:
        srv = launch(project_copy, env={"TMPDIR": str(private_tmp)})
    finally:
        os.umask(old)
    try:
        small = (project_copy / "new.csv").read_bytes()
        header, rows = small.decode().split("\n", 1)
        upload = (header + "\n" + rows * 70).encode()  # over 1 MB: the form spools it to disk
        with srv.client() as c:
            ids = [c.post(JOBS, files={"file": ("batch.csv", upload, "text/csv")}).json()["id"],
                   c.post(JOBS, content=gzip.compress(small),
                          params={"filename": "batch.csv.gz", "format": "xlsx"},
                          headers=OCTETS).json()["id"],
                   c.post(JOBS, json={"records": [GOOD_RECORD] * 3}).json()["id"]]
            for job_id in ids:
                assert wait_for_job(c, job_id, timeout=180)["status"] == "done"
            assert c.post("/v1/usecases/failure/predict",
                          json={"records": [GOOD_RECORD]}).status_code == 200
    finally:
        srv.stop()
    state = project_copy / ".planta"
    loose = [f"{path.relative_to(project_copy)} {stat.filemode(path.stat().st_mode)}"
             for path in [state, *state.rglob("*")]
             if not path.is_symlink() and path.stat().st_mode & 0o077]
    assert not loose, loose
    assert (state / "planta.db").is_file()
    left = [str(p) for p in private_tmp.rglob("*")]
    assert not left, left


# -- shell commands built from input ----------------------------------------------------------

SHELL_CALLS = {"os.system", "os.popen", "os.spawnl", "os.spawnlp", "os.spawnv", "os.spawnvp",
               "os.execv", "os.execvp", "os.execl", "os.execlp", "os.execve", "os.posix_spawn",
               "os.posix_spawnp", "pty.spawn", "asyncio.create_subprocess_shell",
               "asyncio.create_subprocess_exec", "commands.getoutput"}
# The one place planta starts a program: `planta contract edit` opens the user's own editor.
# The editor for `planta contract edit`, and `planta demo --edge`, which starts its own broker,
# hub and device processes on loopback.
# The editor (cli/project.py), the edge demo's device processes, and the device's signature
# check in a child (a fixed script on this interpreter, the bundle's bytes as hex on stdin).
SUBPROCESS_ALLOWED = {"src/planta/cli/project.py", "src/planta/services/edge_demo.py",
                      "edge/src/planta_edge/verify.py"}


def test_shell_injection() -> None:
    """Static: no shell anywhere; subprocess only where allowed, and never reachable from
    the server; no ``shell=True``; the one command line is the editor and a local path."""
    offences: list[str] = []
    for path in _py_files(SOURCES):
        rel = str(path.relative_to(REPO))
        tree = ast.parse(path.read_text(), filename=rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name in SHELL_CALLS:
                    offences.append(f"{rel}:{node.lineno} {name}")
                for kw in node.keywords:
                    if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                                  and kw.value.value is False):
                        offences.append(f"{rel}:{node.lineno} shell=")
                if name in ("eval", "exec", "compile", "__import__"):
                    offences.append(f"{rel}:{node.lineno} {name}()")
    for path, module in _imports(SOURCES):
        rel = str(path.relative_to(REPO))
        if module.split(".")[0] in ("subprocess", "pty", "commands") and \
                rel not in SUBPROCESS_ALLOWED:
            offences.append(f"{rel} imports {module}")
    assert not offences, offences
    # The allowed call: an argument list of $VISUAL/$EDITOR and a path, no shell.
    editor = (REPO / "src/planta/cli/project.py").read_text()
    calls = re.findall(r"subprocess\.\w+\((.*)\)", editor)
    assert calls and all(c.startswith("[*shlex.split(editor), str(path)]") for c in calls), calls
    # No server or service module imports the command-line package that holds it.
    for path, module in _imports([REPO / "src/planta/server", REPO / "src/planta/services",
                                  REPO / "src/planta/store", REPO / "src/planta/core"]):
        assert not module.startswith("planta.cli"), (path, module)
    # ...and the server never imports the demo that starts processes.
    for path, module in _imports([REPO / "src/planta/server", REPO / "src/planta/ui"]):
        assert module != "planta.services.edge_demo", (path, module)


def _py_files(roots: list[Path]) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py"))


def _imports(roots: list[Path]) -> Iterator[tuple[Path, str]]:
    for path in _py_files(roots):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield path, node.module


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


# -- decompression bombs ----------------------------------------------------------------------

def _gzip_bomb(expands_to: int) -> bytes:
    """A gzip file of `expands_to` bytes of zeros (several members, as `cat a.gz b.gz`)."""
    block = 64 * 2**20
    member = gzip.compress(b"0" * block, compresslevel=1)
    return gzip.compress(b"type,rnf\n") + member * (expands_to // block + 1)


def _zip_declaring(size: int, name: str = "xl/worksheets/sheet1.xml") -> bytes:
    """A zip whose one member says it expands to `size` bytes (the central directory's
    uncompressed size, patched); the data itself is tiny."""
    data = bytearray(_zip({name: b"<x/>"}))
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = size.to_bytes(4, "little")
    return bytes(data)


def test_decompression_bomb(server: Server) -> None:
    gz = _gzip_bomb(2**30)  # 1 GiB of zeros in ~5 MB
    assert len(gz) < MAX_UPLOAD // 20
    start_rss = peak_rss_mb(server)
    with server.client() as c:
        jobs_before = len(c.get("/v1/jobs").json()["jobs"])
        uploads: list[dict[str, Any]] = [
            {"content": gz, "params": {"filename": "bomb.csv.gz"}, "headers": OCTETS},
            {"files": {"file": ("bomb.csv.gz", gz, "application/gzip")}},
            {"content": gz, "params": {"filename": "bomb.csv"}, "headers": {
                "content-type": "text/csv"}},
            {"content": _zip_declaring(0xFFFFFFF0), "params": {"filename": "bomb.xlsx"},
             "headers": OCTETS},
        ]
        for kwargs in uploads:
            started = time.monotonic()
            r = c.post(JOBS, **kwargs)
            assert r.status_code == 413 and error_rule(r) == "expands_too_much", r.text
            assert time.monotonic() - started < 15
        assert len(c.get("/v1/jobs").json()["jobs"]) == jobs_before  # nothing was queued
        # Bundles: a member that declares 4 GB, and one that declares 100 bytes but inflates
        # to 100 MB (the reader stops at the declared size and the CRC fails).
        original = bundle_bytes(server)
        huge = bytearray(rebuild(original, {}))
        central = huge.rfind(b"PK\x01\x02", 0, len(huge) - 100)
        huge[central + 24:central + 28] = (0xFFFFFFF0).to_bytes(4, "little")
        liar = _lying_member(original, 100 * 2**20)
        for data in (seal(bytes(huge)), liar):
            started = time.monotonic()
            r = c.post(BUNDLES, content=data, headers=OCTETS)
            assert r.status_code == 422, r.text
            assert time.monotonic() - started < 15
    end_rss = peak_rss_mb(server)
    if start_rss is not None and end_rss is not None:
        assert end_rss - start_rss < 300, (start_rss, end_rss)  # never near 1 GiB


def _lying_member(original: bytes, real_size: int) -> bytes:
    """A sealed bundle with one extra member whose deflate stream inflates to ``real_size``
    bytes while its headers (and the manifest) say 100."""
    data = bytearray(rebuild(original, {"padding.json": b" " * real_size},
                             compression=zipfile.ZIP_DEFLATED))
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        while pos != -1:
            name_at = pos + (30 if sig == b"PK\x03\x04" else 46)
            if bytes(data[name_at:name_at + 12]) == b"padding.json":
                data[pos + offset:pos + offset + 4] = (100).to_bytes(4, "little")
            pos = data.find(sig, pos + 4)
    return seal(bytes(data))


# -- JSON: deep, huge, big integers, NaN/Infinity, lone surrogates ---------------------------

def _bodies(value: str) -> dict[str, bytes]:
    """A body for each JSON route with ``value`` (JSON text) where a value goes."""
    v2 = json.dumps({"inputs": _v2_inputs()}).replace('"L"', value, 1)
    return {FEEDBACK: ('{"feedback": [{"prediction_id": "01J0000000000000000000000Z", '
                       f'"value": {value}}}]}}').encode(),
            JOBS: f'{{"records": [{{"type": "L", "torque_nm": {value}}}]}}'.encode(),
            INFER: v2.encode()}


def _assert_malformed(server: Server, bodies: dict[str, bytes], says: str = "") -> None:
    """Each body is a 400 whose message matches the regular expression ``says``."""
    with server.client() as c:
        for path, body in bodies.items():
            r = c.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400, (path, r.status_code, r.text[:300])
            if path.startswith("/v2"):
                message = r.json()["error"]
            else:
                assert error_rule(r) == "malformed_json", r.text
                message = r.json()["error"]["message"]
            assert re.search(says, message), (says, message)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 1020, 5000])
def test_json_too_deep(server: Server, depth: int) -> None:
    """Too deep for orjson (over 1,024) and, the dangerous range, deep enough for Python's
    recursion limit but not for orjson (900-1,023): both a 400."""
    _assert_malformed(server, _bodies("[" * depth + "1" + "]" * depth), "nested|depth")
    ok = _bodies("[" * 10 + "1" + "]" * 10)
    with server.client() as c:
        for path, body in ok.items():  # nested but shallow: refused by the route, not JSON
            r = c.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code < 500, r.text


@pytest.mark.parametrize("path", [FEEDBACK, JOBS, INFER])
def test_json_too_large(server: Server, path: str) -> None:
    limit = MAX_BODY if path == INFER else MAX_UPLOAD
    started = time.monotonic()
    status, answer = raw_request(server, f"POST {path} HTTP/1.1\nHost: 127.0.0.1\n"
                                         f"Content-Type: application/json\n"
                                         f"Content-Length: {limit + 1}\n", b'{"records": [')
    assert status == 413, answer[:300]
    assert time.monotonic() - started < 5  # answered without waiting for the body
    assert b"body_too_large" in answer or b"over the limit" in answer


def test_json_too_large_chunked(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": ['
        for _ in range(MAX_BODY // 2**20 + 2):
            yield b" " * 2**20

    with server.client() as c:
        r = c.post(INFER, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]


@pytest.mark.parametrize(("number", "says"), [
    ("18446744073709551616", "64 bits"), ("-9223372036854775809", "64 bits"),
    ("123456789012345678901234567890", "64 bits"),
    ("1" + "0" * 400, ""), ("-" + "9" * 5000, "")])  # beyond a float too
def test_json_big_integers(server: Server, number: str, says: str) -> None:
    _assert_malformed(server, _bodies(number), says)


def test_json_big_integers_within_64_bits_pass_parsing(server: Server) -> None:
    with server.client() as c:
        for number in ("18446744073709551615", "-9223372036854775808"):
            for path, body in _bodies(number).items():
                r = c.post(path, content=body, headers={"content-type": "application/json"})
                assert r.status_code < 500, r.text
                assert "malformed_json" not in r.text and "64 bits" not in r.text, r.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999",
                                     "nan", "inf"])
def test_json_nan_infinity(server: Server, literal: str) -> None:
    _assert_malformed(server, _bodies(literal))


@pytest.mark.parametrize("text", [b'"\\ud800"', b'"\\udfff"', b'"a\\ud83d"',
                                  b'"\xed\xa0\x80"', b'"\xff\xfe"', b'"\xc0\xaf"'],
                         ids=["lone_high", "lone_low", "high_at_end", "cesu8_surrogate",
                              "invalid_utf8", "overlong_utf8"])
def test_json_lone_surrogates(server: Server, text: bytes) -> None:
    bodies = {path: body.replace(b"@@", text)
              for path, body in _bodies("@@").items()}
    _assert_malformed(server, bodies)


def test_the_shared_server_logged_no_error(server: Server) -> None:
    """Runs last: every attack above was refused as a 4xx, none was a crash."""
    assert server.process.poll() is None
    log = server.log()
    assert '"level": "error"' not in log, log[-3000:]
    assert "Traceback" not in log

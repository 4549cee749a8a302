"""Serving benchmark: `planta serve` against the anchors' bare FastAPI floor (and MLflow, BentoML).

The same harness as shared/bench/anchors/run_http.sh: the server pinned to one core (CPU 1) on
127.0.0.1, wrk pinned to the other (CPU 0), one wrk thread, the anchors' post.lua (which prints a
WRKJSON line), a warm-up before the measured runs. The anchors run through run_http.sh itself,
in the same invocation, so the ratios compare like with like on the same machine and minute.

    python bench/bench_serve.py                          # 10 s per run, 2 reps, fastapi1 anchor
    python bench/bench_serve.py --anchors fastapi1 mlflow bentoml --reps 3
    python bench/bench_serve.py --micro-only             # the in-process CPU breakdown only

planta configurations (each a fresh `planta serve` with the worker thread on, as in production):
  full     validation, logging (durability full: fsync per group commit), metrics; no auth
  process  the same with PLANTA_LOG_DURABILITY=process (commits reach the OS, no fsync)
  nolog    --no-log-predictions (hidden flag, only for measuring the log's cost)
  native   full with PLANTA_ENGINE=native: the model runs on the native boosters instead of
           the in-memory onnxruntime engine (planta.services.onnx_engine); the engine's gain
  auth     full + --require-auth, a bearer token from `planta token create --role operator`
  nofast   full with PLANTA_FAST_PATH=off: the scoring routes go through FastAPI's router and
           middleware instead of the guard's short way (planta.server.fastpath); its gain
Loads: one record per request at --conc (8), and 1,000-record requests at --batch-conc (8).

Besides wrk's req/s and latency, every run records the server's CPU seconds (utime + stime of
the whole process, all threads, from /proc) so that "CPU per request" separates planta's cost
from the machine's noise, and for logging runs it checks that every answered request is in the
prediction log. --micro adds an in-process breakdown (thread CPU µs per request) of the hot
path: JSON parse, contract validation, model, answer, log entry, metrics, token check.

Project: bench/out/serve_project, built once from planta's bundled AI4I 2020 copy
(planta.services.demo.demo_data()): `planta train --budget 20`, promoted (with --exception when
the gate rejects it). Output: a markdown table on stdout, every run in bench/out/serve.jsonl and
the last invocation (runs + summary) in bench/out/serve.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
PROJECT = OUT / "serve_project"
FRESH = OUT / "serve_project_fresh"
ANCHORS = ROOT.parent / "shared" / "bench" / "anchors"
PERF_BASE = OUT / "perfbase"
SERVER_CPU, LOAD_CPU = "1", "0"
PORT = 8311
USECASE = "failure"
CONFIGS = ("full", "nofast", "native", "process", "nolog", "auth")
MAX_RUN_S = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def planta_bin() -> str:
    return shutil.which("planta") or str(Path(sys.executable).with_name("planta"))


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# -- the project ----------------------------------------------------------------------------------
def prepare_project(budget: int) -> Path:
    """A fresh copy of the template project (trained once, with an empty prediction log), so
    that every invocation starts from the same log size: the log grows by gigabytes per run
    (1,000-record requests), and a large log slows its commits and checkpoints."""
    template = OUT / "serve_project_template"
    if not (template / "planta.toml").exists():
        if not (PROJECT / "planta.toml").exists():
            build_project(budget)
        make_template(PROJECT, template)
    shutil.rmtree(PROJECT, ignore_errors=True)
    shutil.copytree(template, PROJECT)
    return PROJECT


def make_template(project: Path, template: Path) -> None:
    """``project`` without its logged predictions (the same model, contract and registry)."""
    shutil.rmtree(template, ignore_errors=True)
    shutil.copytree(project, template, ignore=shutil.ignore_patterns("planta.db*"))
    src, dst = project / ".planta" / "planta.db", template / ".planta" / "planta.db"
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as old, sqlite3.connect(dst) as new:
        schema = old.execute("select type, name, sql from sqlite_master where sql is not null "
                             "and name not like 'sqlite_%' order by type = 'table' desc").fetchall()
        for _, _, sql in schema:
            new.execute(sql)
        new.execute("attach database ? as old", (f"file:{src}?mode=ro",))
        for kind, name, _ in schema:
            if kind == "table" and name != "predictions":
                new.execute(f'insert into main."{name}" select * from old."{name}"')  # noqa: S608
        new.commit()
        new.execute("detach database old")
        mode = old.execute("pragma journal_mode").fetchone()[0]
        new.execute(f"pragma journal_mode={mode}")
    dst.chmod(src.stat().st_mode & 0o777)


def build_project(budget: int) -> None:
    """A planta project with a production model of use case ``failure`` on AI4I 2020."""
    from planta.services.demo import demo_data

    planta = planta_bin()
    shutil.rmtree(PROJECT, ignore_errors=True)
    env = os.environ | {"PLANTA_USER": "bench"}
    steps = (["init", str(PROJECT)],
             ["usecase", "add", USECASE, "--target", "Machine failure", "--objective", "recall>=0.5"],
             ["ingest", USECASE, str(demo_data())],
             ["train", USECASE, "--budget", str(budget)])
    for step in steps:
        done = run([planta, *step], cwd=OUT if step[0] == "init" else PROJECT, env=env)
        if done.returncode not in (0, 3):  # 3: trained, but the objective gate rejected it
            raise SystemExit(f"planta {' '.join(step)} failed: {done.stderr}")
    promote = [planta, "promote", USECASE, "1", "--reason", "serving benchmark"]
    if run(promote, cwd=PROJECT, env=env).returncode:
        done = run([*promote, "--exception"], cwd=PROJECT, env=env)
        if done.returncode:
            raise SystemExit(f"planta promote failed: {done.stderr}")


def token(fresh: bool = False) -> str:
    """An operator token's secret (kept in bench/out/serve_token.json between runs)."""
    path = OUT / "serve_token.json"
    if path.exists() and not fresh:
        return str(json.loads(path.read_text())["secret"])
    done = run([planta_bin(), "token", "create", "--role", "operator",
                "--name", f"bench-{int(time.time())}", "--json"], cwd=PROJECT,
               env=os.environ | {"PLANTA_USER": "bench"})
    if done.returncode:
        raise SystemExit(f"planta token create failed: {done.stderr}")
    secret = json.loads(done.stdout)["secret"]
    path.write_text(json.dumps({"secret": secret}))
    return str(secret)


def bodies(fields: list[dict[str, Any]]) -> dict[str, Path]:
    """Request bodies from the first AI4I rows, keyed by the contract's canonical names."""
    from planta.services.demo import demo_data

    wanted = {f.get("label") or f["name"]: f for f in fields}
    with open(demo_data(), newline="", encoding="utf-8-sig") as fh:
        rows = [row for _, row in zip(range(1000), csv.DictReader(fh), strict=False)]

    def record(row: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, f in wanted.items():
            value = row[label]
            out[f["name"]] = value if f["kind"] in ("category", "text") else float(value)
        return out

    paths = {"anchor": PERF_BASE / "work" / "body_record.json"}
    for name, n in (("single", 1), ("batch", 1000)):
        paths[name] = OUT / f"serve_body_{name}.json"
        paths[name].write_text(json.dumps({"records": [record(r) for r in rows[:n]]}))
    return paths


def lua_script() -> Path:
    """The anchors' post.lua, plus a bearer token header when AUTH_TOKEN is set."""
    text = (ANCHORS / "post.lua").read_text()
    marker = 'wrk.headers["Content-Type"] = "application/json"\n'
    assert marker in text, "the anchors' post.lua changed"
    text = text.replace(marker, marker + 'local auth = os.getenv("AUTH_TOKEN")\n'
                        'if auth and auth ~= "" then wrk.headers["Authorization"] = '
                        '"Bearer " .. auth end\n')
    path = OUT / "serve_post.lua"
    path.write_text(text)
    return path


# -- one server, several wrk runs -----------------------------------------------------------------
def post(url: str, body: bytes, secret: str | None, timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"content-type": "application/json"}
                                 | ({"authorization": f"Bearer {secret}"} if secret else {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def proc_cpu_s(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK_TCK  # utime + stime, all threads


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wrk(url: str, body: Path, conc: int, seconds: int, lua: Path, secret: str | None,
        latency: bool = True) -> dict[str, Any]:
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conc}", f"-d{seconds}s", "--timeout",
           "10s", *(["--latency"] if latency else []), "-s", str(lua), url]
    done = run(cmd, env=os.environ | {"BODY_FILE": str(body), "AUTH_TOKEN": secret or ""})
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout}{done.stderr}")
    return dict(json.loads(line[len("WRKJSON "):]))


def logged_requests(project: Path) -> int:
    with sqlite3.connect(f"file:{project / '.planta' / 'planta.db'}?mode=ro", uri=True,
                         timeout=30) as con:
        return int(con.execute("select count(*) from predictions").fetchone()[0])


def busy_fraction(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat)."""
    def snap() -> tuple[int, int]:
        vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = vals[3] + vals[4]
        return sum(vals[:8]), idle
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def wait_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (at most ``limit_s``) until the machine is mostly idle; the busy share seen last.
    The box is shared: other jobs running beside a measurement halve planta's and the
    anchor's figures alike, and not always both."""
    deadline = time.time() + limit_s
    busy = busy_fraction()
    while busy > threshold and time.time() < deadline:
        busy = busy_fraction(2.0)
    return round(busy, 2)


def planta_server(config: str) -> tuple[list[str], dict[str, str], Path]:
    cmd = [planta_bin(), "serve", "--host", "127.0.0.1", "--port", str(PORT),
           "--log-level", "warning"]
    if config == "nolog":
        cmd.append("--no-log-predictions")
    if config == "auth":
        cmd.append("--require-auth")
    env = os.environ | {"PLANTA_USER": "bench",
                        "PLANTA_LOG_DURABILITY": "process" if config == "process" else "full",
                        "PLANTA_ENGINE": "native" if config == "native" else "auto",
                        "PLANTA_FAST_PATH": "off" if config == "nofast" else "on"}
    return cmd, env, PROJECT


def serve_config(config: str, paths: dict[str, Path], lua: Path, secret: str, args: Any,
                 rep: int) -> list[dict[str, Any]]:
    """Start a server (a planta configuration, or ``fastapi1-cpu``: the anchors' FastAPI floor
    started exactly as run_http.sh starts it), load it with each body, stop it."""
    if config == "fastapi1-cpu":
        core = PERF_BASE / "venvs" / "core" / "bin" / "uvicorn"
        cmd = [str(core), "serve_fastapi:app", "--host", "127.0.0.1", "--port", str(PORT),
               "--workers", "1", "--no-access-log", "--log-level", "warning"]
        env = os.environ | {"PERF_MODEL": str(PERF_BASE / "work" / "model.txt")}
        cwd, url, use_secret = ANCHORS, f"http://127.0.0.1:{PORT}/predict", None
        loads = [("single", paths["anchor"], args.conc, 1)]
        server = "fastapi1 (CPU-accounted)"
    else:
        cmd, env, cwd = planta_server(config)
        url = f"http://127.0.0.1:{PORT}/v1/usecases/{USECASE}/predict"
        use_secret = secret if config == "auth" else None
        loads = [("single", paths["single"], args.conc, 1),
                 ("batch", paths["batch"], args.batch_conc, 1000)]
        server = f"planta-{config}"
    logs = OUT / "serve_logs"
    logs.mkdir(exist_ok=True)
    is_planta = server.startswith("planta")
    if is_planta and FRESH.exists():
        shutil.rmtree(PROJECT)
        shutil.copytree(FRESH, PROJECT)
    before_rows = logged_requests(PROJECT) if is_planta else 0
    busy_before = wait_quiet(args.quiet_wait)
    with open(logs / f"server-{config}.log", "w") as log:
        proc = subprocess.Popen(["setsid", "taskset", "-c", SERVER_CPU, *cmd], cwd=cwd, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    results = []
    answered = 0
    try:
        t0 = time.time()
        first_body = loads[0][1].read_bytes()
        while True:
            code, answer = post(url, first_body, use_secret)
            if code == 200:
                answered += 1
                break
            if proc.poll() is not None or time.time() - t0 > 120:
                raise RuntimeError(f"{server} not ready (HTTP {code}): see "
                                   f"{logs / f'server-{config}.log'}")
            time.sleep(0.25)
        ready_s = time.time() - t0
        for load, body, conc, n_rec in loads:
            code, answer = post(url, body.read_bytes(), use_secret, timeout=30)
            assert code == 200, f"{server}/{load}: HTTP {code} {answer[:300]!r}"
            answered += 1
            warm = wrk(url, body, conc, args.warm, lua, use_secret, latency=False)
            answered += warm["requests"]
            cpu0, t_0 = proc_cpu_s(proc.pid), time.time()
            res = wrk(url, body, conc, args.duration, lua, use_secret)
            cpu_s, wall_s = proc_cpu_s(proc.pid) - cpu0, time.time() - t_0
            answered += res["requests"]
            errors = sum(res[k] for k in res if k.startswith("err_"))
            cpu_us = cpu_s / max(res["requests"], 1) * 1e6
            row = {"bench": "serve", "server": server, "load": load, "conc": conc,
                   "rep": rep, "records_per_request": n_rec, "rps": res["rps"],
                   "records_per_s": round(res["rps"] * n_rec), "p50_ms": res["p50_ms"],
                   "p90_ms": res["p90_ms"], "p99_ms": res["p99_ms"], "max_ms": res["max_ms"],
                   "requests": res["requests"], "errors": errors,
                   "server_cpu_util": round(cpu_s / wall_s, 3),
                   "server_cpu_us_per_request": round(cpu_us),
                   # what one whole core would give at this CPU cost per request
                   "rps_per_core": round(1e6 / cpu_us, 1),
                   "records_per_s_per_core": round(1e6 / cpu_us * n_rec),
                   "machine_busy_before": busy_before,
                   "server_rss_mb": round(proc_rss_mb(proc.pid), 1), "ready_s": round(ready_s, 2),
                   "duration_s": args.duration, "server_cpus": SERVER_CPU,
                   "wrk_cpus": LOAD_CPU, "ts": time.strftime("%Y-%m-%dT%H:%M:%S")}
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        stop(proc)
    if is_planta and config != "nolog":
        logged = logged_requests(PROJECT) - before_rows
        for row in results:
            row["log_rows_added"] = logged
            row["log_complete"] = logged >= answered  # every answered request is in the log
    return results


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- the anchors, through their own script ---------------------------------------------------------
def prepare_anchors(anchors: list[str]) -> dict[str, str]:
    """The anchors' model and record (as their prepare.py writes them), and their venvs:
    ``core`` is this interpreter's environment (FastAPI, uvicorn, LightGBM: the same versions
    planta serves with); ``mlflow`` and ``bentoml`` come from the anchors' setup_venvs.sh."""
    work, venvs = PERF_BASE / "work", PERF_BASE / "venvs"
    work.mkdir(parents=True, exist_ok=True)
    venvs.mkdir(parents=True, exist_ok=True)
    core = venvs / "core"
    if not core.exists():
        core.symlink_to(Path(sys.prefix))
    env = os.environ | {"PERF_BASE": str(PERF_BASE), "PERF_WORK": str(work), "VENVS": str(venvs)}
    if not (work / "model.txt").exists():
        code = ("import json, common as C\n"
                "X, y = C.load_xy(); C.WORK.mkdir(parents=True, exist_ok=True)\n"
                "C.train_lgbm(X, y).booster_.save_model(str(C.model_paths()['booster']))\n"
                "C.model_paths()['record'].write_text(json.dumps(C.one_record()))\n")
        done = run([sys.executable, "-c", code], cwd=ANCHORS, env=env)
        if done.returncode:
            raise SystemExit(f"anchor model: {done.stderr}")
    (work / "body_record.json").write_text((work / "record.json").read_text())
    for name in ("mlflow", "bentoml"):
        if name in anchors and not (venvs / name / "bin" / "python").exists():
            done = run(["bash", str(ANCHORS / "setup_venvs.sh"), name], env=env)
            if done.returncode:
                print(f"could not set up the {name} anchor: {done.stderr[-500:]}",
                      file=sys.stderr)
    if "mlflow" in anchors and (venvs / "mlflow" / "bin" / "python").exists() \
            and not (work / "mlflow_model_uri.txt").exists():
        done = run([str(venvs / "mlflow" / "bin" / "python"), "log_mlflow.py"], cwd=ANCHORS,
                   env=env | {"MLFLOW_TRACKING_URI": f"sqlite:///{PERF_BASE / 'mlflow.db'}"})
        if done.returncode:
            print(f"could not log the MLflow model: {done.stderr[-500:]}", file=sys.stderr)
    return env


def run_anchor(name: str, env: dict[str, str], args: Any, rep: int) -> list[dict[str, Any]]:
    results_dir = PERF_BASE / f"results-serve-{os.getpid()}"
    out = results_dir / "http.jsonl"
    out.unlink(missing_ok=True)
    busy_before = wait_quiet(args.quiet_wait)
    done = run(["bash", str(ANCHORS / "run_http.sh"), name],
               env=env | {"PERF_RESULTS": str(results_dir), "CONC": str(args.conc),
                          "DUR": str(args.duration), "WARM": str(args.warm), "REPS": "1"})
    if not out.exists():
        print(f"anchor {name} gave no result: {done.stderr[-800:]}", file=sys.stderr)
        return []
    rows = []
    for line in out.read_text().splitlines():
        d = json.loads(line)
        row = {"bench": "serve", "server": name, "load": "single", "conc": d["conc"], "rep": rep,
               "records_per_request": 1, "rps": d["rps"], "records_per_s": round(d["rps"]),
               "p50_ms": d["p50_ms"], "p90_ms": d["p90_ms"], "p99_ms": d["p99_ms"],
               "max_ms": d["max_ms"], "requests": d["requests"],
               "errors": sum(d[k] for k in d if k.startswith("err_")),
               "server_rss_mb": d.get("server_rss_mb"), "ready_s": d.get("ready_s"),
               "duration_s": args.duration, "server_cpus": d.get("server_cpus"),
               "wrk_cpus": d.get("wrk_cpus"), "via": "anchors/run_http.sh",
               "machine_busy_before": busy_before,
               "ts": time.strftime("%Y-%m-%dT%H:%M:%S")}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    shutil.rmtree(results_dir, ignore_errors=True)
    return rows


# -- in-process CPU breakdown --------------------------------------------------------------------
MICRO = r'''
import asyncio, json, sys, time
import orjson
from planta.services.workspace import Workspace
from planta.server.app import build_runtime
from planta.server.body import records_of
from planta.server.runtime import Answer, ServeOptions
from planta_edge.contract import validate_records

secret = sys.argv[1]
ws = Workspace.open()
rt = build_runtime(ws, ServeOptions(worker=False))
rt.hub.start()
scorer = rt.hub.route("failure").production
route_path = "/v1/usecases/{name}/predict"

def cpu_us(fn, n):
    fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.thread_time_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time_ns() - t0) / n / 1000)
    return best

out = {}
for label, path in (("single", sys.argv[2]), ("batch", sys.argv[3])):
    raw = open(path, "rb").read()
    records = orjson.loads(raw)["records"]
    n = 2000 if len(records) == 1 else 20
    checked = validate_records(scorer.contract, records)
    batch = scorer.predict(records)
    from planta.store.ids import id_range, reserve
    first = reserve(batch.n)
    answer = Answer(batch=batch, ids=id_range(first, batch.n), route="production",
                    usecase="failure", latency_ms=1.0)
    row = {
        "parse_json": cpu_us(lambda: records_of(orjson.loads(raw), max_records=10_000), n),
        "validate": cpu_us(lambda: validate_records(scorer.contract, records), n),
        "model": cpu_us(lambda: (scorer.engine or scorer.predictor).predict(checked.values),
                        n),
        "model_native": cpu_us(lambda: scorer.predictor.predict(checked.values), n),
        "scorer_total": cpu_us(lambda: scorer.predict(records), n),
        "answer_json": cpu_us(lambda: orjson.dumps({"usecase": "failure", "model_version": 1,
                                                   "route": "production",
                                                   "predictions": answer.records()}), n),
        "log_entry": cpu_us(lambda: rt._entry(reserve(batch.n), batch.n, "failure", scorer,
                                              "production", "sync", "bench", "r", 1.0, batch,
                                              records), n),
        "ids": cpu_us(lambda: id_range(reserve(batch.n), batch.n), n),
        "metrics": cpu_us(lambda: (rt._count("failure", scorer, "production", batch),
                                   rt.metrics.requests.labels(route_path, "POST", "200").inc(),
                                   rt.metrics.latency.labels(route_path).observe(0.001)), n),
        "auth_verify": cpu_us(lambda: rt.tokens.verify(secret), n),
    }
    out[label] = {k: round(v, 1) for k, v in row.items()} | {"records": len(records)}
rt.hub.stop()
print(json.dumps(out))
'''


def micro(paths: dict[str, Path], secret: str) -> dict[str, Any]:
    done = run(["taskset", "-c", SERVER_CPU, sys.executable, "-c", MICRO, secret,
                str(paths["single"]), str(paths["batch"])], cwd=PROJECT,
               env=os.environ | {"PLANTA_USER": "bench"})
    if done.returncode:
        raise SystemExit(f"micro benchmark failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- summary ------------------------------------------------------------------------------------
def med(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def per_rep_ratio(results: list[dict[str, Any]], a: tuple[str, str], b: tuple[str, str],
                  key: str, key_b: str | None = None) -> float | None:
    """Median over reps of a[key] / b[key_b]: each pair measured minutes apart at most."""
    ratios = []
    for rep in sorted({r["rep"] for r in results}):
        ra = [r for r in results if (r["server"], r["load"]) == a and r["rep"] == rep]
        rb = [r for r in results if (r["server"], r["load"]) == b and r["rep"] == rep]
        if ra and rb and key in ra[0] and (key_b or key) in rb[0] and rb[0][key_b or key]:
            ratios.append(ra[0][key] / rb[0][key_b or key])
    return round(statistics.median(ratios), 3) if ratios else None


def summarize(results: list[dict[str, Any]], micro_out: dict[str, Any] | None) -> dict[str, Any]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["server"], r["load"]), []).append(r)
    table = []
    for (server, load), rows in groups.items():
        entry = {"server": server, "load": load, "conc": rows[0]["conc"], "reps": len(rows),
                 "rps": med(rows, "rps"), "records_per_s": med(rows, "records_per_s"),
                 "p50_ms": med(rows, "p50_ms"), "p99_ms": med(rows, "p99_ms"),
                 "rps_range": [min(r["rps"] for r in rows), max(r["rps"] for r in rows)],
                 "errors": sum(r["errors"] for r in rows)}
        if "server_cpu_us_per_request" in rows[0]:
            entry["cpu_us_per_request"] = med(rows, "server_cpu_us_per_request")
            entry["cpu_util"] = med(rows, "server_cpu_util")
            entry["rps_per_core"] = med(rows, "rps_per_core")
            entry["records_per_s_per_core"] = med(rows, "records_per_s_per_core")
        if "machine_busy_before" in rows[0]:
            entry["machine_busy_before"] = med(rows, "machine_busy_before")
        if "log_complete" in rows[0]:
            entry["log_complete"] = all(r["log_complete"] for r in rows)
        table.append(entry)
    summary: dict[str, Any] = {"table": table, "micro_cpu_us": micro_out}
    floor, floor_cpu = ("fastapi1", "single"), ("fastapi1 (CPU-accounted)", "single")
    for cfg in CONFIGS:
        one = (f"planta-{cfg}", "single")
        summary[f"{cfg}_single_rps_vs_fastapi"] = per_rep_ratio(results, one, floor, "rps")
        summary[f"{cfg}_single_p99_vs_fastapi"] = per_rep_ratio(results, one, floor, "p99_ms")
        summary[f"{cfg}_single_rps_per_core_vs_fastapi"] = per_rep_ratio(
            results, one, floor_cpu, "rps_per_core")
    for load in ("single", "batch"):
        # The onnxruntime engine's gain: the same server with the native boosters.
        summary[f"{load}_full_rps_vs_native"] = per_rep_ratio(
            results, ("planta-full", load), ("planta-native", load), "rps")
        # The short way's gain: the same server with every request through FastAPI.
        summary[f"{load}_full_rps_vs_nofast"] = per_rep_ratio(
            results, ("planta-full", load), ("planta-nofast", load), "rps")
        summary[f"{load}_full_rps_per_core_vs_nofast"] = per_rep_ratio(
            results, ("planta-full", load), ("planta-nofast", load), "rps_per_core")
        nolog = ("planta-nolog", load)
        for cfg in ("full", "process", "auth"):
            this = (f"planta-{cfg}", load)
            summary[f"{load}_{cfg}_rps_vs_nolog"] = per_rep_ratio(results, this, nolog, "rps")
            summary[f"{load}_{cfg}_rps_per_core_vs_nolog"] = per_rep_ratio(
                results, this, nolog, "rps_per_core")
            by = {(t["server"], t["load"]): t for t in table}
            if this in by and nolog in by and "cpu_us_per_request" in by[this]:
                per = by[this]["cpu_us_per_request"] - by[nolog]["cpu_us_per_request"]
                summary[f"{load}_{cfg}_cpu_us_per_record_vs_nolog"] = round(
                    per / (1 if load == "single" else 1000), 2)
    return {k: v for k, v in summary.items() if v is not None}


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| server | load | conc | req/s | records/s | p50 ms | p99 ms | server CPU "
             "µs/request | req/s per core | CPU share | box busy before | errors | "
             "reps (req/s range) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in summary["table"]:
        cpu = f"{t['cpu_us_per_request']:,.0f}" if "cpu_us_per_request" in t else "–"
        per_core = f"{t['rps_per_core']:,.0f}" if "rps_per_core" in t else "–"
        util = f"{t['cpu_util'] * 100:.0f} %" if "cpu_util" in t else "–"
        busy = (f"{t['machine_busy_before'] * 100:.0f} %" if "machine_busy_before" in t
                else "–")
        lo, hi = t["rps_range"]
        lines.append(f"| {t['server']} | {t['load']} | {t['conc']} | {t['rps']:,.0f} | "
                     f"{t['records_per_s']:,.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} | "
                     f"{cpu} | {per_core} | {util} | {busy} | {t['errors']} | "
                     f"{t['reps']} ({lo:,.0f}–{hi:,.0f}) |")
    extra = {k: v for k, v in summary.items() if k not in ("table", "micro_cpu_us")}
    if extra:
        lines += ["", *(f"- {k}: {v}" for k, v in extra.items())]
    if summary.get("micro_cpu_us"):
        lines += ["", "In-process thread CPU µs per request (best of 5, pinned to CPU "
                  f"{SERVER_CPU}):", "", "| part | 1 record | 1,000 records |", "|---|---|---|"]
        m = summary["micro_cpu_us"]
        for k in m["single"]:
            if k != "records":
                lines.append(f"| {k} | {m['single'][k]:,.1f} | {m['batch'][k]:,.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    ap.add_argument("--warm", type=int, default=3, help="seconds of warm-up per load")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--conc", type=int, default=8, help="connections, one record per request")
    ap.add_argument("--batch-conc", type=int, default=8, help="connections, 1,000 records each")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--anchors", nargs="*", default=["fastapi1"],
                    choices=["fastapi1", "mlflow", "bentoml"])
    ap.add_argument("--budget", type=int, default=20, help="planta train budget (s)")
    ap.add_argument("--micro", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--micro-only", action="store_true")
    ap.add_argument("--quiet-wait", type=float, default=60, help="seconds to wait at most, "
                    "before each server, for the shared machine to be mostly idle")
    args = ap.parse_args()
    if args.duration > MAX_RUN_S or args.warm > MAX_RUN_S:
        raise SystemExit(f"each run is bounded to {MAX_RUN_S} s")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (the anchors' load "
                         "generator)")
    OUT.mkdir(exist_ok=True)
    prepare_project(args.budget)
    secret = token()
    # The contract's fields (for the bodies), from a short-lived in-process hub.
    from planta.server.hub import Hub
    from planta.services.workspace import Workspace

    cwd = os.getcwd()
    os.chdir(PROJECT)
    try:
        ws = Workspace.open()
        try:
            hub = Hub(ws, poll_s=3600)
            hub.start()
            scorer = hub.route(USECASE).production
            fields = [f.to_dict() for f in scorer.contract.inputs]
            hub.stop()
            from planta.store.tokens import TokenStore

            if TokenStore(ws.store, ws.audit).verify(secret) is None:
                secret = ""
        finally:
            ws.close()
    finally:
        os.chdir(cwd)
    if not secret:
        secret = token(fresh=True)
    # Every planta server starts from this copy (the token made, the log empty): a log grown
    # by the servers before it (gigabytes of 1,000-record requests) would make a later
    # server's start-up warm-up and its commits slower, and favour the configs that run first.
    shutil.rmtree(FRESH, ignore_errors=True)
    shutil.copytree(PROJECT, FRESH)
    paths = bodies(fields)
    lua = lua_script()
    micro_out = micro(paths, secret) if args.micro or args.micro_only else None
    results: list[dict[str, Any]] = []
    if not args.micro_only:
        env = prepare_anchors(args.anchors or ["fastapi1"])
        for rep in range(args.reps):
            # Interleaved, in an order rotated each rep: a drift of the shared machine hits
            # every server alike.
            order = [*(["fastapi1"] if "fastapi1" in args.anchors else []), "fastapi1-cpu",
                     *args.configs]
            order = order[rep % len(order):] + order[:rep % len(order)]
            for name in order:
                if name == "fastapi1":
                    results += run_anchor("fastapi1", env, args, rep)
                else:
                    results += serve_config(name, paths, lua, secret, args, rep)
        for name in args.anchors:
            if name != "fastapi1":
                results += run_anchor(name, env, args, 0)
    summary = summarize(results, micro_out)
    doc = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(),
           "args": vars(args), "runs": results, "summary": summary}
    (OUT / "serve.json").write_text(json.dumps(doc, indent=1))
    with (OUT / "serve.jsonl").open("a") as fh:
        for r in results:
            fh.write(json.dumps(r) + "\n")
    print(markdown(summary))


def machine() -> dict[str, Any]:
    model = next((ln.split(":", 1)[1].strip() for ln in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "?")
    wrk_v = run(["wrk", "--version"]).stdout.splitlines()
    return {"nproc": os.cpu_count(), "cpu": model, "python": sys.version.split()[0],
            "wrk": wrk_v[0] if wrk_v else "?", "load_avg_at_start": os.getloadavg()}


if __name__ == "__main__":
    main()

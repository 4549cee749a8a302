"""Web UI benchmark: every page of `planta serve` timed with a year of prediction log behind it.

    python bench/bench_ui.py                       # 1,000,000 predictions, 20 GETs per page
    python bench/bench_ui.py --rows 100000 --reps 5   # a quick look

1. A project (cached in bench/out/ui_project; ``--fresh`` rebuilds it): `planta init`, use case
   "failure" on 3,000 AI4I 2020 rows, two models trained (`--budget 4`), version 1 promoted.
2. A year of prediction log for "failure": ``--rows`` single-record predictions (the shape a
   line calling the API once per part leaves), their times spread evenly over the last 365
   days with ids made from those times, inputs resampled from AI4I, and ground truth for one
   prediction in ten. Written straight into the store in large transactions (the log's own
   group commit would take an hour to write a year).
3. `planta serve --access-log` on 127.0.0.1, started ``--starts`` times: seconds until /healthz,
   /readyz and the first /ui page answer; alternately on the same project without the log
   (bench/out/ui_project_bare), the baseline that shows what the year of log costs.
4. Every page in planta.ui.pages.PAGES (so pages added later are timed too), path parameters
   filled with real objects (a version, a wizard draft, a training run, a batch job): ``--reps``
   GETs each after one warm-up; wall time at the client and server time from the access log
   (``duration_ms``, matched by request id); median and p95. Page weight: the HTML plus every
   stylesheet and script it links, in bytes.

Target: every page under 1 s. Results: bench/out/ui.json and markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PROJECT = OUT / "ui_project"
BARE = OUT / "ui_project_bare"
PLANTA = shutil.which("planta") or str(Path(sys.executable).with_name("planta"))
USECASE = "failure"
CHUNK = 50_000


def planta(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PLANTA, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=900, env=os.environ | {"PLANTA_USER": "bench"})
    if check and result.returncode not in (0, 3):
        raise SystemExit(f"planta {' '.join(args)} -> {result.returncode}\n{result.stderr}")
    return result


def build_project(root: Path) -> None:
    from planta.services.demo import demo_data

    shutil.rmtree(root, ignore_errors=True)
    planta(root.parent, "init", str(root))
    raw = pd.read_csv(demo_data())
    raw.iloc[:3000].to_csv(root / "history.csv", index=False)
    planta(root, "usecase", "add", USECASE, "--target", "Machine failure", "--task", "binary",
           "--objective", "recall>=0.10 and precision>=0.10")
    planta(root, "ingest", USECASE, "history.csv")
    planta(root, "train", USECASE, "--budget", "4")
    planta(root, "train", USECASE, "--budget", "4", "--seed", "1")
    if planta(root, "promote", USECASE, "1", "--reason", "bench", check=False).returncode:
        planta(root, "promote", USECASE, "1", "--reason", "bench", "--exception")


def fill_log(root: Path, rows: int) -> float:
    """Write ``rows`` predictions (and feedback for one in ten) over the last year; seconds."""
    import secrets

    from sqlalchemy import insert

    from planta.services.demo import demo_data
    from planta.services.workspace import Workspace
    from planta.store.ids import encode
    from planta.store.metadata import feedback, predictions

    started = time.perf_counter()
    raw = pd.read_csv(demo_data())
    columns = {"Type": "type", "Air temperature [K]": "air_temperature_k",
               "Process temperature [K]": "process_temperature_k",
               "Rotational speed [rpm]": "rotational_speed_rpm", "Torque [Nm]": "torque_nm",
               "Tool wear [min]": "tool_wear_min", "RNF": "rnf"}
    pool = [json.dumps([rec]) for rec in raw[list(columns)].rename(columns=columns)
            .iloc[:2000].to_dict("records")]
    rng = np.random.default_rng(0)
    end = datetime.now(UTC) - timedelta(minutes=5)
    start = end - timedelta(days=365)
    step = (end - start) / rows
    ws = Workspace.open(root)
    try:
        for low in range(0, rows, CHUNK):
            n = min(CHUNK, rows - low)
            risk = rng.beta(0.3, 8, n)
            picks = rng.integers(0, len(pool), n)
            batch, labels = [], []
            for i in range(n):
                at = start + step * (low + i)
                pid = encode((int(at.timestamp() * 1000) << 80) | secrets.randbits(79))
                p = float(round(risk[i], 4))
                batch.append({
                    "id": pid, "last_id": pid, "n": 1, "at": at, "usecase": USECASE,
                    "version": 1, "route": "production", "channel": "sync",
                    "caller": "line-4", "request_id": None, "latency_ms": 3.0, "device": None,
                    "entities": None, "inputs": pool[picks[i]],
                    "outputs": json.dumps({"prediction": [int(p > 0.5)], "probability": [p],
                                           "score": None})})
                if i % 10 == 0:
                    labels.append({"usecase": USECASE, "prediction_id": pid,
                                   "value": int(rng.random() < p), "entity": None,
                                   "event_time": at, "source": "bench", "actor": "bench",
                                   "received_at": at + timedelta(hours=8)})
            with ws.store.engine.begin() as conn:
                conn.execute(insert(predictions), batch)
                conn.execute(insert(feedback), labels)
            print(f"  log: {low + n:,} / {rows:,}", file=sys.stderr, flush=True)
    finally:
        ws.close()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """`planta serve --access-log` on a free loopback port; the access log kept in a file."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = OUT / f"ui_serve_{self.port}.log"
        self.fh = self.log_path.open("wb")
        self.t0 = time.perf_counter()
        self.process = subprocess.Popen(
            [PLANTA, "serve", "--port", str(self.port), "--access-log"], cwd=root,
            stdout=self.fh, stderr=subprocess.STDOUT,
            env=os.environ | {"PLANTA_USER": "bench"})

    def wait(self, path: str, timeout: float = 120) -> float:
        """Seconds from the start until GET ``path`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"planta serve exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + path, timeout=5).status_code == 200:
                    return time.perf_counter() - self.t0
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"{path} did not answer in {timeout} s")

    def durations(self) -> dict[str, float]:
        """Server-side milliseconds of each logged request, by request id."""
        out = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            if '"duration_ms"' in line:
                doc = json.loads(line)
                out[doc["request_id"]] = float(doc["duration_ms"])
        return out

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.fh.close()


def start_times(starts: int) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {"log": [], "bare": []}
    for _ in range(starts):
        for key, root in (("log", PROJECT), ("bare", BARE)):
            srv = Served(root)
            try:
                out[key].append({"healthz_s": srv.wait("/healthz"),
                                 "readyz_s": srv.wait("/readyz"),
                                 "first_page_s": srv.wait("/ui")})
            finally:
                srv.stop()
                srv.log_path.unlink(missing_ok=True)
    return out


def real_objects(client: httpx.Client) -> dict[str, str]:
    """Path parameters for every page: made through the UI's own forms."""
    params = {"name": USECASE, "version": "2"}
    csv = PROJECT / "history.csv"
    with csv.open("rb") as fh:
        r = client.post("/ui/wizard/upload", files={"file": ("history.csv", fh, "text/csv")})
    params["draft"] = r.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    new = PROJECT / "new.csv"
    pd.read_csv(csv).drop(columns=["Machine failure"]).iloc[:500].to_csv(new, index=False)
    with new.open("rb") as fh:
        r = client.post(f"/ui/usecases/{USECASE}/batch",
                        files={"file": ("new.csv", fh, "text/csv")})
    params["job_id"] = r.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    r = client.post(f"/ui/usecases/{USECASE}/train", data={"budget": "2"})
    params["training"] = r.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    deadline = time.monotonic() + 300  # wait for the training and the job to finish
    while time.monotonic() < deadline:
        progress = client.get(f"/ui/usecases/{USECASE}/training/{params['training']}.json")
        job = client.get(f"/v1/jobs/{params['job_id']}")
        if progress.json().get("status") in ("done", "failed") and \
                job.json().get("status") not in ("queued", "running"):
            break
        time.sleep(1)
    return params


ASSETS = re.compile(r"""<(?:link[^>]+href|script[^>]+src)=["'](/[^"']+)["']""")


def weigh(client: httpx.Client, html: str) -> int:
    total = len(html.encode())
    for href in sorted(set(ASSETS.findall(html))):
        total += len(client.get(href).content)
    return total


def time_pages(root: Path, reps: int, settle_s: float = 0.0) -> list[dict[str, Any]]:
    from planta.ui.pages import PAGES

    srv = Served(root)
    srv.wait("/readyz")
    time.sleep(settle_s)
    rows = []
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            params = real_objects(client)
            for page in PAGES:
                path = re.sub(r"{(\w+)(?::\w+)?}", lambda m: params.get(m.group(1), "?"),
                              page.path)
                if "?" in path:
                    rows.append({"page": page.path, "skipped": "no value for a parameter"})
                    continue
                t0 = time.perf_counter()
                first = client.get(path)
                first_ms = (time.perf_counter() - t0) * 1000
                ids, walls = [], []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    r = client.get(path)
                    walls.append((time.perf_counter() - t0) * 1000)
                    ids.append(r.headers.get("x-request-id"))
                rows.append({"page": page.path, "url": path, "status": first.status_code,
                             "first_ms": first_ms, "wall_ms": walls, "ids": ids,
                             "weight_bytes": weigh(client, first.text)})
        time.sleep(0.5)  # let the last access-log lines reach the file
        server = srv.durations()
    finally:
        srv.stop()
    # The background warm-up's line (planta.services.warmup): how long the first read took.
    warmed = [line for line in srv.log_path.read_text(errors="replace").splitlines()
              if "monitoring caches of" in line]
    rows.append({"page": "(warm-up)", "note": "; ".join(_warm_message(w) for w in warmed)
                 or "no line logged"})
    srv.log_path.unlink(missing_ok=True)
    for row in rows:
        if "ids" in row:
            row["server_ms"] = [server[i] for i in row.pop("ids") if i in server]
    return rows


def _warm_message(line: str) -> str:
    """The warm-up's message out of its JSON log line (the line itself if it is not JSON)."""
    try:
        return str(json.loads(line).get("message", line))[:300]
    except ValueError:
        return line[:300]


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def report(doc: dict[str, Any]) -> str:
    lines = [f"Prediction log: {doc['rows']:,} predictions over 365 days "
             f"(+{doc['rows'] // 10:,} feedback); {doc['reps']} GETs per page after one warm-up.",
             "", "| page | status | first GET ms | server median / p95 ms | "
             "wall median / p95 ms | weight (HTML+CSS+JS) |", "|---|---|---|---|---|---|"]
    for row in doc["pages"]:
        if "skipped" in row:
            lines.append(f"| `{row['page']}` | skipped: {row['skipped']} | | | | |")
            continue
        if "note" in row:
            lines.append(f"| `{row['page']}` | {row['note']} | | | | |")
            continue
        s, w = row["server_ms"], row["wall_ms"]
        lines.append(f"| `{row['page']}` | {row['status']} | {row['first_ms']:.0f} | "
                     f"{statistics.median(s):.0f} / "
                     f"{_p95(s):.0f} | {statistics.median(w):.0f} / {_p95(w):.0f} | "
                     f"{row['weight_bytes'] / 1024:.1f} kB |")
    lines.append("")
    for key, label in (("log", "with the year of log"), ("bare", "same project, empty log")):
        starts = doc["starts"][key]
        lines.append(
            f"`planta serve` start, {label} (median of {len(starts)}): /healthz "
            f"{statistics.median(s['healthz_s'] for s in starts):.2f} s, /readyz "
            f"{statistics.median(s['readyz_s'] for s in starts):.2f} s, first /ui page "
            f"{statistics.median(s['first_page_s'] for s in starts):.2f} s.")
    slowest = max((max(r["wall_ms"]) for r in doc["pages"] if "wall_ms" in r), default=0)
    lines.append(f"Slowest single GET: {slowest:.0f} ms (target: every page < 1,000 ms).")
    return "\n".join(lines)


def _logged_rows(root: Path) -> int:
    """Predictions in the project's log (for the report's first line)."""
    from sqlalchemy import func, select

    from planta.services.workspace import Workspace
    from planta.store.metadata import predictions

    ws = Workspace.open(root)
    try:
        with ws.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(predictions)
                                    .where(predictions.c.usecase == USECASE)).scalar_one())
    finally:
        ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached project")
    parser.add_argument("--cold-cache", action="store_true",
                        help="delete the project's monitoring caches first (.planta/cache), so "
                             "the server's background warm-up and the first GETs start cold")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds to wait after /readyz before the first page (lets the "
                             "background warm-up finish)")
    parser.add_argument("--project", type=Path,
                        help="time the pages of this project instead (kept as it is: no fill, "
                             "no cache deleted unless --cold-cache), e.g. the year that "
                             "`bench_performance.py --through-log` wrote through planta's own "
                             "log writer, with its monitoring caches counted as written")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    global PROJECT
    if args.project is not None:
        PROJECT = args.project.resolve()
        args.rows = _logged_rows(PROJECT)
    marker = PROJECT / "bench-rows.txt"
    stale = not marker.exists() or marker.read_text().strip() != str(args.rows)
    if args.project is None and (args.fresh or stale):
        build_project(PROJECT)
        shutil.rmtree(BARE, ignore_errors=True)
        print(f"log filled in {fill_log(PROJECT, args.rows):.0f} s", file=sys.stderr)
        marker.write_text(str(args.rows))
    if not BARE.exists():
        build_project(BARE)
    at, load, starts = datetime.now(UTC), os.getloadavg()[0], start_times(args.starts)
    if args.cold_cache:  # after the start-up timings, whose servers began warming it
        shutil.rmtree(PROJECT / ".planta" / "cache", ignore_errors=True)
    doc = {"rows": args.rows, "reps": args.reps, "cold_cache": args.cold_cache,
           "settle_s": args.settle, "load_before": load,
           "at": at.isoformat(timespec="seconds"), "starts": starts,
           "pages": time_pages(PROJECT, args.reps, args.settle)}
    (OUT / "ui.json").write_text(json.dumps(doc, indent=1))
    print(report(doc))


if __name__ == "__main__":
    main()

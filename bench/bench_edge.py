"""The edge runtime on a device-sized install: size, cold start, memory, latency, MQTT rate.

    python bench/bench_edge.py                       # everything (about 6 minutes)
    python bench/bench_edge.py --skip-footprint --messages 20000

1. **Install size**: ``footprint.sh ./edge planta_edge`` (the anchors' script: a fresh venv,
   site-packages measured with ``du``), beside the anchors' MLflow figure.
2. **Model**: the real pipeline in a temporary project: `planta ingest` (AI4I 2020),
   `planta train --budget`, `planta keys create`, `planta export --onnx`; the signed edge
   bundle is what the device runs.
3. **Cold start, memory, latency** (``--reps`` fresh processes of the footprint venv's Python:
   only planta-edge and its dependencies exist there): interpreter start → bundle verified
   (seal, signature: in a short-lived child process as on a device, hashes) and loaded → first prediction of one JSON record (contract checks
   included); peak RSS (VmHWM) after it; then single-record ``predict_records`` calls for
   ``--seconds`` (median latency); then single records through the whole runtime (outbox
   commit with fsync per record: what an HTTP caller waits for).
4. **MQTT → outbox, one core**: Mosquitto on CPU 1 holds ``--messages`` QoS 1 readings for the
   device's persistent session (the device was offline); the runtime (footprint venv, pinned to
   CPU 0 with ``taskset``) connects, scores, commits in groups (one fsync per batch) and only
   then acknowledges each reading (PUBACK). Rate = readings committed and acknowledged per
   second, first reading to last acknowledgement; RSS of the runtime at the end.

Prints a markdown table and one JSON line (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = ROOT.parent / "shared" / "bench" / "anchors"
MLFLOW_MB = 850          # anchors' footprint.sh, MLflow 3.17 (bench/RESULTS.md, install size)
MOSQUITTO = "/usr/sbin/mosquitto"


# -- children (run in the footprint venv) ------------------------------------------------------
def rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ``ru_maxrss``: on Linux that keeps the
    parent's high-water mark across fork and exec, so a child would report its parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_cold(bundle: str, key: str, record_json: str, seconds: float, state: str) -> None:
    """Load, predict once, report; then the latency loops."""
    from planta_edge.model import EdgeModel

    record = json.loads(record_json)
    model = EdgeModel.load(bundle, trusted_keys=[key])
    first = model.predict_records([record])
    print(json.dumps({"first": str(first.prediction[0]),
                      "rss_mb": rss_mb()}),
          flush=True)
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        model.predict_records([record])
        times.append(time.perf_counter() - t0)
    from planta_edge.outbox import Outbox
    from planta_edge.runtime import EdgeRuntime

    box = Outbox(Path(state) / "outbox.db")
    rt = EdgeRuntime(model, box)
    committed = []
    for _ in range(300):
        t0 = time.perf_counter()
        rt.predict([record])
        committed.append(time.perf_counter() - t0)
    rt.close()
    box.close()
    print(json.dumps({"calls": len(times), "median_us": statistics.median(times) * 1e6,
                      "p99_us": sorted(times)[int(len(times) * 0.99)] * 1e6,
                      "committed_median_ms": statistics.median(committed) * 1e3,
                      "rss_mb": rss_mb()}),
          flush=True)


def child_floor(graph: str, row_json: str) -> None:
    """The floor: numpy + onnxruntime only, the same graph, a ready float row, no checks."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    x = np.asarray([json.loads(row_json)], dtype=np.float64 if "double" in
                   sess.get_inputs()[0].type else np.float32)
    sess.run(None, {sess.get_inputs()[0].name: x})
    print(json.dumps({"rss_mb": rss_mb()}),
          flush=True)


def child_mqtt(bundle: str, key: str, port: int, n: int, state: str) -> None:
    """Drain ``n`` queued readings from the broker through the outbox; report the rate."""
    from planta_edge.config import MqttConfig, TopicInput
    from planta_edge.model import EdgeModel
    from planta_edge.mqtt import MqttLink
    from planta_edge.outbox import Outbox
    from planta_edge.runtime import EdgeRuntime

    model = EdgeModel.load(bundle, trusted_keys=[key])
    box = Outbox(Path(state) / "outbox.db")
    rt = EdgeRuntime(model, box)
    link = MqttLink(MqttConfig(port=port, client_id="bench-device",
                               inputs=(TopicInput("plant/+/readings", "{1}"),)), rt,
                    device="bench")
    first = 0.0
    link.start()
    while link.acked < n:
        if not first and link.received:
            first = time.perf_counter()
        time.sleep(0.001)
    elapsed = time.perf_counter() - first
    stats = box.stats()
    print(json.dumps({"acked": link.acked, "seconds": elapsed, "per_s": link.acked / elapsed,
                      "commits": stats.commits, "committed": stats.committed,
                      "refused": rt.stats.refused,
                      "rss_mb": rss_mb()}),
          flush=True)
    link.stop()
    rt.close()
    box.close()


# -- driver ---------------------------------------------------------------------------------
sys.path.insert(0, str(Path(__file__).parent))
from bench_export import _planta  # noqa: E402 - the same `planta ... --json` runner


def make_bundle(base: Path, budget: float) -> tuple[Path, str, dict[str, Any]]:
    """Train and export the AI4I model; the edge bundle file, the public key, the record."""
    from planta.services.simulate import Simulator
    from planta.services.workspace import Workspace

    env = dict(os.environ, PLANTA_SIGNING_KEYS=str(base / "signing"))
    project = base / "plant"
    subprocess.run([str(Path(sys.executable).with_name("planta")), "init", str(project)],
                   check=True, capture_output=True, env=env)
    _planta("usecase", "add", "failure", "--target", "Machine failure", "--task", "binary",
            "--objective", "recall>=0.5 and precision>=0.5", env=env, cwd=project)
    _planta("ingest", "failure", str(ROOT / "src" / "planta" / "data" / "ai4i2020.csv"),
            env=env, cwd=project)
    _planta("train", "failure", "--budget", str(budget), env=env, cwd=project)
    key = _planta("keys", "create", env=env, cwd=project)["key"]["public_key"]
    exported = _planta("export", "failure", "--version", "1", "--onnx", env=env, cwd=project)
    ws = Workspace.open(project)
    try:
        path = base / "failure.edge.planta"
        path.write_bytes(ws.artifacts.get_bytes(exported["edge_sha256"]))
    finally:
        ws.close()
    _, payload = Simulator(seed=0).reading(0)
    return path, key, json.loads(payload)


def footprint(base: Path) -> dict[str, Any]:
    out = subprocess.run(["bash", str(ANCHORS / "footprint.sh"), str(ROOT / "edge"),
                          "planta_edge", str(base / "fp")], capture_output=True, text=True,
                         check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def floor_inputs(bundle: Path, key: str, record: dict[str, Any], base: Path) -> tuple[str, str]:
    """The bundle's graph as a file, and the record as the graph's input row."""
    from planta_edge.contract import validate_records
    from planta_edge.model import GRAPH, EdgeModel
    from planta_edge.model_input import build_matrix

    model = EdgeModel.load(bundle, trusted_keys=[key])
    graph = base / "model.onnx"
    graph.write_bytes(model.bundle.members[GRAPH])
    values = validate_records(model.contract, [record]).values
    row = build_matrix(model._inputs, values)[0].tolist()
    return str(graph), json.dumps([None if v != v else v for v in row])


def cold(python: str, bundle: Path, key: str, record: dict[str, Any], reps: int,
         seconds: float, base: Path) -> list[dict[str, Any]]:
    graph, row = floor_inputs(bundle, key, record, base)
    rows = []
    for rep in range(reps):
        t0 = time.perf_counter()
        proc = subprocess.Popen([python, __file__, "--child-floor", graph, row],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        floor = json.loads(proc.stdout.readline())
        floor_s = time.perf_counter() - t0
        proc.wait()
        state = base / f"cold-{rep}"
        state.mkdir()
        t0 = time.perf_counter()
        proc = subprocess.Popen([python, __file__, "--child-cold", str(bundle), key,
                                 json.dumps(record), str(seconds), str(state)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        cold_s = time.perf_counter() - t0
        loop = json.loads(proc.stdout.readline())
        proc.wait()
        rows.append({"cold_start_s": cold_s, "floor_cold_start_s": floor_s,
                     "floor_rss_mb": floor["rss_mb"], "rss_first_mb": first["rss_mb"], **{
            k: loop[k] for k in ("median_us", "p99_us", "committed_median_ms", "calls")},
            "rss_end_mb": loop["rss_mb"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mqtt_rate(python: str, bundle: Path, key: str, messages: int, base: Path) -> dict[str, Any]:
    from planta.services.simulate import Simulator
    from planta_edge.config import MqttConfig
    from planta_edge.mqtt import make_client

    port = _free_port()
    conf = base / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    "max_inflight_messages 1000\nmax_queued_messages 0\n"
                    "max_queued_bytes 0\nlog_type error\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    broker = subprocess.Popen(["taskset", "-c", "1", MOSQUITTO, "-c", str(conf)])
    try:
        time.sleep(0.5)
        # Register the device's persistent session, then go offline: the broker queues.
        session = make_client(MqttConfig(port=port), "bench-device")
        session.connect("127.0.0.1", port)
        session.subscribe("plant/+/readings", qos=1)
        session.loop_start()
        time.sleep(0.5)
        session.disconnect()
        session.loop_stop()
        pub = make_client(MqttConfig(port=port), "bench-publisher", clean=True)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        sim = Simulator(seed=1)
        infos = [pub.publish(*sim.reading(i), qos=1) for i in range(messages)]
        for info in infos:
            info.wait_for_publish(60)
        pub.disconnect()
        pub.loop_stop()
        state = base / "mqtt"
        state.mkdir()
        out = subprocess.run(["taskset", "-c", "0", python, __file__, "--child-mqtt",
                              str(bundle), key, str(port), str(messages), str(state)],
                             capture_output=True, text=True, check=True, timeout=600)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--skip-footprint", action="store_true",
                        help="do not measure the install; run the children with --python")
    parser.add_argument("--python", default=sys.executable,
                        help="with --skip-footprint: the device's Python (a venv with only "
                             "planta-edge, e.g. one footprint.sh made)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "edge.jsonl")
    parser.add_argument("--child-cold", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--child-mqtt", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--child-floor", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_cold:
        b, k, r, s, st = args.child_cold
        child_cold(b, k, r, float(s), st)
        return
    if args.child_floor:
        child_floor(*args.child_floor)
        return
    if args.child_mqtt:
        b, k, p, n, st = args.child_mqtt
        child_mqtt(b, k, int(p), int(n), st)
        return
    base = Path(tempfile.mkdtemp(prefix="planta-bench-edge-"))
    try:
        row: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cpu_count": os.cpu_count()}
        python = args.python
        if not args.skip_footprint:
            row["footprint"] = footprint(base)
            python = str(base / "fp" / "fp-planta_edge" / "bin" / "python")
            print(json.dumps(row["footprint"]), flush=True)
        bundle, key, record = make_bundle(base, args.budget)
        row["bundle_bytes"] = bundle.stat().st_size
        reps = cold(python, bundle, key, record, args.reps, args.seconds, base)
        row["cold"] = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
        row["cold"]["cold_start_s_max"] = max(r["cold_start_s"] for r in reps)
        row["mqtt"] = mqtt_rate(python, bundle, key, args.messages, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))
    print(table(row))


def table(row: dict[str, Any]) -> str:
    c, m = row["cold"], row["mqtt"]
    fp = row.get("footprint") or {}
    size = fp.get("site_packages_mb")
    lines = ["| measure | planta-edge | target |", "|---|---|---|"]
    if size:
        lines.append(f"| install (site-packages, fresh venv) | {size} MB, {fp['packages_added']}"
                     f" packages ({size / MLFLOW_MB:.2f}x MLflow's {MLFLOW_MB} MB) | "
                     f"≤ {MLFLOW_MB / 4:.0f} MB |")
    lines += [
        f"| cold start → first prediction (median of reps, max) | {c['cold_start_s']:.2f} s "
        f"(max {c['cold_start_s_max']:.2f} s); floor in the same run "
        f"{c['floor_cold_start_s']:.2f} s ({c['cold_start_s'] / c['floor_cold_start_s']:.1f}x)"
        " | ≤ 0.5 s |",
        f"| resident memory after the first prediction / after the runs | "
        f"{c['rss_first_mb']:.0f} MB / {c['rss_end_mb']:.0f} MB; floor "
        f"{c['floor_rss_mb']:.0f} MB | ≤ 80 MB |",
        f"| one record, JSON + contract + ONNX (median, p99) | {c['median_us']:.0f} µs, "
        f"{c['p99_us']:.0f} µs | |",
        f"| one record through the runtime, committed (fsync) | {c['committed_median_ms']:.2f} ms"
        " | |",
        f"| MQTT → model → outbox → PUBACK, one core | {m['per_s']:,.0f} readings/s "
        f"({m['acked']:,} in {m['seconds']:.1f} s, {m['committed'] / m['commits']:.0f} per "
        f"commit), RSS {m['rss_mb']:.0f} MB | ≥ 5,000/s |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""A plant on one laptop: AI4I-like machine readings published to an MQTT broker.

Each reading is a row of the bundled AI4I 2020 data (picked at random), published as JSON with
the contract's canonical names to ``plant/<machine>/readings`` (QoS 1), at a set rate, from
``machines`` machines in turn. Two knobs make a demo interesting:

* ``drift``: torque and process temperature creep upward by ``drift`` standard deviations per
  1,000 readings (a worn tool, a failing cooler), which the drift monitor should notice;
* ``faults``: that share of readings is broken the way field data breaks (a missing field, a
  negative torque, text in a number, a payload that is not JSON), which the device refuses with
  the contract's reason and counts.

>>> sim = Simulator(seed=1, drift=0.0, faults=0.0)
>>> topic, payload = sim.reading(0)
>>> topic, sorted(json.loads(payload))[:3]
('plant/machine-1/readings', ['air_temperature_k', 'process_temperature_k', 'rnf'])
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# AI4I 2020 headers -> the contract's canonical names (what `planta ingest` infers).
FIELDS = {"Type": "type", "Air temperature [K]": "air_temperature_k",
          "Process temperature [K]": "process_temperature_k",
          "Rotational speed [rpm]": "rotational_speed_rpm", "Torque [Nm]": "torque_nm",
          "Tool wear [min]": "tool_wear_min", "RNF": "rnf"}
NUMBERS = ("air_temperature_k", "process_temperature_k", "rotational_speed_rpm", "torque_nm",
           "tool_wear_min", "rnf")
FAULTS = ("missing_field", "negative_torque", "text_in_number", "not_json")
# Standard deviations in AI4I 2020, for the drift (torque 9.97 Nm, process temperature 1.48 K).
_STD = {"torque_nm": 9.97, "process_temperature_k": 1.48}


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        out = []
        for row in csv.DictReader(fh):
            rec: dict[str, Any] = {}
            for header, name in FIELDS.items():
                value = row[header]
                rec[name] = value if name == "type" else float(value)
            out.append(rec)
    return out


@dataclass
class SimulationReport:
    """What a run published."""

    sent: int
    faults: dict[str, int]
    duration_s: float
    rate_per_s: float
    topic: str

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "faults": dict(self.faults),
                "duration_s": round(self.duration_s, 3), "rate_per_s": round(self.rate_per_s, 1),
                "topic": self.topic}


class Simulator:
    """Makes readings; :meth:`run` publishes them."""

    def __init__(self, *, machines: int = 5, drift: float = 0.0, faults: float = 0.0,
                 topic: str = "plant/{machine}/readings", seed: int | None = None,
                 data: Path | None = None) -> None:
        if machines < 1 or not 0 <= faults <= 1:
            from planta.errors import InputError

            raise InputError("--machines must be at least 1 and --faults between 0 and 1.")
        # The bundled file itself: planta.services.demo would import the training stack.
        self.rows = _rows(data or Path(str(resources.files("planta") / "data" /
                                           "ai4i2020.csv")))
        self.machines = machines
        self.drift = drift
        self.faults = faults
        self.topic = topic
        self.rng = random.Random(seed)  # nosec B311 - simulated readings, not secrets
        self.fault_counts = dict.fromkeys(FAULTS, 0)

    def reading(self, i: int) -> tuple[str, bytes]:
        """The ``i``-th message: its topic and payload."""
        rec = dict(self.rng.choice(self.rows))
        machine = f"machine-{i % self.machines + 1}"
        if self.drift:
            for name, std in _STD.items():
                rec[name] = round(rec[name] + self.drift * std * i / 1000, 2)
        topic = self.topic.replace("{machine}", machine)
        if self.faults and self.rng.random() < self.faults:
            kind = self.rng.choice(FAULTS)
            self.fault_counts[kind] += 1
            if kind == "not_json":
                return topic, b"torque=41.5;speed=1500"
            if kind == "missing_field":
                rec.pop(self.rng.choice(NUMBERS))
            elif kind == "negative_torque":
                rec["torque_nm"] = -abs(rec["torque_nm"])
            else:
                rec["rotational_speed_rpm"] = "n/a"
        return topic, json.dumps(rec).encode()

    def run(self, client: Any, *, rate: float, count: int | None = None,
            duration_s: float | None = None, stop: Callable[[], bool] = lambda: False,
            qos: int = 1) -> SimulationReport:
        """Publish at ``rate`` messages a second until ``count`` messages, ``duration_s``
        seconds or ``stop()``; waits for the broker's acknowledgements at the end."""
        start = time.monotonic()
        sent, pending = 0, []
        interval = 1.0 / rate if rate > 0 else 0.0
        while not stop():
            if count is not None and sent >= count:
                break
            if duration_s is not None and time.monotonic() - start >= duration_s:
                break
            topic, payload = self.reading(sent)
            pending.append(client.publish(topic, payload, qos=qos))
            sent += 1
            if len(pending) > 1000:
                pending = [p for p in pending if not p.is_published()]
            if interval:
                ahead = start + sent * interval - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        for info in pending:
            info.wait_for_publish(timeout=30)
        elapsed = time.monotonic() - start
        return SimulationReport(sent, {k: v for k, v in self.fault_counts.items() if v},
                                elapsed, sent / elapsed if elapsed else 0.0, self.topic)


__all__ = ["FAULTS", "FIELDS", "SimulationReport", "Simulator"]

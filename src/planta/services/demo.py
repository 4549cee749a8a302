"""`planta demo`: the whole lifecycle on the bundled AI4I 2020 data.

AI4I 2020 Predictive Maintenance Dataset, S. Matzka, HTW Berlin; UCI Machine Learning
Repository (id 601); licensed CC BY 4.0. planta ships the original file unchanged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from planta.core.spec import UseCase
from planta.project import Project
from planta.services.ingest import ingest
from planta.services.score import score_file
from planta.services.versions import train_version
from planta.services.workspace import Workspace

ATTRIBUTION = ("AI4I 2020 Predictive Maintenance Dataset (S. Matzka, HTW Berlin; UCI Machine "
               "Learning Repository, id 601), CC BY 4.0.")
DEMO_OBJECTIVE = "recall>=0.60 and precision>=0.50"


def demo_data() -> Path:
    """Path of the bundled AI4I 2020 CSV."""
    return Path(str(resources.files("planta") / "data" / "ai4i2020.csv"))


@dataclass
class DemoRun:
    """What the demo did, step by step, and where to look."""

    project: Path
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"project": str(self.project), "steps": self.steps, "data": ATTRIBUTION}


def run_demo(folder: Path | None = None, *, budget_s: float = 30.0,
             say: Callable[[str], None] = lambda _: None) -> DemoRun:
    """Run init → use case → ingest → train → promote → score → retrain → rollback → verify."""
    root = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="planta-demo-"))
    run = DemoRun(project=root.resolve())

    def step(name: str, text: str, **data: Any) -> None:
        run.steps.append({"step": name, "text": text} | data)
        say(text)

    project = Project.init(root, name="demo-plant")
    ws = Workspace.from_project(project)
    try:
        step("init", f"Created the project folder {run.project}.")
        usecase = UseCase.from_dict("failure", {"task": "binary", "target": "Machine failure",
                                                "objective": DEMO_OBJECTIVE})
        project.add_usecase(usecase)
        ws.audit.append("usecase_add", "usecase/failure", ws.actor, usecase.to_dict())
        step("usecase", "Use case 'failure': predict 'Machine failure'; objective: "
             f"{usecase.objective.describe()}.")

        # History with labels for training; the last 1,000 rows play "today's production".
        raw = pd.read_csv(demo_data())
        history, new = raw.iloc[:9000], raw.iloc[9000:]
        history_file = root / "history.csv"
        new_file = root / "new_batch.csv"
        history.to_csv(history_file, index=False)
        # Today's export has every column but the answer; the contract ignores the extra ones.
        new.drop(columns=["Machine failure"]).to_csv(new_file, index=False)
        result = ingest(ws, "failure", history_file)
        excluded = ", ".join(e["column"] for e in result.exclusions if not e.get("kept"))
        step("ingest", f"Ingested {result.n_rows:,} rows as dataset version {result.version}; "
             f"{result.n_rejected} set aside. Not used as inputs (leaks or ids): {excluded}.",
             dataset_version=result.version, excluded=excluded)

        first = train_version(ws, "failure", budget_s=budget_s, seed=0)
        step("train", f"Trained version {first.version} ({first.outcome.estimator}) in "
             f"{first.outcome.duration_s:.0f} s: {first.state}. "
             + " ".join(first.outcome.gate.reasons), version=first.version, state=first.state)
        moved = ws.registry.move("failure", first.version, "production", action="promote",
                                 actor=ws.actor, role="admin",
                                 reason="demo: first model for the milling line",
                                 exception=first.state == "rejected")
        step("promote", f"Promoted version {moved.version} to production (approved by "
             f"{moved.actor}).")

        scored = root / "scored.csv"
        s = score_file(ws, "failure", new_file, scored)
        rules = ", ".join(f"{rule}: {n}" for rule, n in s.rejected_by_rule.items())
        step("score", f"Scored {s.n_rows:,} new rows with version {s.model_version} "
             f"({s.n_rejected} rejected by the contract{': ' + rules if rules else ''}) → "
             f"{scored.name}.", output=str(scored))

        second = train_version(ws, "failure", budget_s=max(5.0, budget_s / 3), seed=1,
                               note="demo: a second, quicker search")
        ws.registry.move("failure", second.version, "production", action="promote",
                         actor=ws.actor, role="admin", reason="demo: try the second model",
                         exception=second.state == "rejected")
        step("retrain", f"Trained and promoted version {second.version}.",
             version=second.version)
        back = ws.registry.rollback("failure", actor=ws.actor, role="admin",
                                    reason="demo: back to the first model")
        step("rollback", f"Rolled production back to version {back.version}.",
             version=back.version)

        check = ws.audit.verify()
        step("audit", f"Audit trail intact: {check.count} events, head {check.head[:16]}…",
             ok=check.ok, head=check.head)
        step("next", f"Look around: cd {run.project} && planta models failure && "
             "planta audit log; or run `planta serve` there and open "
             "http://127.0.0.1:8000/ui in a browser. Data: " + ATTRIBUTION)
    finally:
        ws.close()
    return run


__all__ = ["ATTRIBUTION", "DemoRun", "demo_data", "run_demo"]

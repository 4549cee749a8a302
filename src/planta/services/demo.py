"""`planta demo`: the whole lifecycle on the bundled AI4I 2020 data.

AI4I 2020 Predictive Maintenance Dataset, S. Matzka, HTW Berlin; UCI Machine Learning
Repository (id 601); licensed CC BY 4.0. planta ships the original file unchanged.

What it says comes from the message catalogue (``demo.*`` keys in planta/locale/), in the new
project's language (``PLANTA_LANG``).
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
from planta.i18n import translator
from planta.project import Project
from planta.services.ingest import ingest
from planta.services.score import score_file
from planta.services.versions import train_version
from planta.services.workspace import Workspace
from planta.words import gate_lines, objective_words

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
    t = translator(project.settings.lang)
    try:
        step("init", t("demo.init", folder=run.project))
        usecase = UseCase.from_dict("failure", {"task": "binary", "target": "Machine failure",
                                                "objective": DEMO_OBJECTIVE})
        project.add_usecase(usecase)
        ws.audit.append("usecase_add", "usecase/failure", ws.actor, usecase.to_dict())
        step("usecase", t("demo.usecase", objective=objective_words(usecase.objective, t)))

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
        step("ingest", t("demo.ingest", rows=f"{result.n_rows:,}", version=result.version,
                         rejected=result.n_rejected, excluded=excluded),
             dataset_version=result.version, excluded=excluded)

        first = train_version(ws, "failure", budget_s=budget_s, seed=0)
        step("train", t("demo.train", version=first.version, estimator=first.outcome.estimator,
                        seconds=f"{first.outcome.duration_s:.0f}",
                        state=t(f"state.{first.state}"))
             + " " + " ".join(gate_lines(first.outcome.gate.to_dict(), t)),
             version=first.version, state=first.state)
        moved = ws.registry.move("failure", first.version, "production", action="promote",
                                 actor=ws.actor, role="admin",
                                 reason="demo: first model for the milling line",
                                 exception=first.state == "rejected")
        step("promote", t("demo.promote_exception" if first.state == "rejected" else "demo.promote",
                          version=moved.version, actor=moved.actor))

        scored = root / "scored.csv"
        s = score_file(ws, "failure", new_file, scored)
        rules = ", ".join(f"{rule}: {n}" for rule, n in s.rejected_by_rule.items())
        step("score", t("demo.score", rows=f"{s.n_rows:,}", version=s.model_version,
                        rejected=s.n_rejected, rules=": " + rules if rules else "",
                        output=scored.name), output=str(scored))

        second = train_version(ws, "failure", budget_s=max(5.0, budget_s / 3), seed=1,
                               note="demo: a second, quicker search")
        ws.registry.move("failure", second.version, "production", action="promote",
                         actor=ws.actor, role="admin", reason="demo: try the second model",
                         exception=second.state == "rejected")
        step("retrain", t("demo.retrain", version=second.version, state=t(f"state.{second.state}")),
             version=second.version)
        back = ws.registry.rollback("failure", actor=ws.actor, role="admin",
                                    reason="demo: back to the first model")
        step("rollback", t("demo.rollback", version=back.version), version=back.version)

        check = ws.audit.verify()
        step("audit", t("demo.audit" if check.ok else "demo.audit_broken", count=check.count,
                        head=check.head[:16]),
             ok=check.ok, head=check.head)
        step("next", t("demo.next", folder=run.project, data=ATTRIBUTION))
    finally:
        ws.close()
    return run


__all__ = ["ATTRIBUTION", "DemoRun", "demo_data", "run_demo"]

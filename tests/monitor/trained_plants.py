"""A small trained project for monitoring tests (imported by the test modules: a conftest
cannot be imported by name, every test folder has one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def trained_plant(root: Path, env: dict[str, str] | None = None) -> tuple[Any, Any, Any]:
    """A project at ``root`` with use case ``failure`` (objective recall>=0.5) trained on the
    first 2,000 AI4I rows (2 s budget) and in production: (workspace, scorer, AI4I frame)."""
    import pandas as pd

    from planta.core.spec import UseCase
    from planta.project import Project
    from planta.services.demo import demo_data
    from planta.services.ingest import ingest
    from planta.services.predict import Scorer
    from planta.services.versions import load_bundle, train_version
    from planta.services.workspace import Workspace

    Project.init(root, name="plant")
    project = Project.open(root, env=env)
    project.add_usecase(UseCase.from_dict("failure", {
        "task": "binary", "target": "Machine failure", "objective": "recall>=0.5"}))
    ws = Workspace.from_project(project)
    raw = pd.read_csv(demo_data())
    raw.iloc[:2000].to_csv(root / "history.csv", index=False)
    ingest(ws, "failure", root / "history.csv")
    trained = train_version(ws, "failure", budget_s=2.0)
    ws.registry.move("failure", trained.version, "production", action="promote", actor="ana",
                     role="admin", reason="test", exception=trained.state == "rejected")
    return ws, Scorer.from_bundle(load_bundle(ws, "failure"), version=trained.version), raw


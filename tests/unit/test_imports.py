"""The layers hold: core and the edge package pull in nothing they must not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout)}


def test_edge_package_needs_only_numpy_and_stdlib() -> None:
    loaded = _modules_after("import planta_edge.contract, planta_edge.bundle, "
                            "planta_edge.model_input")
    for heavy in ("pandas", "sklearn", "lightgbm", "xgboost", "fastapi", "sqlalchemy", "planta",
                  "pyarrow", "scipy"):
        assert heavy not in loaded, f"planta_edge pulled in {heavy}"


def test_core_has_no_store_web_or_cli() -> None:
    loaded = _modules_after("import planta.core.spec, planta.core.bundle, planta.core.contract, "
                            "planta.core.validation, planta.core.leakage, planta.core.profile")
    for outer in ("sqlalchemy", "fastapi", "typer", "alembic", "rich"):
        assert outer not in loaded, f"planta.core pulled in {outer}"


@pytest.mark.parametrize("module", ["planta", "planta.cli.app"])
def test_entry_points_import_light(module: str) -> None:
    loaded = _modules_after(f"import {module}")
    for heavy in ("lightgbm", "xgboost", "sklearn", "optuna", "pandas", "sqlalchemy"):
        assert heavy not in loaded, f"import {module} pulled in {heavy}"

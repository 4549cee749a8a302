"""The CLI speaks the catalogue's languages: ``PLANTA_LANG=es`` turns its output Spanish.

Real commands through Typer's runner in a temporary project (init, use case, ingest, train,
models, an error), the same catalogue as the web pages.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from planta.cli.app import app
from planta.cli.output import violation_text
from planta.services.demo import demo_data
from planta_edge.contract import Violation

runner = CliRunner()


def _run(cwd: Path, lang: str, *args: str) -> tuple[int, str]:
    import os

    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(app, list(args), env={"PLANTA_LANG": lang, "PLANTA_USER": "ana"})
    finally:
        os.chdir(old)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lang") / "plant"
    code, out = _run(root.parent, "es", "init", str(root))
    assert code == 0 and "Proyecto" in out and "Siguiente paso" in out, out
    return root


def test_usecase_and_ingest_report_in_spanish(project: Path) -> None:
    code, out = _run(project, "es", "usecase", "add", "failure", "--target", "Machine failure",
                     "--objective", "recall>=0.80 and precision>=0.50")
    assert code == 0, out
    assert "Caso de uso failure: predecir «Machine failure» (sí / no)." in out
    assert "Objetivo: detectar al menos el 80 % de los casos reales" in out
    pd.read_csv(demo_data()).iloc[:1500].to_csv(project / "h.csv", index=False)
    code, out = _run(project, "es", "ingest", "failure", "h.csv")
    assert code == 0, out
    assert "nueva versión de datos 1 de failure" in out and "filas leídas" in out
    assert "Columnas que no se usan como entradas del modelo" in out
    # The same command in English says the English line (the default language).
    code, out = _run(project, "en", "ingest", "failure", "h.csv")
    assert "same data as dataset version 1" in out


def test_train_summary_verdict_and_models_in_spanish(project: Path) -> None:
    if not (project / "h.csv").exists():
        pytest.skip("needs the ingest of the test above")
    code, out = _run(project, "es", "train", "failure", "--budget", "2")
    assert code in (0, 3), out
    assert "De cada 100 casos reales de «Machine failure»" in out, out
    assert "Comprobación del objetivo" in out
    assert ("Cumple el objetivo." if code == 0 else "No cumple el objetivo:") in out
    code, out = _run(project, "es", "models", "failure")
    assert code == 0 and "Versiones del modelo de failure" in out, out


def test_errors_in_spanish(project: Path) -> None:
    code, out = _run(project, "es", "ingest", "nope", "h.csv")
    assert code == 1 and out.startswith("Error:") and "Qué hacer:" in out, out
    v = Violation(row=213, field="torque_nm", rule="below_min", value=-3.0,
                  message='Row 214, column "torque_nm": -3.0 is below the contract minimum 3.8.')
    import os

    old = os.environ.get("PLANTA_LANG")
    os.environ["PLANTA_LANG"] = "es"
    try:
        assert violation_text(v) == ("fila 214, columna «torque_nm»: -3 está por debajo del "
                                     "mínimo aceptado: el modelo nunca aprendió con valores "
                                     "tan bajos")
    finally:
        os.environ.pop("PLANTA_LANG")
        if old is not None:
            os.environ["PLANTA_LANG"] = old
    assert violation_text(v) == v.message  # English: the contract's own sentence, with 3.8


def test_a_project_folder_copy_keeps_working(project: Path, tmp_path: Path) -> None:
    """The language is the caller's, not the project's: one project, two languages."""
    copy = tmp_path / "plant"
    shutil.copytree(project, copy)
    _, es = _run(copy, "es", "usecase", "list")
    _, en = _run(copy, "en", "ingest", "nope", "h.csv")
    assert "failure" in es and "What to do:" in en

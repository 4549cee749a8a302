"""Errors, reports and the model card speak Spanish with ``PLANTA_LANG=es`` (issue 7).

The sentences services and the core write (errors, contract rule violations, the data-quality
and leak report, the monitoring report) carry their catalogue key and values; the CLI and the
pages say them in the chosen language, while logs and JSON keep the English text. Real commands
through Typer's runner on a copy of the served test project, a real server for the card.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from planta.cli.app import app
from planta.errors import NotFoundError, error_words, keyed, violation_words
from planta.i18n import catalogue, say, translator
from planta_edge.contract import Contract, Field, validate_columns, validate_records

runner = CliRunner()
SRC = Path(__file__).resolve().parents[2] / "src" / "planta"
# English words that never appear in a Spanish sentence of ours (names in the user's data,
# commands in backticks and «quoted» names are taken out before looking).
_ENGLISH = re.compile(r"\b(the|is|are|was|were|not|file|rows?|columns?|value|missing|check|"
                      r"what to do|which|has|have|with|this|there|no such|model version|"
                      r"use case|outside|drift(ed)?|report|window|answers?)\b", re.IGNORECASE)


def english_left(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """English words in ``text`` once commands, «names» and ``allowed`` data are taken out."""
    text = re.sub(r"`[^`]*`|«[^»]*»|'[^']*'", " ", text)
    for word in allowed:
        text = text.replace(word, " ")
    return sorted({m.group(0) for m in _ENGLISH.finditer(text)})


def run_cli(cwd: Path, lang: str, *args: str, user: str = "ana", **env: str) -> tuple[int, str]:
    """``planta *args`` in ``cwd`` speaking ``lang`` as ``user``: exit code and output."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(app, list(args), env={"PLANTA_LANG": lang, "PLANTA_USER": user,
                                                     "COLUMNS": "250"} | env)
    finally:
        os.chdir(old)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


_run = run_cli


def copy_of(served_project: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of the served project (version 1 in production) for one test module."""
    root = tmp_path_factory.mktemp(name) / "plant"
    shutil.copytree(served_project, root)
    return root


def one_line(out: str) -> str:
    """CLI output with Rich's line wrapping undone."""
    return " ".join(out.split())


@pytest.fixture(scope="module")
def plant(served_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the served project (version 1 in production) and a few bad files."""
    root = copy_of(served_project, tmp_path_factory, "lang_errors")
    new = pd.read_csv(root / "new.csv").iloc[:40]
    text = new.copy()
    text["Torque [Nm]"] = text["Torque [Nm]"].astype(object)
    text.iloc[2, text.columns.get_loc("Torque [Nm]")] = "high"
    text.to_csv(root / "text.csv", index=False)
    new.drop(columns=["Torque [Nm]"]).to_csv(root / "no_torque.csv", index=False)
    history = pd.read_csv(root / "history.csv").iloc[:200]
    history.drop(columns=["Machine failure"]).to_csv(root / "no_target.csv", index=False)
    all_bad = history.copy()
    all_bad["Torque [Nm]"] = "high"
    all_bad.to_csv(root / "all_bad.csv", index=False)
    (root / "old.xls").write_bytes(b"not really excel")
    yield root


def test_score_with_text_and_a_missing_column_says_why_in_spanish(plant: Path) -> None:
    code, out = _run(plant, "es", "score", "failure", "text.csv", "-o", "t.csv")
    assert code == 0, out
    assert "1 fila no se puntuó" in out
    assert "un valor no era del tipo de la columna (por ejemplo, texto en una columna de " \
           "números) (type): 1" in out
    code, out = _run(plant, "es", "score", "failure", "no_torque.csv", "-o", "m.csv")
    assert code == 0, out
    assert "falta en el archivo una columna que el contrato de datos exige (missing_field): " \
           "40" in out
    code, en = _run(plant, "en", "score", "failure", "no_torque.csv", "-o", "m2.csv")
    assert "a column the contract needs is missing from the file (missing_field): 40" in en


@pytest.mark.parametrize(("args", "spanish"), [
    (("ingest", "nope", "history.csv"),
     "Error: No hay ningún caso de uso «nope» en este proyecto (existen: failure).\n"
     "Qué hacer: Añádalo con `planta usecase add`."),
    (("ingest", "failure", "absent.csv"),
     "Error: absent.csv: el archivo no existe.\n"
     "Qué hacer: Revise la carpeta y el nombre del archivo."),
    (("ingest", "failure", "old.xls"),
     "Error: old.xls: el formato antiguo de Excel (.xls) no se admite.\n"
     "Qué hacer: Ábralo en Excel y guárdelo como .xlsx o como CSV."),
    (("promote", "failure", "99", "--reason", "x"),
     "Error: El caso de uso «failure» no tiene la versión de modelo 99 (tiene las versiones "
     "de la 1 a la 2)."),
    (("ingest", "failure", "no_target.csv"),
     "Error: no_target.csv: la columna a predecir «Machine failure» no está en el archivo"),
])
def test_errors_users_meet_most_are_spanish(plant: Path, args: tuple[str, ...],
                                            spanish: str) -> None:
    code, out = _run(plant, "es", *args)
    assert code == 1 and out.startswith(spanish), out
    assert english_left(out, ("Machine failure", "failure", "Product ID", "Air temperature",
                              "Process temperature", "Rotational speed", "Torque",
                              "Tool wear", "planta.toml", "UDI", "Type")) == [], out


def test_json_keeps_the_english_message(plant: Path) -> None:
    code, out = _run(plant, "es", "ingest", "nope", "history.csv", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["message"] == (
        "There is no use case 'nope' in this project (known: failure).")
    assert doc["hint"] == "Add it with `planta usecase add`."


def test_every_row_broken_names_rule_row_and_value_in_spanish(plant: Path) -> None:
    code, out = _run(plant, "es", "ingest", "failure", "all_bad.csv")
    assert code == 1, out
    first = out.splitlines()[0]
    assert first.startswith("Error: Las 200 filas incumplen el contrato de datos; el motivo más "
                            "frecuente (200 filas): un valor no era del tipo de la columna"), out
    assert "Primer caso: Fila 1, columna «Torque [Nm]»: «high» no es un número." in first
    assert "  - Fila 1, columna «Torque [Nm]»: «high» no es un número" in out
    assert english_left(first) == [], first


def test_data_quality_and_leak_report_in_spanish(plant: Path) -> None:
    frame = pd.read_csv(plant / "history.csv").iloc[:1500]
    frame.loc[3, "Torque [Nm]"] = -5.0
    frame.loc[4, "Type"] = "Z"
    frame.to_csv(plant / "odd.csv", index=False)
    code, out = _run(plant, "es", "ingest", "failure", "odd.csv")
    assert code == 0, out
    assert "Apartadas: 1 fila (< 0.1 %), porque un valor era una categoría que el modelo nunca " \
           "ha visto; la primera: Fila 5, columna «Type»: «Z» es una categoría que el modelo " \
           "nunca ha visto (conocidas: H, L, M)." in out
    assert "«Machine failure» es 1 en" in out
    assert "UDI: UDI sube en cada fila, de 1 a 1,500 de 1 en 1: cuenta filas, no es una " \
           "lectura." in out
    assert "Juntas, TWF, PWF y OSF reproducen «Machine failure»" in out
    lines = [line for line in out.splitlines() if line.startswith("  • ")]
    assert len(lines) > 8
    data = ("Machine failure", "Product ID", "Air temperature [K]", "Process temperature [K]",
            "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]", "UDI", "Type")
    assert [line for line in lines if english_left(line, data)] == []
    code, en = _run(plant, "en", "ingest", "failure", "odd.csv")
    assert "1 row (< 0.1 %) were set aside because a value was a category the model has never " \
           "seen" in en


def test_monitor_report_in_spanish(plant: Path) -> None:
    code, out = _run(plant, "es", "monitor", "failure", "--current", "new.csv", "--html",
                     "informe.html")
    assert code == 0, out
    # The console summary too: headings, states, quality line and the verdict.
    assert "Calidad:" in out and "Informe HTML:" in out and "Cambio en cada entrada" in out
    assert "Quality:" not in out and "model version" not in out
    page = (plant / "informe.html").read_text(encoding="utf-8")
    assert '<html lang="es">' in page and "Informe de seguimiento: failure" in page
    assert "Calidad de los datos" in page and "en palabras sencillas" in page
    visible = re.sub(r"<style>.*?</style>|<svg.*?</svg>|<[^>]+>", " ", page, flags=re.S)
    data = ("Machine failure", "Air temperature [K]", "Process temperature [K]",
            "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]", "Type", "new.csv",
            "air_temperature_k", "process_temperature_k", "rotational_speed_rpm", "torque_nm",
            "tool_wear_min", "failure", "planta.toml")
    assert english_left(visible, data) == [], english_left(visible, data)
    _run(plant, "en", "monitor", "failure", "--current", "new.csv", "--html", "report.html")
    assert "Monitoring report: failure" in (plant / "report.html").read_text(encoding="utf-8")


def test_model_card_in_spanish(server: object) -> None:
    with server.client() as c:  # type: ignore[attr-defined]
        page = c.get("/ui/usecases/failure/versions/1/card", params={"lang": "es"})
    assert page.status_code == 200
    assert '<html lang="es">' in page.text
    visible = re.sub(r"<head>.*?</head>|<script.*?</script>|<svg.*?</svg>|<[^>]+>", " ",
                     page.text, flags=re.S)
    data = ("Machine failure", "Air temperature [K]", "Process temperature [K]",
            "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]", "Type", "failure")
    assert english_left(visible, data) == [], english_left(visible, data)


def test_english_from_the_catalogue_is_the_contracts_own_sentence() -> None:
    """The edge package writes English; the catalogue's English must say the same words."""
    c = Contract(fields=(
        Field("speed_rpm", "number", label="Speed [rpm]", minimum=1000.0, maximum=3000.0,
              physical_min=0.0, unit="rpm"),
        Field("kind", "category", categories=("L", "M")),
        Field("count", "integer"),
        Field("on", "boolean"),
        Field("at", "datetime")))
    result = validate_columns(c, {"Speed [rpm]": [1500.0, -5.0, "fast", 5000.0, 500.0],
                                  "kind": ["L", "X", "M", "L", "M"],
                                  "count": [1, 2.5, 3, 4, 5],
                                  "on": [1, 0, "maybe", 1, 0],
                                  "at": ["2024-01-01", "yesterday", "2024-01-02", "2024-01-03",
                                         "2024-01-04"]})
    records = validate_records(c, [{"Speed [rpm]": 1500.0, "kind": "L", "count": 1, "on": 1,
                                    "at": "2024-01-01", "colour": "red"}])
    violations = [*result.violations, *records.violations]
    rules = {v.rule for v in violations}
    assert rules >= {"type", "below_physical", "above_max", "below_min", "unknown_category",
                     "not_integer", "extra_field"}, rules
    en, es = translator("en"), translator("es")
    for v in violations:
        assert v.key, v
        assert violation_words(v, en) == v.message
        spanish = violation_words(v, es)
        assert spanish != v.message and english_left(spanish, ("Speed [rpm]", "colour",
                                                               "red")) == [], spanish


def test_keyed_error_keeps_english_and_says_spanish() -> None:
    error = keyed(NotFoundError, "err.no_model_version", usecase="press", version=7,
                  known={"key": "err.versions.span", "params": {"low": 1, "high": 3}})
    assert error.message == "Use case 'press' has no model version 7 (it has versions 1 to 3)."
    assert error.to_dict()["message"] == error.message  # the API's body: English, unchanged
    message, hint = error_words(error, translator("es"))
    assert message == ("El caso de uso «press» no tiene la versión de modelo 7 (tiene las "
                       "versiones de la 1 a la 3).")
    assert hint == "Véalas con `planta models press`."
    # An error raised without a key keeps its own words in every language.
    assert error_words(NotFoundError("plain", hint="h"), translator("es")) == ("plain", "h")
    assert say({"items": ["a", "b", "c"]}, translator("es")) == "a, b y c"


_LITERAL_KEY = re.compile(
    r"""\b(?:keyed\(\s*\w+,\s*|said\(\s*|phrase\(\s*)["']([a-z_]+\.[a-z0-9_.]+)["']""")


def test_every_key_the_code_says_exists_in_both_languages() -> None:
    used: set[str] = set()
    for path in SRC.rglob("*.py"):
        used.update(_LITERAL_KEY.findall(path.read_text(encoding="utf-8")))
    assert {"err.no_usecase", "quality.set_aside", "leak.flag", "err.file.missing"} <= used
    en, es = catalogue("en"), catalogue("es")
    assert sorted(k for k in used if k not in en or k not in es) == []
    for key in (k for k in en if k.startswith(("err.", "violation.", "quality.", "leak.",
                                               "report.", "rule_words."))):
        assert set(re.findall(r"{(\w+)}", en[key])) == set(re.findall(r"{(\w+)}", es[key])), key

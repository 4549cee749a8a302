"""Lifecycle refusals, planta.toml mistakes and token errors in Spanish (issue 7).

``PLANTA_LANG=es`` says them from the catalogue; the English text (logs, ``--json``, the API)
stays word for word what it was. Real commands through Typer's runner on a copy of the served
test project (version 1 in production, version 2 trained by "trainer").
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lang_errors import copy_of, english_left, one_line, run_cli

from planta.i18n import translator

_run = run_cli


@pytest.fixture(scope="module")
def plant(served_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield copy_of(served_project, tmp_path_factory, "lang_lifecycle")


def test_four_eyes_refusal_in_spanish_and_english_unchanged(plant: Path) -> None:
    code, out = _run(plant, "en", "models", "failure", "--json")
    second = next(m for m in json.loads(out) if m["version"] == 2)
    assert second["trained_by"] == "trainer"
    # A rejected version needs --exception, a candidate must not have it.
    extra = ("--exception",) if second["state"] == "rejected" else ()
    args = ("promote", "failure", "2", "--reason", "mejor", *extra)
    code, es = _run(plant, "es", *args, user="trainer", PLANTA_FOUR_EYES="1")
    assert code == 1, es
    assert one_line(es) == (
        "Error: trainer entrenó la versión 2 de «failure» y la regla de los cuatro ojos está "
        "activada: la decisión de pasar a producción le corresponde a otra persona. "
        "Qué hacer: Pídaselo a otro aprobador.")
    code, en = _run(plant, "en", *args, "--json", user="trainer", PLANTA_FOUR_EYES="1")
    doc = json.loads(en)
    assert code == 1 and doc["message"] == (
        "trainer trained version 2 of 'failure' and four-eyes approval is on: someone else "
        "must promote it.") and doc["hint"] == "Ask another approver."


def test_a_move_the_table_forbids_in_spanish(plant: Path) -> None:
    code, es = _run(plant, "es", "canary", "failure", "1", "--reason", "probar")
    assert code == 1, es
    assert one_line(es).startswith(
        "Error: La versión 1 de «failure» está en producción: no puede pasar a canario. "
        "Qué hacer: Una versión sale de producción solo cuando otra pasa a producción"), es
    assert english_left(es) == [], es
    code, en = _run(plant, "en", "canary", "failure", "1", "--reason", "x", "--json")
    assert json.loads(en)["message"] == \
        "Version 1 of 'failure' is production: it cannot go to canary."


def test_a_bad_objective_in_planta_toml_in_spanish(plant: Path, tmp_path: Path) -> None:
    root = tmp_path / "plant"
    shutil.copytree(plant, root)
    toml = root / "planta.toml"
    text = toml.read_text(encoding="utf-8")
    assert "recall>=0.10 and precision>=0.10" in text
    toml.write_text(text.replace("recall>=0.10 and precision>=0.10", "recall>=0.8 and speed>=1"),
                    encoding="utf-8")
    code, es = _run(root, "es", "models", "failure")
    assert code == 1, es
    assert one_line(es).startswith(
        "Error: Objetivo «recall>=0.8 and speed>=1»: «speed» no es una medida que planta "
        "conozca. Qué hacer: Medidas que se pueden usar:"), es
    code, en = _run(root, "en", "models", "failure", "--json")
    assert json.loads(en)["message"] == \
        "Objective 'recall>=0.8 and speed>=1': unknown metric 'speed'."
    toml.write_text(text.replace("recall>=0.10 and precision>=0.10", "recall>="),
                    encoding="utf-8")
    code, es = _run(root, "es", "models", "failure")
    assert code == 1 and one_line(es).startswith(
        "Error: Objetivo «recall>=»: no se entiende «recall>=». Qué hacer: Escriba "
        "condiciones como"), es


def test_a_bad_token_role_in_spanish(plant: Path) -> None:
    code, es = _run(plant, "es", "token", "create", "--name", "luis", "--role", "jefe")
    assert code == 1, es
    assert one_line(es).startswith("Error: «jefe» no es un rol de token. Qué hacer: Use uno "
                                    "de estos: viewer, operator, approver, admin."), es
    code, en = _run(plant, "en", "token", "create", "--name", "luis", "--role", "jefe",
                    "--json")
    doc = json.loads(en)
    assert doc["message"] == "'jefe' is not a token role."
    assert doc["hint"] == ("Use one of viewer, operator, approver, admin: viewer reads, "
                           "operator scores and sends feedback, approver promotes models, "
                           "admin manages tokens.")
    code, es = _run(plant, "es", "token", "revoke", "nadie")
    assert code == 1 and one_line(es) == (
        "Error: Ningún token tiene el id o el nombre «nadie». Qué hacer: Vea los tokens con "
        "`planta token list --all`."), es


def test_a_successful_promote_and_rollback_are_said_in_spanish(plant: Path,
                                                               tmp_path: Path) -> None:
    root = tmp_path / "plant"
    shutil.copytree(plant, root)
    code, out = _run(root, "en", "models", "failure", "--json")
    second = next(m for m in json.loads(out) if m["version"] == 2)
    extra = ("--exception",) if second["state"] == "rejected" else ()
    code, es = _run(root, "es", "promote", "failure", "2", "--reason", "mejor", *extra)
    assert code == 0, es
    assert "failure: versión 2 → producción (promote, por ana: mejor)." in es
    assert "En servicio: la versión 2 responde todas las peticiones" in es
    code, es = _run(root, "es", "rollback", "failure", "--reason", "volver")
    assert code == 0 and "failure: versión 1 → producción (rollback, por ana: volver)." in es
    code, es = _run(root, "es", "audit", "verify")
    assert code == 0 and "El registro de auditoría está intacto" in es
    assert english_left(es) == [], es


def test_spanish_plurals_say_one_thing_in_the_singular() -> None:
    es, en = translator("es"), translator("en")
    assert es("cli.score.rejected", rows="1").startswith("1 fila no se puntuó porque incumple")
    assert es("cli.score.rejected", rows="2").startswith("2 filas no se puntuaron")
    assert es("cli.audit.intact", count=1, head="ab").endswith("1 evento. Huella de cabeza: ab")
    assert en("cli.audit.intact", count=2, head="ab").endswith("2 events. Head hash: ab")
    # A key without a singular form is the same for every count; `key` may be a value too.
    assert es("set.not_bool", key="policy.four_eyes", value="'si'") == \
        "El ajuste policy.four_eyes = 'si' no es true ni false."

"""Registry refusals (rollback, canary share, a second canary) in Spanish (issue 7).

``PLANTA_LANG=es`` says them from the catalogue; without it the English (logs, ``--json``, the
API) is word for word what it was. Real commands through Typer's runner on a copy of the served
test project (version 1 in production, the first one: nothing earlier to roll back to).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lang_errors import copy_of, english_left, one_line, run_cli

from planta.errors import InputError, error_words
from planta.i18n import translator


@pytest.fixture(scope="module")
def plant(served_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield copy_of(served_project, tmp_path_factory, "lang_monitoring")


def test_rollback_with_nothing_earlier_in_spanish_and_english_unchanged(plant: Path) -> None:
    args = ("rollback", "failure", "--reason", "volver")
    code, es = run_cli(plant, "es", *args)
    assert code == 1, es
    assert one_line(es) == (
        "Error: No hay ninguna versión anterior de «failure» a la que volver: la versión 1 está "
        "en producción y fue la primera, o las versiones anteriores ya se devolvieron. "
        "Qué hacer: Pase otra versión a producción con `planta promote failure <versión> "
        "--reason '...'`.")
    assert english_left(es) == [], es
    code, en = run_cli(plant, "en", *args, "--json")
    doc = json.loads(en)
    assert code == 1 and doc["message"] == (
        "There is no earlier production version of 'failure' to roll back to: version 1 is in "
        "production and was the first, or the versions before it were rolled back already.")
    assert doc["hint"] == "Promote another version with `planta promote failure <version> " \
        "--reason '...'`."


def test_canary_share_refusals_in_spanish(plant: Path) -> None:
    code, es = run_cli(plant, "es", "canary", "failure", "2", "--share", "1.5",
                       "--reason", "probar")
    assert code in (1, 2), es
    assert "La parte del canario debe ser un número entre 0 y 1, no 1.5." in one_line(es), es
    from planta.store.registry import _check_share
    with pytest.raises(InputError) as caught:
        _check_share(1.5)
    assert caught.value.message == "A canary share must be a number between 0 and 1, not 1.5."
    assert caught.value.hint == "0.1 sends one live request in ten to the canary."
    message, hint = error_words(caught.value, translator("es"))
    assert message == "La parte del canario debe ser un número entre 0 y 1, no 1.5."
    assert hint == "0.1 envía al canario una de cada diez peticiones en servicio."


def test_a_bad_rule_condition_in_spanish_and_english_unchanged() -> None:
    from planta.core.rules import parse_rule
    from planta.errors import ConfigError
    with pytest.raises(ConfigError) as caught:
        parse_rule("psi(torque_nm) > high", name="par", usecase="failure")
    assert caught.value.message == (
        "Rule 'par' of use case 'failure': at position 18 of 'psi(torque_nm) > high', expected "
        "a number or 'objective', found 'high'.")
    message, hint = error_words(caught.value, translator("es"))
    assert message == (
        "La regla «par» del caso de uso «failure»: en la posición 18 de 'psi(torque_nm) > high' "
        "se esperaba un número u 'objective' y se encontró 'high'.")
    assert hint is not None and hint.startswith("Escriba reglas como:")
    with pytest.raises(ConfigError) as joined:
        parse_rule("torque drift > 2")
    assert joined.value.hint is not None and joined.value.hint.startswith(
        "Signal names have no spaces: did you mean torque_drift? Write rules like:")
    _, hint = error_words(joined.value, translator("es"))
    assert hint is not None and hint.startswith("Los nombres de señal no llevan espacios: "
                                                "¿quería decir torque_drift?")
    with pytest.raises(ConfigError) as ended:
        parse_rule("recall <")
    assert ended.value.message.endswith("found the end.")
    assert error_words(ended.value, translator("es"))[0].endswith("se encontró el final.")


def test_performance_console_in_spanish_and_english_unchanged(plant: Path) -> None:
    code, es = run_cli(plant, "es", "performance", "failure", "--since", "3650d")
    assert code == 0, es
    line = one_line(es)
    assert "failure: objetivo " in line and "versión del modelo 1" in line, es
    assert ("ventana (UTC)" in line and "con resultado real" in line) or \
        "No hay predicciones en este periodo" in line, es
    # The goal in plain Spanish words, not the English ones the series keeps.
    assert "al menos" in line and "at least" not in line, es
    # The story under the table: at least the validation figure, in Spanish.
    assert "cuando se validó" in line and "when it was validated" not in line, es
    code, en = run_cli(plant, "en", "performance", "failure", "--since", "3650d")
    line = one_line(en)
    assert code == 0 and "failure: goal " in line and "model version 1." in line, en
    assert ("window (UTC)" in line and "with outcome" in line) or \
        "No predictions in this period. Widen it (for example --since 90d)." in line, en

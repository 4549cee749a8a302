"""What planta says in Spanish beyond the pages: the performance story, alerts' own words,
job and HTTP refusals (with their catalogue key in the API body), edge errors, and numbers
written the Spanish way (``1.234,5``) where a person reads them.

Real pieces where they are cheap: a real project folder and store for the alert actions, a
real socket for a webhook nobody answers, a real ``planta serve`` for the error bodies.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from planta.core.metrics import Estimate
from planta.core.performance import judge, sentence
from planta.core.spec import Task, parse_objective
from planta.errors import ConfigError, StateError, error_words, keyed
from planta.i18n import LOCALE_DIRS, number, said, said_number, say, translator
from planta.project import Project
from planta.server.errors import accepted_lang, keyed_problem, problem
from planta.services.alerts import (
    AlertService,
    DeliveryError,
    failure_words,
    post_json,
    values_words,
)
from planta.services.jobs import Worker
from planta.services.performance import PerformanceSeries, PerformanceWindow
from planta.services.workspace import Workspace
from planta.store.jobs import Job, JobQueue
from planta.ui.performance import cell
from planta_edge.errors import ContractError, PlantaError

ES, EN = translator("es"), translator("en")


# -- numbers -----------------------------------------------------------------------------------
def test_numbers_are_written_the_readers_way() -> None:
    assert number(1234.5, "es", 1) == "1.234,5"
    assert number(1234.5, "en", 1) == "1,234.5"
    assert number(0.8412, "es", 2) == "0,84" and number(84, "es", 0) + " %" == "84 %"
    assert number(2_500_000, "es") == "2.500.000" and number(2_500_000, "en") == "2,500,000"
    assert number(0.0456, "es") == "0,0456" and number(0.0456, "en") == "0.0456"
    # Kept as data, a number is written when the sentence is said, in that language.
    doc = said("perf.span.days", n=said_number(1.5))
    assert say(doc, ES) == "tanda de 1,5 días" and say(doc, EN) == "1.5 days"
    assert json.loads(json.dumps(doc)) == doc  # JSON carries it as a machine number


# -- the performance story ---------------------------------------------------------------------
def _series(notes_said: list[Any]) -> PerformanceSeries:
    objective = parse_objective("recall>=0.8", Task.BINARY)
    day = datetime(2026, 11, 5, tzinfo=UTC)
    measured = {"recall": Estimate(0.55, 0.45, 0.62)}
    estimated = {"recall": Estimate(0.58, 0.5, 0.66)}
    window = PerformanceWindow(start=day, end=day + timedelta(days=1), n_predictions=1234,
                               n_labelled=40, realised=measured, estimated=estimated,
                               realised_verdict=judge(objective, measured),
                               estimated_verdict=judge(objective, estimated))
    return PerformanceSeries(
        usecase="failure", task=Task.BINARY, objective="recall>=0.8",
        objective_words="catch at least 80 % of the real cases", metric="recall",
        targets={"recall": 0.8}, since=day, until=day + timedelta(days=1),
        window=timedelta(days=1), version=1,
        validation={"recall": Estimate(0.84, 0.79, 0.89)}, windows=[window],
        positive="machine failures", notes=[say(n, EN) for n in notes_said],
        notes_said=notes_said)


def test_the_performance_story_speaks_spanish() -> None:
    note = said("perf.note.unreadable", n=said_number(1234, 0), classes="0, 1")
    series = _series([note])
    spanish = series.sentences(ES)
    english = series.sentences(EN)
    story = " | ".join(spanish)
    assert spanish[0] == ("De cada 100 machine failures reales, el modelo detectó unos 55 "
                          "(entre 45 y 62) el 5 nov 2026; el objetivo es 80."), spanish
    assert "según la confianza del modelo" in story and "cuando se validó" in story
    # Why the objective is no longer met: the clause, the number with a decimal comma.
    assert ("El objetivo ya no se cumple, con confianza: recall>=0.8 no se cumple: ni "
            "siquiera el extremo favorable, 0,62, lo alcanza.") in spanish, spanish
    assert ("1.234 valores reales no coinciden con ninguna de las clases del modelo (0, 1) y se "
            "dejaron fuera.") in spanish
    assert not any(w in story for w in ("not met", "Nov ", "ground-truth", "Out of 100"))
    # English is said as before.
    assert english[0].startswith("Out of 100 real machine failures, the model caught about 55 "
                                 "(between 45 and 62) on 5 Nov 2026")
    assert ("The objective is no longer met, with confidence: recall>=0.8 not met: even the "
            "favourable end 0.62 misses it.") in english
    assert series.notes == ["1,234 ground-truth values match none of the model's classes "
                            "(0, 1) and were left out."]
    assert series.to_dict()["sentences"] == english


def test_verdict_reasons_and_figures_in_spanish() -> None:
    verdict = judge(parse_objective("false_alarms_per_day<=2", Task.BINARY),
                    {"false_alarms_per_day": Estimate(2.5, 1.5, 3.75)})
    assert verdict.state == "unclear"
    assert verdict.reasons_in(ES) == ["false_alarms_per_day<=2 no está claro: el intervalo de "
                                      "1,5 a 3,75 contiene la meta"]
    assert verdict.reasons == ("false_alarms_per_day<=2 unclear: the interval 1.5 to 3.75 "
                               "holds the target",)
    words = sentence("false_alarms_per_day", Estimate(1234.5, 1000.25, 1500.0),
                     period="hoy", estimated=False, t=ES)
    assert words == "Falsas alarmas al día: unos 1.234 (entre 1.000 y 1.500) hoy.", words
    # The page's table cells too.
    assert cell(Estimate(2.5, 1.5, 3.75), "false_alarms_per_day", "es") == "2,5 (1,5–3,75)"
    assert cell(Estimate(2.5, 1.5, 3.75), "false_alarms_per_day") == "2.5 (1.5–3.75)"
    assert cell(Estimate(0.84, 0.8, 0.9), "recall", "es") == "84 (80–90)"


# -- alerts ------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_alert_words_in_spanish() -> None:
    assert values_words({"psi(torque_nm)": 0.3142, "rows": 1234.0}, "es") == \
        "psi(torque_nm) = 0,314, rows = 1.234"
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    with pytest.raises(DeliveryError) as caught:
        post_json(url, {"x": 1}, timeout_s=2)
    assert str(caught.value).startswith(f"the webhook at {url} could not be reached")
    assert failure_words(caught.value, "es").startswith(f"no se pudo llegar al webhook en {url}")
    with pytest.raises(ConfigError) as bad:
        post_json("ftp://plant/hook", {}, timeout_s=1)
    assert failure_words(bad.value, "es") == "La URL del webhook 'ftp://plant/hook' no es http(s)."


def _spanish_project(root: Path, **usecase: Any) -> Workspace:
    """A real project folder and store, ``[ui] lang = "es"``, one use case ``failure``."""
    project = Project.init(root, name="plant-es")
    project.config["usecases"] = {"failure": {
        "task": "binary", "target": "machine_failure", "objective": "recall>=0.80"} | usecase}
    project.config["ui"] = {"lang": "es"}
    project.save()
    return Workspace.open(root)


def test_a_failed_alert_action_is_kept_in_the_projects_language(tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.delenv("PLANTA_LANG", raising=False)
    ws = _spanish_project(tmp_path, rules=[{"name": "recall low", "when":
                                            "estimated_recall < objective",
                                            "then": ["webhook"]}])
    try:
        service = AlertService(ws)
        [out] = service.evaluate("failure", {"estimated_recall": 0.61}, window="w1")
        assert out.alert is not None
        [run] = service.store.actions_of(out.alert.id)
        message = service.message(run)
    finally:
        ws.close()
    # No webhook_url anywhere: the action failed, and says so in Spanish.
    assert run.last_error == "La acción webhook no tiene URL.", run.last_error
    assert message["message"] == ("La regla «recall low» del caso de uso failure se disparó: "
                                  "estimated_recall = 0,61 (condición: estimated_recall < "
                                  "objective).")
    assert message["values"] == {"estimated_recall": 0.61}  # the data stays machine numbers


def test_catalogue_has_no_key_twice() -> None:
    """A key written twice in one file hides the first (``alert.resolved`` once did: the
    already-resolved refusal then failed with a KeyError)."""
    def twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        return {"twice": sorted({k for k in keys if keys.count(k) > 1})}

    for folder in LOCALE_DIRS:
        for path in folder.glob("*.json"):
            found = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=twice)
            assert found["twice"] == [], f"{path}: {found['twice']}"
    error = keyed(StateError, "alert.resolved", alert="01J", by="ana")
    assert error_words(error, ES)[0] == "La alerta 01J ya está resuelta (por ana)."


# -- jobs and the API's error body -------------------------------------------------------------
def _job(**changes: Any) -> Job:
    base: dict[str, Any] = {
        "id": "01JOB", "usecase": "failure", "kind": "file", "status": "running",
        "caller": "ana", "created_at": datetime(2026, 11, 5, tzinfo=UTC), "attempts": 1,
        "max_attempts": 3, "input_digest": "0" * 64, "input_name": "readings.csv",
        "options": {"format": "pdf"}}
    return Job(**(base | changes))


def _body(exc: BaseException, lang: str | None) -> dict[str, Any]:
    response = problem(exc, "req-1", lang=lang)
    return dict(orjson.loads(bytes(response.body))["error"])


def test_job_errors_carry_their_key_and_speak_spanish() -> None:
    worker = Worker(SimpleNamespace(), owner="w", queue=SimpleNamespace())  # type: ignore[arg-type]
    for job, key, spanish in (
            (_job(kind="weird"), "job.unknown_kind",
             "El trabajo 01JOB es de un tipo desconocido, «weird»."),
            (_job(), "job.bad_format", "El trabajo 01JOB pide el formato de resultado «pdf».")):
        with pytest.raises(PlantaError) as caught:
            worker.handle(job, lambda: None)
        body = _body(caught.value, "es")
        assert body["message_key"] == key and body["message"] == spanish, body
        assert body["message_params"]["job"] == "01JOB"
        assert _body(caught.value, None)["message"].startswith("Job 01JOB ")


def test_the_workers_lines_speak_the_projects_language(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PLANTA_LANG", raising=False)
    ws = _spanish_project(tmp_path)
    lines: list[str] = []
    try:
        queue = JobQueue(ws.store)
        job = queue.submit("failure", "file", "a" * 64, "readings.csv", {"format": "pdf"}, "ana")
        assert Worker(ws, say=lines.append).run_once()
        ended = queue.get(job.id)
    finally:
        ws.close()
    assert ended.status == "failed"
    assert lines == [f"trabajo {job.id}: file «readings.csv» para failure, intento 1 de 3",
                     f"trabajo {job.id}: falló: {ended.error}"], lines


def test_http_refusals_carry_their_key() -> None:
    refusal = keyed_problem(404, "http.not_found", rule="not_found", path="'/v1/x'")
    es, en = _body(refusal, "es"), _body(refusal, "en")
    assert es["message"] == "No hay nada en '/v1/x'." and en["message"] == \
        "There is nothing at '/v1/x'."
    assert es["message_key"] == en["message_key"] == "http.not_found"
    assert es["message_params"] == {"path": "'/v1/x'"}
    assert es["violations"][0]["message"] == es["message"]
    internal = _body(RuntimeError("boom"), "es")
    assert internal["message_key"] == "http.internal" and "problema inesperado" in \
        internal["message"] and "boom" not in json.dumps(internal)
    assert accepted_lang(None, "es") == "es" and accepted_lang("en-GB", "es") == "en"


def test_edge_errors_carry_a_hub_key(tmp_path: Path) -> None:
    """planta-edge keeps no catalogue: its errors may name the hub's key; the hub says them."""
    edge = PlantaError("Job 01JOB has an unknown kind 'x'.", key="job.unknown_kind",
                       params={"job": "01JOB", "kind": "x"})
    assert edge.to_dict() == {"error": "PlantaError", "message": edge.message, "hint": None,
                              "message_key": "job.unknown_kind",
                              "message_params": {"job": "01JOB", "kind": "x"}}
    assert _body(edge, "es")["message"] == "El trabajo 01JOB es de un tipo desconocido, «x»."
    newer = ContractError("Something a newer device says.", [], key="edge.not_in_catalogue")
    assert _body(newer, "es")["message"] == "Something a newer device says."
    assert PlantaError("plain").to_dict()["message_key"] is None


def test_served_errors_default_to_the_servers_language(tmp_path: Path, start_server,
                                                       monkeypatch) -> None:
    """No Accept-Language: the words of the project's ``[ui] lang``; the key is the same."""
    from planta.project import Project

    monkeypatch.delenv("PLANTA_LANG", raising=False)
    project = Project.init(tmp_path / "plant", name="plant-es")
    project.config["ui"] = {"lang": "es"}
    project.save()
    server = start_server(tmp_path / "plant", wait_ready=False)  # no model: never "ready"
    assert server.process.poll() is None, server.log()

    def error(path: str, method: str = "GET", **headers: str) -> dict[str, Any]:
        request = urllib.request.Request(server.url + path, method=method, headers=headers)
        try:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310 - a loopback test server
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read())["error"])
        raise AssertionError(f"{path} answered 2xx")

    spanish, english = error("/v1/nothing"), error("/v1/nothing", **{"Accept-Language": "en"})
    assert spanish["message"] == "No hay nada en '/v1/nothing'." and english["message"] == \
        "There is nothing at '/v1/nothing'."
    assert spanish["message_key"] == english["message_key"] == "http.not_found"
    put = error("/healthz", "PUT")
    assert put["message"] == "'/healthz' no admite PUT." and put["message_key"] == \
        "http.method_not_allowed"

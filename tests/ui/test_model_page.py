"""The model page in depth and the approval flow, against a real `planta serve`: the
confusion matrix adds up to the holdout, the threshold slider's table is monotone, what-if
moves the prediction without logging it, and the version page's moves (approve, reject,
canary, shadow, stop) change the state and leave the registry's audit events; in Spanish too,
with nothing loaded from elsewhere."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servers import GOOD_RECORD, Server

from planta.services.workspace import Workspace

VERSION_PAGE = "/ui/usecases/failure/versions/{}"


def _text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page)).split())


def _cells(page: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-cell="(\w+)">(\d+)<', page)}


def _slider_rows(page: str) -> list[list[Any]]:
    found = re.search(r'data-rows="([^"]*)"', page)
    assert found, "no slider on the page"
    return list(json.loads(html.unescape(found.group(1))))


def _n_holdout(srv: Server, version: int) -> int:
    with srv.client() as c:
        return int(c.get(f"/v1/usecases/failure/versions/{version}").json()["summary"]
                   ["n_holdout"])


def _predictions_made(c: Any) -> float:
    """The server's count of predictions made (its Prometheus counter), all routes."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in c.get("/metrics").text.splitlines()
               if line.startswith("planta_predictions_total"))


def _local_only(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    for ref in re.findall(r'(?:src|href|action)="([^"]*)"', page):
        assert ref.startswith(("/", "?", "#")) or ref == "data:,", ref


def test_confusion_matrix_adds_up_to_the_holdout(server: Server) -> None:
    n = _n_holdout(server, 1)
    with server.client() as c:
        for path in ("/ui/usecases/failure", VERSION_PAGE.format(1)):
            page = c.get(path)
            assert page.status_code == 200, page.text
            cells = _cells(page.text)
            assert cells["tp"] + cells["fn"] + cells["fp"] + cells["tn"] == cells["total"] == n
            assert "Right and wrong, counted" in page.text and "false alarms" in page.text
    # The matrix agrees with the registry's recall at the chosen threshold.
    with server.client() as c:
        recall = c.get("/v1/usecases/failure/versions/1").json()["metrics"]["recall"]["value"]
    assert cells["tp"] / (cells["tp"] + cells["fn"]) == pytest.approx(recall, abs=1e-6)
    # Bundles from before the counts were kept: the registry's rates pin down the same matrix.
    from planta.ui.model_detail import derive_binary_confusion

    with server.client() as c:
        metrics = c.get("/v1/usecases/failure/versions/1").json()["metrics"]
    assert derive_binary_confusion(metrics, n) == {k: cells[k] for k in ("tp", "fp", "fn", "tn")}


def test_threshold_slider_is_monotone_and_readable_without_script(server: Server) -> None:
    with server.client() as c:
        page = c.get(VERSION_PAGE.format(1)).text
        script = c.get("/ui/static/model.js")
    rows = _slider_rows(page)
    assert len(rows) >= 99
    thresholds = [r[0] for r in rows]
    caught = [r[1] for r in rows]
    false_alarms = [r[3] for r in rows]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    # Raising the threshold can only catch fewer failures and raise fewer false alarms.
    assert all(a >= b for a, b in zip(caught, caught[1:], strict=False))
    assert all(a >= b for a, b in zip(false_alarms, false_alarms[1:], strict=False))
    assert all(r[1] + r[2] == 100 for r in rows)
    assert caught[0] > caught[-1] or caught[0] == 100
    # Without JavaScript: the current setting in words, and the whole table.
    text = _text(page)
    assert re.search(r"out of 100 real cases of “Machine failure” the model catches \d+ and "
                     r"misses \d+; out of 1,000 normal cases it raises \d+ false alarms", text)
    assert "(current setting)" in text and "data-slider-table" in page
    assert '<script src="/ui/static/model.js" defer></script>' in page
    assert 'type="range"' in page and "onclick" not in page and "<script>" not in page
    assert script.status_code == 200 and "http" not in script.text


def test_what_if_moves_the_probability_and_logs_nothing(server: Server) -> None:
    base = {k: str(v) for k, v in (GOOD_RECORD | {"torque_nm": 40}).items()}
    with server.client() as c:
        scored = c.post("/ui/usecases/failure/score", data=base)
        assert scored.status_code == 200, scored.text
        # The result offers a what-if form pre-filled with the record just scored.
        assert 'action="/ui/usecases/failure/whatif"' in scored.text
        assert 'name="base.torque_nm" value="40"' in scored.text
        assert 'id="w-torque_nm" name="torque_nm" type="number"' in scored.text
        logged = _predictions_made(c)
        changed = base | {"torque_nm": "70"}
        r = c.post("/ui/usecases/failure/whatif",
                   data={f"base.{k}": v for k, v in base.items()} | changed)
        assert r.status_code == 200, _text(r.text)[-2000:]
        logged_after = _predictions_made(c)
    before = float(re.search(r'data-whatif="before" data-number="([^"]+)"', r.text).group(1))
    after = float(re.search(r'data-whatif="after" data-number="([^"]+)"', r.text).group(1))
    assert before != after
    text = _text(r.text)
    assert "The risk moves from" in text and "40 → 70" in text
    assert text.count("→") >= 3  # the change and reasons on both sides
    assert logged_after == logged > 0  # what-if is neither logged nor counted as a prediction
    # A changed value the contract refuses is shown next to its field; nothing is scored.
    with server.client() as c:
        bad = c.post("/ui/usecases/failure/whatif",
                     data={f"base.{k}": v for k, v in base.items()} | base
                     | {"torque_nm": "99999"})
    assert bad.status_code == 422 and "The changed record was refused" in _text(bad.text)


def test_version_page_compares_with_production(server: Server) -> None:
    with server.client() as c:
        page = c.get(VERSION_PAGE.format(2))
        same = c.get(VERSION_PAGE.format(1))
        missing = c.get(VERSION_PAGE.format(99))
    assert page.status_code == 200, page.text
    text = _text(page.text)
    assert "This version (2)" in text and "In production (version 1)" in text
    # Both learned from dataset version 1 but with different seeds: different random holdouts.
    assert "each was checked on its own random share of it" in text
    assert re.search(r"(clearly|a little) (better|worse) than version 1|the same as version 1",
                     text)
    assert "95 % range" in text and "Objective check" in text
    assert "This version is the one in production." in _text(same.text)
    assert missing.status_code == 404 and "has no model version 99" in _text(missing.text)
    for p in (page.text, same.text):
        _local_only(p)


def test_spanish(server: Server) -> None:
    with server.client() as c:
        page = c.get(VERSION_PAGE.format(2), params={"lang": "es"}).text
        model = c.get("/ui/usecases/failure", params={"lang": "es"}).text
        scored = c.post("/ui/usecases/failure/score", params={"lang": "es"},
                        data={k: str(v) for k, v in GOOD_RECORD.items()}).text
    text = _text(page)
    assert '<html lang="es">' in page
    for words in ("Junto a la versión en producción", "Aciertos y errores, contados",
                  "de cada 100 casos reales de «Machine failure» el modelo detecta",
                  "Decidir", "Aprobar: poner en producción"):
        assert words in text, words
    assert "Ajuste de la alarma" in _text(model)
    assert "¿Y si…?" in _text(scored) and "Probar" in _text(scored)


@pytest.fixture
def with_candidate(project_copy: Path) -> Path:
    """The served project with version 3: version 2's bundle registered as a candidate (the
    tiny training budgets may leave version 2 rejected)."""
    ws = Workspace.open(project_copy)
    try:
        mv = ws.registry.get_model("failure", 2)
        gate = dict(mv.gate) | {"passed": True}
        ws.registry.register_model(
            usecase="failure", dataset_version=mv.dataset_version,
            bundle_digest=mv.bundle_digest, bundle_size=mv.bundle_size,
            metrics=dict(mv.metrics), gate=gate, trained_by="trainer",
            summary=dict(mv.summary))
    finally:
        ws.close()
    return project_copy


def _state(root: Path, version: int) -> str:
    ws = Workspace.open(root)
    try:
        return ws.registry.get_model("failure", version).state
    finally:
        ws.close()


def _events(root: Path, since: int) -> list[tuple[str, str, Any]]:
    ws = Workspace.open(root)
    try:
        assert ws.audit.verify().ok
        return [(e.action, e.subject, e.payload.get("reason") or e.payload.get("to"))
                for e in ws.audit.events(limit=None)[since:]]
    finally:
        ws.close()


def _move(c: Any, version: int, action: str, **extra: str) -> Any:
    return c.post(f"/ui/usecases/failure/versions/{version}/move",
                  data={"action": action} | extra)


def test_approval_moves_through_the_version_page(with_candidate: Path,
                                                 start_server: Callable[..., Server]) -> None:
    root = with_candidate
    srv = start_server(root)
    since = len(_events(root, 0))
    subject = "usecase/failure/model/3"
    with srv.client() as c:
        page = c.get(VERSION_PAGE.format(3)).text
        for m in ("promote", "decline", "canary", "shadow"):
            assert f'name="action" value="{m}"' in page
        assert 'value="stop"' not in page
        assert page.count("data-confirm=") == 4 and 'name="reason" required' in page

        r = _move(c, 3, "canary", reason="try on line 4", share="25")
        assert r.status_code == 303 and r.headers["location"].endswith("?moved=canary")
        assert "answers 25 % of live requests" in _text(c.get(r.headers["location"]).text)
        assert _state(root, 3) == "canary"
        assert c.get("/v1/usecases/failure").json()["live"].get("canary") == 3

        page = c.get(VERSION_PAGE.format(3)).text
        assert 'value="stop"' in page and 'value="decline"' not in page
        assert _move(c, 3, "stop", reason="enough data").status_code == 303
        assert _state(root, 3) == "candidate"
        assert _move(c, 3, "shadow", reason="watch it quietly").status_code == 303
        assert _state(root, 3) == "shadow"
        assert _move(c, 3, "stop", reason="seen enough").status_code == 303

        # Refusals change nothing: no reason, an unknown move, a move the state forbids.
        before = len(_events(root, 0))
        assert _move(c, 3, "decline", reason="  ").status_code == 400
        assert _move(c, 3, "explode", reason="x").status_code == 400
        refused = _move(c, 3, "stop", reason="not live")
        assert refused.status_code == 409 and 'role="alert"' in refused.text
        assert len(_events(root, 0)) == before and _state(root, 3) == "candidate"

        assert _move(c, 3, "decline", reason="worse on line 4").status_code == 303
        assert _state(root, 3) == "rejected"
        page = c.get(VERSION_PAGE.format(3)).text
        assert 'name="exception" value="yes" required' in page
        r = _move(c, 3, "promote", reason="line stop, accepted risk", exception="yes")
        assert r.status_code == 303
        assert _state(root, 3) == "production"
        assert c.get("/v1/usecases/failure").json()["live"]["production"] == 3
        assert "is now in production" in _text(c.get(r.headers["location"]).text)
    events = _events(root, since)
    assert [(a, s, why) for a, s, why in events if s == subject] == [
        ("canary", subject, "try on line 4"), ("canary_share", subject, 0.25),
        ("stop", subject, "enough data"), ("shadow", subject, "watch it quietly"),
        ("stop", subject, "seen enough"), ("decline", subject, "worse on line 4"),
        ("promote", subject, "line stop, accepted risk")]
    assert ("archive", "usecase/failure/model/1", "replaced by version 3 (promote)") in events


def test_roles_and_four_eyes_hold_on_the_version_page(
        with_candidate: Path, start_server: Callable[..., Server]) -> None:
    from planta.store.tokens import TokenStore

    ws = Workspace.open(with_candidate)
    try:  # as `planta token create`, without a process each
        tokens = TokenStore(ws.store, ws.audit)
        operator = tokens.create("olga", "operator", actor="admin")[1]
        trainer = tokens.create("trainer", "approver", actor="admin")[1]
    finally:
        ws.close()
    srv = start_server(with_candidate, "--require-auth", env={"PLANTA_FOUR_EYES": "true"})
    with srv.client(headers={"authorization": f"Bearer {operator}"}) as c:
        page = c.get(VERSION_PAGE.format(3)).text
        assert "An approver can decide on this version." in _text(page)
        assert 'name="action"' not in page
        r = _move(c, 3, "promote", reason="try")
        assert r.status_code == 403 and "has the operator role" in _text(r.text)
    with srv.client(headers={"authorization": f"Bearer {trainer}"}) as c:
        page = c.get(VERSION_PAGE.format(3)).text
        assert "You trained this version" in _text(page)
        r = _move(c, 3, "promote", reason="my own model")
        assert r.status_code == 403 and "four-eyes" in _text(r.text)
        assert _move(c, 3, "decline", reason="not good enough").status_code == 303
    assert _state(with_candidate, 3) == "rejected"




def test_slider_moves_in_a_real_browser(browser: Any, server: Server) -> None:
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("console", lambda msg: failed.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{server.url}{VERSION_PAGE.format(1)}")
    slider = page.locator("[data-slider] input[type=range]")
    assert slider.is_visible()
    sentence = page.locator("[data-slider-text]")
    at_start = sentence.inner_text()
    assert "(current setting)" in at_start
    slider.evaluate("el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
    low = sentence.inner_text()
    slider.evaluate("el => { el.value = el.max; el.dispatchEvent(new Event('input')); }")
    high = sentence.inner_text()
    assert "alarm from 1 % risk" in low and "alarm from 99 % risk" in high
    caught = [int(re.search(r"catches (\d+)", s).group(1)) for s in (low, high)]
    assert caught[0] >= caught[1]
    assert failed == []
    page.close()


def test_every_move_and_verdict_has_its_words_in_both_languages() -> None:
    from planta.ui.approvals import MOVES
    from planta.ui.i18n import catalogue

    for lang in ("en", "es"):
        words = catalogue(lang)
        for m in MOVES:
            for key in (f"approve.{m}", f"approve.confirm_{m}", f"approve.moved_{m}"):
                assert key in words, (lang, key)
        for verdict in ("better", "better_maybe", "worse", "worse_maybe", "same"):
            assert f"approve.diff_{verdict}" in words, (lang, verdict)

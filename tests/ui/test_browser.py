"""The UI in a real browser: Playwright driving Debian's Chromium (headless, --no-sandbox).

Playwright's own browser download cannot work here, so the test launches the system's
``chromium`` (``apt-get install -y chromium``; scripts/test.sh installs it) through
``executable_path``, and skips with that instruction when it is missing.

The same tests take the README's screenshots (``shoot``, see ``conftest.py``): a page that
stops rendering breaks a test, and a page that changes its look changes its picture.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from servers import GOOD_RECORD, Server
from uikit import IMG_DIR, SHOTS, VIEWPORT, shoot

README = Path(__file__).resolve().parents[2] / "README.md"


def _watch(page: Any) -> list[str]:
    """Failed requests and console errors of ``page``, collected as it goes."""
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("console", lambda msg: failed.append(msg.text) if msg.type == "error" else None)
    return failed


def test_score_a_record_from_the_home_page(browser: Any, server: Server) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    failed = _watch(page)
    page.goto(f"{server.url}/ui")
    assert page.title() == "Use cases · planta"
    shoot(page, "home")
    page.get_by_role("link", name="Score a record").first.click()
    page.wait_for_url(re.compile(r"/ui/usecases/failure/score$"))
    page.select_option("#f-type", GOOD_RECORD["type"])
    for name, value in GOOD_RECORD.items():
        if name != "type":
            page.fill(f"#f-{name}", str(value))
    page.get_by_role("button", name="Predict").click()
    result = page.locator("#result")
    result.wait_for()
    text = result.inner_text()
    assert re.search(r"Machine failure: (yes|no) · risk \d+ %", text), text
    assert "→" in text and "Logged as prediction" in text
    # What-if: the same record with more torque, scored beside the original.
    page.fill("#w-torque_nm", "65")
    page.get_by_role("button", name="Try it").click()
    moved = page.locator("#whatif-result")
    moved.wait_for()
    assert page.locator("[data-whatif=after]").inner_text() != \
        page.locator("[data-whatif=before]").inner_text()
    page.locator("#whatif").scroll_into_view_if_needed()
    shoot(page, "score")
    # The stylesheet applied (served by planta, not a CDN) and nothing failed to load.
    assert page.eval_on_selector("header.bar", "e => getComputedStyle(e).display") == "flex"
    assert failed == []
    page.close()


def test_the_browser_stops_a_value_outside_the_contract(browser: Any, server: Server) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/ui/usecases/failure/score?lang=es")
    page.select_option("#f-type", "L")
    for name, value in GOOD_RECORD.items():
        if name != "type":
            page.fill(f"#f-{name}", str(value))
    page.fill("#f-torque_nm", "900")  # above the contract's max: the input's max says so
    assert page.eval_on_selector("#f-torque_nm", "e => e.validity.rangeOverflow") is True
    page.get_by_role("button", name="Predecir").click()
    assert page.locator("#result").count() == 0  # not sent
    page.close()


def test_wizard_from_upload_to_a_trained_model(browser: Any, project_copy: Any,
                                               start_server: Any, tmp_path: Any) -> None:
    """Upload → target (suggested) → objective → report → training followed by wizard.js
    (polls the JSON, reloads when done) → the model page."""
    import pandas as pd

    from planta.services.demo import demo_data

    csv = tmp_path / "ai4i.csv"
    pd.read_csv(demo_data()).iloc[:1500].to_csv(csv, index=False)
    srv = start_server(project_copy)
    page = browser.new_page(viewport=VIEWPORT)
    failed = _watch(page)
    page.goto(f"{srv.url}/ui")
    page.get_by_role("link", name="New use case").click()
    page.set_input_files("#w-file", str(csv))
    page.get_by_role("button", name="Upload and preview").click()
    page.locator("#suggestions").get_by_role("link", name="Machine failure").click()
    assert page.locator("#w-task").input_value() == "binary"
    page.fill("#w-name", "wizfail")
    page.fill("#w-recall", "80")
    page.fill("#w-precision", "50")
    # The picture: the target suggestions and the objective, not the preview above them.
    page.locator("#suggestions").evaluate("e => e.closest('section').scrollIntoView()")
    shoot(page, "wizard")
    page.get_by_role("button", name="Create the use case").click()
    page.wait_for_url(re.compile(r"/ui/usecases/wizfail/data$"))
    leakage = page.locator("#leakage").inner_text()
    assert "UDI:" in leakage and "Product ID:" in leakage and "TWF:" in leakage
    shoot(page, "report")
    page.fill("#w-budget", "2")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"/ui/usecases/wizfail/training/[0-9a-f]{16}$"))
    page.locator("#t-model").wait_for(timeout=60_000)  # only there after the JS reload
    assert page.locator("#t-trials li").count() > 0
    shoot(page, "training")
    page.locator("#t-model").click()
    page.wait_for_url(re.compile(r"/ui/usecases/wizfail\?version=\d+$"))
    assert failed == []
    page.close()


# (screenshot, path, what the page must say): the pages a new user meets after the wizard.
MAIN_PAGES = [
    ("model", "/ui/usecases/failure", "Out of 100 real cases"),
    ("version", "/ui/usecases/failure/versions/2", "Beside the version in production"),
    ("batch", "/ui/usecases/failure/batch", "Score a file: failure"),
    ("feedback", "/ui/usecases/failure/feedback", "What really happened: failure"),
    ("audit", "/ui/audit", "Audit trail"),
    ("tokens", "/ui/tokens", "Tokens"),
]


def test_main_pages_render_in_the_browser(browser: Any, server: Server) -> None:
    """Each main page loads with its own CSS and JS and no error, and is photographed."""
    page = browser.new_page(viewport=VIEWPORT)
    failed = _watch(page)
    for name, path, words in MAIN_PAGES:
        response = page.goto(f"{server.url}{path}")
        assert response is not None and response.status == 200, path
        assert words in page.locator("main").inner_text(), path
        shoot(page, name)
    assert failed == []
    page.close()


def test_readme_shows_every_screenshot() -> None:
    """The README's web UI section shows each picture, and each picture it shows exists."""
    text = README.read_text(encoding="utf-8")
    shown = set(re.findall(r"docs/img/ui-([a-z-]+)\.png", text))
    assert shown == set(SHOTS), "README and SHOTS disagree"
    for name in shown:
        png = IMG_DIR / f"ui-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert png.stat().st_size < 150_000, f"{png} is large: optimise it"

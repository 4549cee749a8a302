"""No unexplained jargon: every UI page, and the model card, read in English and in Spanish.

The rule (what counts as a term, what counts as its plain-language line) is in
``plain_words.py``. The pages are drawn by a real `planta serve` holding what each page needs:
a trained and promoted model, a wizard draft, a training run started from the UI, a batch job.
Pages added to ``planta.ui.pages.PAGES`` later are read too, as long as their path parameters
are among those below.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from plain_words import problems

from planta.ui.pages import PAGES

LANGS = ("en", "es")
# The served project's own column names (AI4I 2020): the user's words, never flagged.
ALLOWED = frozenset({"TWF", "HDF", "PWF", "OSF", "RNF"})


def _last(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def pages(served_project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every page's HTML in both languages, from a server holding one of everything."""
    import shutil

    import pandas as pd
    from servers import launch

    root = tmp_path_factory.mktemp("jargon") / "plant"
    shutil.copytree(served_project, root)
    srv = launch(root)
    try:
        with srv.client() as client:
            params = {"name": "failure", "version": "2"}
            history = root / "history.csv"
            pd.read_csv(history).iloc[:400].to_csv(root / "small.csv", index=False)
            with (root / "small.csv").open("rb") as fh:
                r = client.post("/ui/wizard/upload", files={"file": ("small.csv", fh)})
            params["draft"] = _last(r.headers["location"])
            with (root / "new.csv").open("rb") as fh:
                r = client.post("/ui/usecases/failure/batch", files={"file": ("new.csv", fh)})
            params["job_id"] = _last(r.headers["location"])
            r = client.post("/ui/usecases/failure/train", data={"budget": "2"})
            assert r.status_code == 303, r.text
            params["training"] = _last(r.headers["location"])
            deadline = time.monotonic() + 120
            while client.get(f"/ui/usecases/failure/training/{params['training']}.json"
                             ).json()["status"] == "running" and time.monotonic() < deadline:
                time.sleep(0.5)
            out: dict[str, Any] = {}
            for page in PAGES:
                path = re.sub(r"{(\w+)(?::\w+)?}", lambda m: params.get(m.group(1), "{?}"),
                              page.path)
                if "{?}" in path:
                    continue  # a parameter this test cannot make yet
                for lang in LANGS:
                    r = client.get(path, params={"lang": lang})
                    out[f"{lang} {path}"] = (r.status_code, r.text)
            return out
    finally:
        srv.stop()


def test_every_page_was_read(pages: dict[str, Any]) -> None:
    paths = {key.split(" ", 1)[1] for key in pages}
    for must in ("/ui", "/ui/usecases/failure", "/ui/usecases/failure/versions/2",
                 "/ui/usecases/failure/versions/2/card", "/ui/usecases/failure/score",
                 "/ui/audit", "/ui/tokens", "/ui/wizard", "/ui/usecases/failure/data"):
        assert must in paths
    assert any("/training/" in p for p in paths) and any("/jobs/" in p for p in paths)
    assert all(status == 200 for status, _ in pages.values()), \
        {k: s for k, (s, _) in pages.items() if s != 200}
    # The Spanish pages really are Spanish, so the check below reads both languages.
    assert "Auditoría" in pages["es /ui/audit"][1]


def test_no_page_shows_a_term_without_its_plain_line(pages: dict[str, Any]) -> None:
    found = [f"{key}: {line}" for key, (_, html) in pages.items()
             for line in problems(html, ALLOWED)]
    assert not found, "unexplained jargon:\n" + "\n".join(found)


def test_the_rule_catches_what_it_should() -> None:
    """The checker itself: bare terms fail, glossed ones pass (so the test above can fail)."""
    assert problems("<ul><li>ROC-AUC: 0.97</li></ul>") == ["ROC-AUC in: ROC-AUC: 0.97"]
    assert problems("<td>PSI 0.31</td>")
    assert problems("<p>p-value 0.01</p>")
    assert problems("<p>balance of catching and precision (F1)</p>") == [
        "precision in: balance of catching and precision (F1)"]
    assert problems("<p>La sensibilidad es 0,8</p>")
    assert problems("<p>share of real cases caught (recall): 0.6</p>") == []
    assert problems('<p><abbr title="how far the values moved">PSI</abbr> 0.31</p>') == []
    assert problems("<pre>planta train --objective 'recall>=0.8'</pre>") == []
    assert problems("<p>TWF</p>", frozenset({"TWF"})) == []
    assert problems('<p data-text="AUC is {auc}">…</p>') == ["AUC in: AUC is {auc}"]

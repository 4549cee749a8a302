"""The message catalogue: both languages have the same keys, and every key a page uses exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import planta
import planta.ui
from planta.core.lifecycle import Role, State
from planta.core.metrics import CONSTRAINTS
from planta.core.spec import METRICS, Task
from planta.i18n import LOCALE_DIRS, env_lang
from planta.ui.i18n import LOCALE_DIR, catalogue, choose_lang, translator
from planta.ui.pages import PAGES
from planta.ui.words import SHOWN, metric_sentences, objective_words
from planta_edge.contract import __doc__ as contract_doc

UI = Path(planta.ui.__file__).parent
PACKAGE = Path(planta.__file__).parent
# t("key" ...) / tr("key" ...) in templates and Python (the UI's, the CLI's, the demo's, the
# shared words); keys built from a value ("state." ~ v) are listed below.
_USED = re.compile(r"""\btr?\(\s*["']([a-z0-9_]+\.[a-z0-9_.]+)["']""")


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*UI.glob("templates/*.html"), *UI.glob("*.py"), *PACKAGE.glob("cli/*.py"),
                 PACKAGE / "services" / "demo.py", PACKAGE / "words.py"]:
        keys.update(_USED.findall(path.read_text(encoding="utf-8")))
    return keys


def _dynamic_keys() -> set[str]:
    rules = re.findall(r"^    ([a-z_]+)\s{2,}", contract_doc or "", flags=re.M)
    assert "below_min" in rules and "unknown_category" in rules
    return ({f"state.{s.value}" for s in State} | {f"role.{r.value}" for r in Role}
            | {f"task.{t.value}" for t in Task} | {f"metric_name.{m}" for m in METRICS}
            | {f"metric_name.{m}" for m in CONSTRAINTS.values()}
            | {f"objective.{m}" for m in METRICS}
            | {f"metric.{m}" for names in SHOWN.values() for m in names}
            | {f"rule.{r}" for r in rules} | {"rule.empty_batch"}
            | {f"reason.{level}" for level in ("high", "low", "usual")}
            | {f"moved.{done}" for done in ("promote", "rollback")}
            | {f"cli.rule.{r}" for r in rules}
            | {p.title_key for p in PAGES})


def test_both_languages_have_the_same_keys() -> None:
    en, es = catalogue("en"), catalogue("es")
    assert sorted(LOCALE_DIR.glob("*.json")) == [LOCALE_DIR / "en.json", LOCALE_DIR / "es.json"]
    assert set(en) - set(es) == set(), "missing in es.json"
    assert set(es) - set(en) == set(), "missing in en.json"
    for key in en:  # the same placeholders, so a Spanish page never fails to format
        assert set(re.findall(r"{(\w+)}", en[key])) == set(re.findall(r"{(\w+)}", es[key])), key


def test_every_key_a_page_uses_exists() -> None:
    used = _used_keys() | _dynamic_keys()
    assert len(used) > 100
    assert {"cli.train.summary", "demo.train", "cli.ingest.counts"} <= used  # CLI files read
    missing = sorted(k for k in used if k not in catalogue("en"))
    assert missing == []


def test_catalogue_files_are_plain_json_objects_of_strings() -> None:
    for folder in LOCALE_DIRS:
        assert sorted(p.name for p in folder.glob("*.json")) == ["en.json", "es.json"], folder
        for path in folder.glob("*.json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in data.items())


def test_one_catalogue_a_key_lives_in_one_file() -> None:
    """The CLI's file and the pages' file of a language are one catalogue: no key in both."""
    for lang in ("en", "es"):
        cli, pages = (set(json.loads((folder / f"{lang}.json").read_text(encoding="utf-8")))
                      for folder in LOCALE_DIRS)
        assert cli & pages == set()
        assert set(catalogue(lang)) == cli | pages


@pytest.mark.parametrize(("value", "lang"), [
    (None, "en"), ("es", "es"), ("es_ES.UTF-8", "es"), ("ES", "es"), ("fr_FR", "en"), ("", "en")])
def test_cli_language_comes_from_planta_lang(value: str | None, lang: str) -> None:
    assert env_lang({} if value is None else {"PLANTA_LANG": value}) == lang


@pytest.mark.parametrize(("query", "cookie", "default", "lang"), [
    (None, None, "en", "en"), ("es", None, "en", "es"), (None, "es", "en", "es"),
    ("en", "es", "es", "en"), ("fr", None, "es", "es"), (None, "xx", "zz", "en")])
def test_language_is_query_over_cookie_over_project(query: str | None, cookie: str | None,
                                                    default: str, lang: str) -> None:
    assert choose_lang(query, cookie, default) == lang


def test_metrics_read_as_counts_out_of_100_with_their_interval() -> None:
    t = translator("en")
    metrics = {"recall": {"value": 0.84, "lower": 0.79, "upper": 0.89},
               "precision": {"value": 0.5, "lower": 0.4, "upper": 0.6},
               "false_alarm_rate": {"value": 0.002, "lower": 0.0, "upper": 0.005},
               "roc_auc": {"value": 0.95, "lower": 0.93, "upper": 0.97}}
    lines = metric_sentences("binary", metrics, t, target="Machine failure")
    assert lines[0] == ("Out of 100 real cases of “Machine failure”, this model would catch 84, "
                        "give or take 5.")
    assert "Out of 1,000 normal cases, 2 would raise a false alarm" in lines[2]
    assert "ROC-AUC" in lines[3] and "coin toss" in lines[3]  # never without its plain line
    es = metric_sentences("binary", metrics, translator("es"), target="fallo")
    assert es[0] == "De cada 100 casos reales de «fallo», este modelo detectaría 84, más o menos 5."
    # Numbers the Spanish way: "1.000" casos, "0,95" (English "1,000" and "0.95").
    assert "De cada 1.000 casos normales" in es[2] and "0,95" in es[3], es
    assert "0.95" in lines[3] and "1,000" in lines[2]


def test_a_lopsided_interval_names_both_ends() -> None:
    # 9 alarms of 9 real: "100, give or take 15" would promise up to 115 out of 100.
    metrics = {"precision": {"value": 1.0, "lower": 0.70, "upper": 1.0}}
    [line] = metric_sentences("binary", metrics, translator("en"), target="Machine failure")
    assert line.endswith("100 would be real cases of “Machine failure”, somewhere between 70 "
                         "and 100.")
    [es] = metric_sentences("binary", metrics, translator("es"), target="fallo")
    assert es.endswith("entre 70 y 100.") and "más o menos" not in es


def test_objective_in_plain_words_in_both_languages() -> None:
    from planta.core.spec import parse_objective

    objective = parse_objective("recall>=0.80 and precision>=0.50", Task.BINARY)
    assert objective_words(objective, translator("en")) == \
        "catch at least 80 % of the real cases; at least 50 % of alarms are real cases"
    assert objective_words(objective, translator("es")).startswith("detectar al menos el 80 %")

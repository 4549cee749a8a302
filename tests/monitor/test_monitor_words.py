"""The monitoring page's and report's sentences come from the catalogue, in every language.

``feature_sentence`` and ``verdict_words`` (services/monitor_report.py) tell the same story as
the core's English ``describe`` / ``verdict``, keyed by the statistic and its parameters; these
tests hold the English one to the core's words and the Spanish one to Spanish.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from planta.core.drift_report import FeatureDrift, describe
from planta.core.drift_report import Test as DriftTest
from planta.i18n import translator
from planta.services.monitor_report import (
    feature_sentence,
    performance_svg,
    trend_svg,
    verdict,
    verdict_words,
)

ENGLISH = re.compile(r"\b(training|moved|readings|nothing to do|check the|window|spread)\b")


def _features() -> list[FeatureDrift]:
    return [
        FeatureDrift("torque_nm", "Torque [Nm]", "numeric", 500, [DriftTest("psi", 0.51, None, 0.2)],
                     drifted=True, alerting=True,
                     plot={"mean_reference": 40.0, "mean_current": 48.0}),
        FeatureDrift("air_temperature_k", "Air temperature [K]", "numeric", 500,
                     [DriftTest("psi", 0.25, None, 0.2)], drifted=True, alerting=False,
                     plot={"mean_reference": 300.0, "mean_current": 301.0}),
        FeatureDrift("tool_wear_min", "Tool wear [min]", "numeric", 500,
                     [DriftTest("psi", 0.11, None, 0.2)], plot={}),
        FeatureDrift("type", "Type", "category", 500, [DriftTest("js", 0.02, None, 0.1)]),
        FeatureDrift("type2", "Line", "category", 500, [DriftTest("js", 0.3, None, 0.1)],
                     drifted=True, alerting=True, new_categories={"X": 12}),
        FeatureDrift("rpm", "Speed [rpm]", "numeric", 40, [DriftTest("psi", 0.0, None, 0.2)],
                     enough_rows=False),
    ]


@pytest.mark.parametrize("index", range(len(_features())))
def test_english_sentence_is_the_cores(index: int) -> None:
    f = _features()[index]
    assert feature_sentence(f.to_dict(plots=True), translator("en")) == describe(f)


@pytest.mark.parametrize("index", range(len(_features())))
def test_spanish_sentence_is_spanish(index: int) -> None:
    doc = _features()[index].to_dict(plots=True)
    text = feature_sentence(doc, translator("es"))
    assert doc["label"] in text
    assert not ENGLISH.search(text), text
    assert text[0].isupper() and text.endswith(".")


def _doc(features: list[FeatureDrift], rows: int = 500) -> dict[str, Any]:
    return {"rows": rows, "features": [f.to_dict() for f in features]}


@pytest.mark.parametrize("pick", [[0, 1], [0], [1], [2, 3], []])
def test_verdicts_agree_with_the_core(pick: list[int]) -> None:
    features = [_features()[i] for i in pick]
    doc = _doc(features, rows=500 if pick else 0)
    english, bad = verdict_words(doc, translator("en"))
    core, core_bad = verdict(doc)
    assert bad == core_bad
    # The same inputs are named, in the same order.
    named = [f.label for f in features if f.drifted]
    for label in named:
        assert label in english and label in core
    spanish, _ = verdict_words(doc, translator("es"))
    assert not ENGLISH.search(spanish), spanish
    assert all(label in spanish for label in named)


def test_plots_are_drawn_from_numbers() -> None:
    svg = trend_svg(["11-16", "11-17", "11-18"], [0.01, None, 0.6], 0.2, "PSI per day")
    assert svg.startswith("<svg") and svg.count("<circle") == 2 and "stroke-dasharray" in svg
    assert trend_svg(["a"], [None], 0.2, "x") == ""
    perf = {"metric": "recall", "window_s": 86400, "targets": {"recall": 0.5},
            "validation": {"recall": {"value": 0.8, "lower": 0.6, "upper": 0.9}},
            "windows": [{"start": "2026-11-16T00:00:00+00:00",
                         "estimated": {"recall": {"value": 0.7, "lower": 0.6, "upper": 0.8}},
                         "realised": {"recall": {"value": 0.65, "lower": 0.4, "upper": 0.85}}},
                        {"start": "2026-11-17T00:00:00+00:00",
                         "estimated": {"recall": {"value": 0.3, "lower": 0.2, "upper": 0.4}},
                         "realised": None}]}
    drawn = performance_svg(perf, "recall per day")
    # One realised point with its interval, an estimate band and line, validation, target.
    assert drawn.count("<circle") == 1 and drawn.count("<path") == 2
    assert "stroke-dasharray" in drawn and "opacity=\"0.25\"" in drawn
    assert performance_svg({"metric": "recall", "windows": []}, "x") == ""

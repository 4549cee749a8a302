"""Prediction log settings: [serve] in planta.toml, PLANTA_* overrides, per-use-case retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from planta.core.spec import UseCase
from planta.errors import ConfigError
from planta.settings import load_settings


def test_log_settings_default_then_toml_then_environment() -> None:
    root = Path(".")
    default = load_settings(root, {}, env={})
    assert (default.log_retention_days, default.log_durability) == (365, "full")
    toml = {"serve": {"log_retention_days": 90, "log_durability": "process"}}
    from_toml = load_settings(root, toml, env={})
    assert (from_toml.log_retention_days, from_toml.log_durability) == (90, "process")
    env = {"PLANTA_LOG_RETENTION_DAYS": "0", "PLANTA_LOG_DURABILITY": "FULL"}
    from_env = load_settings(root, toml, env=env)
    assert (from_env.log_retention_days, from_env.log_durability) == (0, "full")


@pytest.mark.parametrize(("toml", "env", "key"), [
    ({"serve": {"log_retention_days": -1}}, {}, "serve.log_retention_days"),
    ({}, {"PLANTA_LOG_RETENTION_DAYS": "a year"}, "PLANTA_LOG_RETENTION_DAYS"),
    ({"serve": {"log_durability": "fast"}}, {}, "log_durability"),
    ({"serve": "yes"}, {}, "[serve]"),
])
def test_a_bad_log_setting_names_its_key(toml: dict, env: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_settings(Path("."), toml, env=env)


def test_a_use_case_may_keep_its_log_shorter_or_smaller() -> None:
    usecase = UseCase.from_dict("failure", {"target": "Machine failure", "retention_days": 30,
                                            "retention_rows": 1_000_000})
    assert (usecase.retention_days, usecase.retention_rows) == (30, 1_000_000)
    assert usecase.to_dict()["retention_days"] == 30 and "retention_days" not in usecase.extra
    again = UseCase.from_dict("failure", usecase.to_dict())
    assert again == usecase
    plain = UseCase.from_dict("failure", {"target": "Machine failure"})
    assert plain.retention_days is None and "retention_days" not in plain.to_dict()
    for bad in (0, -5, 1.5, "30", True):
        with pytest.raises(ConfigError, match="retention_days"):
            UseCase.from_dict("failure", {"target": "y", "retention_days": bad})

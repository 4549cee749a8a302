"""Project folders and settings: portable, layered, and clear when wrong."""

from __future__ import annotations

import shutil

import pytest

from planta.core.spec import Task, UseCase
from planta.errors import ConfigError, NotFoundError
from planta.project import Project
from planta.settings import load_settings


def test_init_open_and_usecases(tmp_path) -> None:
    project = Project.init(tmp_path / "plant-a")
    project.add_usecase(UseCase.from_dict("failure", {"target": "Machine failure",
                                                      "objective": "recall>=0.8"}))
    again = Project.open(tmp_path / "plant-a")
    assert again.name == "plant-a"
    assert again.usecase("failure").task is Task.BINARY
    with pytest.raises(NotFoundError, match="no use case 'scrap'"):
        again.usecase("scrap")
    with pytest.raises(ConfigError, match="already exists"):
        again.add_usecase(again.usecase("failure"))
    with pytest.raises(ConfigError, match="already a planta project"):
        Project.init(tmp_path / "plant-a")


def test_project_folder_has_no_absolute_paths_and_moves(tmp_path) -> None:
    Project.init(tmp_path / "a")
    text = (tmp_path / "a" / "planta.toml").read_text()
    assert str(tmp_path) not in text
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    moved = Project.open(tmp_path / "b")
    assert moved.settings.resolved_store_url == f"sqlite:///{(tmp_path / 'b').resolve()}" \
                                                "/.planta/planta.db"


def test_open_walks_up_and_explains_when_missing(tmp_path, monkeypatch) -> None:
    Project.init(tmp_path / "p")
    (tmp_path / "p" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "p" / "sub")
    assert Project.open().root == (tmp_path / "p").resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFoundError, match="planta init"):
        Project.open()


def test_bad_toml_names_the_file(tmp_path) -> None:
    Project.init(tmp_path / "p")
    (tmp_path / "p" / "planta.toml").write_text("[store\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Project.open(tmp_path / "p")


def test_environment_wins_over_toml(tmp_path) -> None:
    toml = {"store": {"url": "sqlite:///x.db"}, "policy": {"four_eyes": True}}
    s = load_settings(tmp_path, toml, env={})
    assert s.store_url == "sqlite:///x.db" and s.four_eyes
    s = load_settings(tmp_path, toml, env={"PLANTA_STORE_URL": "postgresql+psycopg://h/db",
                                           "PLANTA_FOUR_EYES": "no", "PLANTA_USER": "ana"})
    assert (s.store_url, s.four_eyes, s.user) == ("postgresql+psycopg://h/db", False, "ana")
    with pytest.raises(ConfigError, match="PLANTA_FOUR_EYES"):
        load_settings(tmp_path, toml, env={"PLANTA_FOUR_EYES": "maybe"})
    with pytest.raises(ConfigError, match="PLANTA_LANG"):
        load_settings(tmp_path, {}, env={"PLANTA_LANG": "de"})

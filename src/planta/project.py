"""A planta project: one folder with ``planta.toml`` and ``.planta/`` (store and artifacts).

The folder can be copied, moved or backed up as it is: nothing inside holds an absolute path.

    plant-a/
      planta.toml            use cases, store URL, policy
      contracts/<usecase>.toml   the editable data contract of each use case
      .planta/planta.db      SQLite registry, audit trail, batches (WAL)
      .planta/artifacts/     content-addressed dataset snapshots, profiles and bundles
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from planta.core.rules import Rule, parse_rules
from planta.core.schedule import SchedulerConfig, scheduler_config
from planta.core.spec import UseCase
from planta.errors import ConfigError, NotFoundError, keyed, phrase
from planta.settings import Settings, load_settings

CONFIG_NAME = "planta.toml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_HEADER = """\
# planta project settings. Edit with care; `planta usecase add` writes the use cases.
# [store] url: sqlite:///.planta/planta.db (default) or postgresql+psycopg://user@host/db
# [store] artifacts: a folder (default .planta/artifacts) or an fsspec URL (s3://bucket/path)
# [policy] four_eyes = true stops the person who trained a version from approving it.
"""


@dataclass
class Project:
    """An opened project folder."""

    root: Path
    config: dict[str, Any]
    settings: Settings

    @property
    def name(self) -> str:
        return str(self.config.get("project", {}).get("name", self.root.name))

    @classmethod
    def init(cls, path: Path, *, name: str | None = None) -> Project:
        """Create a new project folder (refuses to overwrite an existing project)."""
        path = Path(path)
        if (path / CONFIG_NAME).exists():
            raise keyed(ConfigError, "proj.exists", path=path)
        project_name = name or path.resolve().name
        if not _NAME.match(project_name):
            raise keyed(ConfigError, "proj.bad_name", name=repr(project_name))
        path.mkdir(parents=True, exist_ok=True)
        (path / ".planta").mkdir(mode=0o700, exist_ok=True)
        (path / "contracts").mkdir(exist_ok=True)
        config: dict[str, Any] = {"project": {"name": project_name},
                                  "store": {"url": "sqlite:///.planta/planta.db",
                                            "artifacts": ".planta/artifacts"},
                                  "policy": {"four_eyes": False},
                                  "usecases": {}}
        project = cls(root=path, config=config, settings=load_settings(path, config))
        project.save()
        return project

    @classmethod
    def open(cls, path: Path | None = None, *, env: dict[str, str] | None = None) -> Project:
        """Open the project in ``path``, or the nearest folder above the current one."""
        start = Path(path) if path is not None else Path(os.environ.get("PLANTA_PROJECT", "."))
        start = start.resolve()
        for folder in (start, *start.parents):
            if (folder / CONFIG_NAME).is_file():
                return cls._load(folder, env)
            if path is not None:
                break
        raise keyed(NotFoundError, "proj.none_here", start=start)

    @classmethod
    def _load(cls, root: Path, env: dict[str, str] | None) -> Project:
        file = root / CONFIG_NAME
        try:
            config = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise keyed(ConfigError, "proj.bad_toml", file=file, problem=exc) from exc
        project = cls(root=root, config=config, settings=load_settings(root, config, env))
        project.check_monitoring()
        return project

    def save(self) -> None:
        """Write planta.toml atomically (write a sibling file, then rename)."""
        file = self.root / CONFIG_NAME
        tmp = file.with_suffix(".toml.tmp")
        tmp.write_text(_HEADER + tomli_w.dumps(self.config), encoding="utf-8")
        os.replace(tmp, file)

    # -- use cases -------------------------------------------------------------------------
    @property
    def usecase_names(self) -> list[str]:
        return sorted((self.config.get("usecases") or {}).keys())

    def usecase(self, name: str) -> UseCase:
        """The use case called ``name``."""
        table = (self.config.get("usecases") or {}).get(name)
        if table is None:
            known = ", ".join(self.usecase_names) or phrase("err.none_yet")
            raise keyed(NotFoundError, "err.no_usecase", name=name, known=known)
        return UseCase.from_dict(name, table)

    def add_usecase(self, usecase: UseCase, *, replace: bool = False) -> None:
        """Record a use case in planta.toml."""
        table = self.config.setdefault("usecases", {})
        if usecase.name in table and not replace:
            raise keyed(ConfigError, "proj.usecase_exists", name=repr(usecase.name))
        table[usecase.name] = usecase.to_dict()
        self.save()

    def rules(self, usecase: str) -> tuple[Rule, ...]:
        """The monitoring rules of a use case (``[[usecases.<name>.rules]]``)."""
        uc = self.usecase(usecase)
        return parse_rules(uc.name, uc.extra.get("rules"), uc.objective)

    def scheduler_config(self) -> SchedulerConfig:
        """The ``[scheduler]`` table and every scheduled job."""
        return scheduler_config(self.config)

    def check_monitoring(self) -> None:
        """Parse every rule and schedule now, so a typo stops the command that loaded
        planta.toml (with the rule, the position and what was expected), not a job at 3 am."""
        for name in self.usecase_names:
            try:
                uc = self.usecase(name)
            except ConfigError:
                continue  # reported, as before, by whatever uses this use case
            parse_rules(uc.name, uc.extra.get("rules"), uc.objective)
        self.scheduler_config()

    def contract_path(self, usecase: str) -> Path:
        return self.root / "contracts" / f"{usecase}.toml"


__all__ = ["CONFIG_NAME", "Project"]

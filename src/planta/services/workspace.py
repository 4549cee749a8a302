"""The workspace: one project with its store, registry, audit log and artifact store opened.

Entry points (CLI, server) open a workspace once from settings and hand it to services; services
never open stores themselves, so a test can hand them a workspace on any store URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planta.project import Project
from planta.store.artifacts import ArtifactStore
from planta.store.audit import AuditLog
from planta.store.metadata import Store, open_store
from planta.store.registry import Registry


@dataclass
class Workspace:
    """A project and its opened adapters."""

    project: Project
    store: Store
    registry: Registry
    audit: AuditLog
    artifacts: ArtifactStore

    @property
    def actor(self) -> str:
        """Who acts: the OS user on the CLI (or PLANTA_USER), the token's owner on the server."""
        return self.project.settings.user

    @classmethod
    def open(cls, path: Path | None = None) -> Workspace:
        """Open the project at ``path`` (or the nearest above the current folder)."""
        return cls.from_project(Project.open(path))

    @classmethod
    def from_project(cls, project: Project) -> Workspace:
        settings = project.settings
        store = open_store(settings.resolved_store_url)
        return cls(project=project, store=store, registry=Registry(store), audit=AuditLog(store),
                   artifacts=ArtifactStore(settings.resolved_artifacts_url))

    def close(self) -> None:
        self.store.close()


__all__ = ["Workspace"]

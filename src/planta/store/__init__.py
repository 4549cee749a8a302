"""Storage adapters: metadata store, registry, audit trail, artifacts, backup.

``import planta.store`` loads SQLAlchemy and nothing heavier; the artifact store (fsspec) and
the backup types are loaded on first use. The ``backup`` and ``restore`` functions are not
re-exported: their module is also called ``backup``, and importing it would shadow the function
on this package. Use ``from planta.store.backup import backup, restore``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from planta.store.audit import AuditEvent, AuditLog, AuditVerification
from planta.store.metadata import Store, open_store
from planta.store.registry import (
    Batch,
    DatasetVersion,
    ModelVersion,
    Registry,
    Transition,
    Trial,
)

if TYPE_CHECKING:
    from planta.store.artifacts import ArtifactStore
    from planta.store.backup import BackupInfo, RestoreInfo

_LAZY = {"ArtifactStore": "planta.store.artifacts", "BackupInfo": "planta.store.backup",
         "RestoreInfo": "planta.store.backup"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'planta.store' has no attribute {name!r}")


__all__ = [
    "ArtifactStore", "AuditEvent", "AuditLog", "AuditVerification", "BackupInfo", "Batch",
    "DatasetVersion", "ModelVersion", "Registry", "RestoreInfo", "Store", "Transition", "Trial",
    "open_store",
]

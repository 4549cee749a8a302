"""Ingest: read a plant file, guard against leaks and ids, validate, version, profile.

    file ──read_table──► frame ──find_exclusions──► leaks and ids set aside
         ──contract (inferred once, then the project's editable file)──► check_frame
         ──► accepted rows (Parquet snapshot, content-addressed) + quarantine (with reasons)
         ──► DatasetVersion (idempotent on content) + profile + audit event

Ingesting identical data twice gives the same dataset version and writes no second event.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from planta.core.contract import contract_from_text, contract_to_text, infer_contract
from planta.core.leakage import find_exclusions
from planta.core.profile import profile_frame
from planta.core.validation import check_frame
from planta.errors import InputError, keyed
from planta.services.tables import read_table
from planta.services.workspace import Workspace
from planta_edge.bundle import canonical_json, sha256_bytes
from planta_edge.contract import Contract, slugify


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did: the dataset version and the data-quality report."""

    usecase: str
    version: int
    created: bool
    source_name: str
    source_sha256: str
    n_rows: int
    n_accepted: int
    n_rejected: int
    report: dict[str, Any]
    exclusions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    contract_created: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "dataset_version": self.version,
                "created": self.created, "source": self.source_name,
                "source_sha256": self.source_sha256, "rows": self.n_rows,
                "accepted": self.n_accepted, "rejected": self.n_rejected,
                "exclusions": self.exclusions, "notes": self.notes,
                "contract_created": self.contract_created, "report": self.report}


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    """Deterministic Parquet bytes of a frame (same data and pyarrow, same bytes)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(None)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", write_statistics=True)
    return out.getvalue()


def parquet_to_frame(data: bytes) -> pd.DataFrame:
    """Read a snapshot written by :func:`frame_to_parquet`."""
    return pq.read_table(io.BytesIO(data)).to_pandas()


def _target_header(frame: pd.DataFrame, target: str, source: str) -> str:
    if target in frame.columns:
        return target
    wanted = slugify(target)
    for column in frame.columns:
        if slugify(str(column)) == wanted:
            return str(column)
    shown = ", ".join(map(str, frame.columns[:20]))
    raise keyed(InputError, "err.ingest.no_target", source=source, target=target, columns=shown)


def load_contract(ws: Workspace, usecase: str) -> Contract | None:
    """The project's contract for a use case, if one was written."""
    path = ws.project.contract_path(usecase)
    if not path.is_file():
        return None
    return contract_from_text(path.read_text(encoding="utf-8"), source=str(path))


def save_contract(ws: Workspace, usecase: str, contract: Contract, *, action: str) -> str:
    """Write the editable contract file and audit the change; returns the contract digest."""
    path = ws.project.contract_path(usecase)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(contract_to_text(contract), encoding="utf-8")
    digest = sha256_bytes(canonical_json(contract.to_dict()))
    ws.audit.append(action, f"usecase/{usecase}/contract", ws.actor,
                    {"contract_sha256": digest, "fields": len(contract.fields)})
    return digest


def ingest(ws: Workspace, usecase_name: str, path: Path) -> IngestResult:
    """Validate, version and profile a data file for a use case."""
    usecase = ws.project.usecase(usecase_name)
    read = read_table(path)
    frame = read.frame
    target_header = _target_header(frame, usecase.target, read.name)
    exclusions = find_exclusions(frame, target_header, usecase.task, keep=usecase.keep,
                                 entity=usecase.entity, time=usecase.time)
    contract = load_contract(ws, usecase_name)
    contract_created = False
    if contract is None:
        contract = infer_contract(frame, usecase, exclusions=exclusions.exclusions)
        save_contract(ws, usecase_name, contract, action="contract_create")
        contract_created = True
    checked = check_frame(contract, frame)
    snapshot = frame_to_parquet(checked.accepted)
    content_hash = sha256_bytes(snapshot)
    snapshot_digest = ws.artifacts.put_bytes(snapshot)
    profile = profile_frame(checked.accepted, contract)
    profile_digest = ws.artifacts.put_bytes(canonical_json(profile))
    contract_digest = ws.artifacts.put_bytes(canonical_json(contract.to_dict()))
    quarantine_digest = None
    if len(checked.quarantine):
        quarantine_digest = ws.artifacts.put_bytes(frame_to_parquet(
            checked.quarantine.astype(str)))
    report = dict(checked.report)
    report["exclusions"] = [e.to_dict() for e in exclusions.exclusions]
    report["notes"] = list(exclusions.notes)
    report["notes_said"] = list(exclusions.notes_said)  # the same, for any language
    report["quarantine_digest"] = quarantine_digest
    n_rows = int(len(frame))
    n_accepted = int(len(checked.accepted))
    dv, created = ws.registry.add_dataset_version(
        usecase=usecase_name, content_hash=content_hash, snapshot_digest=snapshot_digest,
        profile_digest=profile_digest, contract_digest=contract_digest,
        source_name=read.name, source_hash=read.sha256, n_rows=n_rows, n_accepted=n_accepted,
        n_rejected=n_rows - n_accepted, report=report, created_by=ws.actor)
    if created:
        ws.audit.append("ingest", f"usecase/{usecase_name}/dataset/{dv.version}", ws.actor,
                        {"source": read.name, "source_sha256": read.sha256,
                         "content_hash": content_hash, "rows": n_rows, "accepted": n_accepted,
                         "rejected": n_rows - n_accepted})
    return IngestResult(
        usecase=usecase_name, version=dv.version, created=created, source_name=read.name,
        source_sha256=read.sha256, n_rows=n_rows, n_accepted=n_accepted,
        n_rejected=n_rows - n_accepted, report=report,
        exclusions=[e.to_dict() for e in exclusions.exclusions], notes=list(exclusions.notes),
        contract_created=contract_created)


__all__ = ["IngestResult", "frame_to_parquet", "ingest", "load_contract", "parquet_to_frame",
           "save_contract"]

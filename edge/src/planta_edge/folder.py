"""A watched folder: CSV files dropped in are scored, then moved to ``done/``.

    inbox/readings-0412.csv ─► every row predicted ─► outbox commit ─► inbox/done/readings-0412.csv
                                                                       (+ .predictions.csv beside it)
    a file that cannot be read as CSV ─► inbox/failed/ with a .reason.txt

A file is taken only once its size has stayed the same for one poll (a writer may still be
copying it), and moved only after its predictions are committed, so a power cut mid-file scores
the file again on restart (at least once; the hub keeps both sets, with their own ids).
Standard library ``csv`` only: headers are the contract's names or the original headers.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from pathlib import Path
from typing import Any

from planta_edge.runtime import EdgeRuntime

log = logging.getLogger("planta_edge.folder")

# Rows scored per submission: a large file goes to the outbox in several commits.
CHUNK_ROWS = 1000


def read_rows(data: bytes) -> list[dict[str, Any]]:
    """The rows of a CSV file (comma or semicolon, UTF-8 with or without BOM); empty cells are
    missing values.

    >>> read_rows(b"torque_nm;type\\n40,5;L\\n")
    [{'torque_nm': '40,5', 'type': 'L'}]
    """
    text = data.decode("utf-8-sig")
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    return [{k: (None if v == "" else v) for k, v in row.items() if k is not None}
            for row in reader]


class FolderInput:
    """Poll ``folder`` for CSV files and score them."""

    def __init__(self, runtime: EdgeRuntime, folder: Path, *, poll_s: float = 1.0) -> None:
        self.runtime = runtime
        self.folder = Path(folder)
        self.poll_s = poll_s
        self.done = self.folder / "done"
        self.failed = self.folder / "failed"
        for d in (self.folder, self.done, self.failed):
            d.mkdir(parents=True, exist_ok=True)
        self.files = 0
        self._sizes: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="planta-edge-folder",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad file
                log.exception("scoring the watched folder failed")

    def poll(self) -> int:
        """Score every settled CSV file; returns how many files were done."""
        n = 0
        for path in sorted(self.folder.glob("*.csv")):
            size = path.stat().st_size
            if self._sizes.get(path) != size:
                self._sizes[path] = size   # still growing, or new: wait one poll
                continue
            self._sizes.pop(path, None)
            self.score_file(path)
            n += 1
        return n

    def score_file(self, path: Path) -> None:
        """Score one file, write its predictions beside it in ``done/``, then move it there."""
        try:
            rows = read_rows(path.read_bytes())
        except (UnicodeDecodeError, csv.Error) as exc:
            path.replace(self.failed / path.name)
            (self.failed / f"{path.name}.reason.txt").write_text(f"not a readable CSV: {exc}\n")
            log.warning("%s is not a readable CSV (%s); moved to failed/", path.name, exc)
            return
        outcomes = []
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start:start + CHUNK_ROWS]
            outcomes.extend(self.runtime.predict(chunk, source=f"file:{path.name}",
                                                 timeout=None))
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["row", "prediction_id", "prediction", "probability", "reason"])
        for i, p in enumerate(outcomes):
            writer.writerow([i + 1, p.prediction_id or "", "" if p.prediction is None
                             else p.prediction, "" if p.probability is None else p.probability,
                             p.reason or ""])
        (self.done / f"{path.stem}.predictions.csv").write_text(out.getvalue())
        path.replace(self.done / path.name)
        self.files += 1
        log.info("%s: %d rows scored", path.name, len(outcomes))


__all__ = ["FolderInput", "read_rows"]

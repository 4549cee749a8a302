"""`planta predictions` (read the prediction log) and `planta feedback` (send ground truth)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table
from planta.errors import InputError

if TYPE_CHECKING:
    from planta.services.workspace import Workspace

_SPAN = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Unknown items listed in the plain-text output of `planta feedback` (JSON has them all).
_SHOWN_UNKNOWN = 10


def parse_moment(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """A point in time from the command line: a span back from now (``30m``, ``24h``, ``7d``,
    ``2w``) or an ISO 8601 date or time (UTC unless it carries an offset).

    >>> now = datetime(2024, 5, 8, 12, tzinfo=UTC)
    >>> parse_moment("7d", now=now).isoformat(), parse_moment("2024-05-01").isoformat()
    ('2024-05-01T12:00:00+00:00', '2024-05-01T00:00:00+00:00')
    """
    if text is None or not text.strip():
        return None
    match = _SPAN.match(text)
    if match:
        span = timedelta(**{_UNITS[match["unit"].lower()]: float(match["n"])})
        return (now or datetime.now(UTC)) - span
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a span (30m, 24h, 7d, 2w) nor an ISO "
                                 "date or time (2024-05-01, 2024-05-01T14:30+02:00).") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _moment_option(value: str | None) -> str | None:
    parse_moment(value)  # a bad value is a usage error (exit 2), found before any work
    return value


_MOMENT_HELP = "A span back from now (30m, 24h, 7d) or an ISO date/time (UTC unless it has an " \
               "offset)."


@handle_errors
def predictions(usecase: str = typer.Argument(..., help="Use case name."),
                since: str = typer.Option(None, "--since", callback=_moment_option,
                                          help="Only predictions from then on. " + _MOMENT_HELP),
                until: str = typer.Option(None, "--until", callback=_moment_option,
                                          help="Only predictions before then. " + _MOMENT_HELP),
                limit: int = typer.Option(100, "--limit", min=1, help="At most this many."),
                version: int = typer.Option(None, "--version", help="Only this model version."),
                entity: str = typer.Option(None, "--entity",
                                           help="Only this entity (machine, line, batch)."),
                as_json: bool = JSON_OPTION) -> None:
    """Show logged predictions, newest first: inputs, answer, model version, who asked."""
    from rich import box

    from planta.services.workspace import Workspace
    from planta.store.predictions import PredictionLog

    start, end = parse_moment(since), parse_moment(until)
    ws = Workspace.open()
    try:
        ws.project.usecase(usecase)  # an unknown use case is an error, not an empty list
        log = PredictionLog(ws.store)
        try:
            records = log.query(usecase, since=start, until=end, version=version, entity=entity,
                                limit=limit)
        finally:
            log.close()
    finally:
        ws.close()
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        filtered = [f"--{name}" for name, value in (("since", since), ("until", until),
                                                    ("version", version), ("entity", entity))
                    if value is not None]
        console.print(f"No predictions of {usecase} are logged"
                      + (f" for {' '.join(filtered)}." if filtered else " yet."), soft_wrap=True)
        if filtered:
            console.print("Widen the window (for example --since 30d) or drop "
                          f"{', '.join(filtered)}.", soft_wrap=True)
        else:
            console.print("Predictions are logged each time the planta server answers a request "
                          f"for {usecase}; put a model in production (planta promote) and send "
                          "it records.", soft_wrap=True)
        return
    # Columns that say something: no entity column without entities, no route column when
    # production answered everything. The id is never wrapped: people copy it.
    with_entity = any(r.entity is not None for r in records)
    with_route = any(r.route != "production" for r in records)
    columns = ["prediction id", "at (UTC)", "v."]
    columns += ["route"] if with_route else []
    columns += ["entity"] if with_entity else []
    columns += ["answer", "p/score", "caller"]
    rows = []
    for r in records:
        row: list[Any] = [r.prediction_id, f"{r.at:%m-%d %H:%M}", r.version]
        row += [r.route] if with_route else []
        row += [r.entity] if with_entity else []
        row += [r.prediction, _number(r.probability if r.probability is not None else r.score),
                r.caller]
        rows.append(row)
    out = table(f"Predictions of {usecase} (newest first)", columns, rows)
    out.box = box.SIMPLE_HEAD  # no vertical rules: an 80-column terminal keeps whole ids
    for column in out.columns[:2]:
        column.no_wrap = True
    out.columns[0].min_width = 26
    console.print(out)
    console.print(f"v. = model version, p = probability. Times are UTC, in {records[-1].at:%Y}."
                  if records[0].at.year == records[-1].at.year else
                  "v. = model version, p = probability. Times are UTC.")
    if len(records) == limit:
        console.print(f"The newest {limit}; use --limit, --since or --until for others. "
                      "--json shows the inputs and latencies too.")


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):  # multiclass: the likeliest class
        best = max(value.items(), key=lambda kv: kv[1] if kv[1] is not None else -1.0)
        return f"{best[0]}: {best[1]:.{digits}f}" if best[1] is not None else ""
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


@handle_errors
def feedback(file: Annotated[Path, typer.Argument(help="CSV, Excel (.xlsx) or Parquet file "
                                                   "with what really happened.")],
             usecase: str = typer.Option(None, "--usecase",
                                         help="Use case (default: the project's only one, or "
                                              "the one the file's prediction ids belong to)."),
             id_column: str = typer.Option("prediction_id", "--id-column",
                                           help="Column with the prediction ids."),
             value_column: str = typer.Option(None, "--value-column",
                                              help="Column with the true value (default: the "
                                                   "use case's target, else label or value)."),
             entity_column: str = typer.Option(None, "--entity-column",
                                               help="Without prediction ids: the entity column "
                                                    "(default: the use case's entity)."),
             time_column: str = typer.Option("event_time", "--time-column",
                                             help="Without prediction ids: when it happened; "
                                                  "matched to the entity's latest prediction "
                                                  "in the 24 h before."),
             as_json: bool = JSON_OPTION) -> None:
    """Record ground truth for logged predictions; sending the same file again changes nothing."""
    from planta.services.tables import read_table
    from planta.services.workspace import Workspace
    from planta.store.feedback import FeedbackStore
    from planta.store.predictions import PredictionLog

    read = read_table(file)
    frame = read.frame
    columns = [str(c) for c in frame.columns]
    ws = Workspace.open()
    try:
        log = PredictionLog(ws.store)
        try:
            by_id = id_column in columns
            name = usecase or _usecase_of(ws, log, frame[id_column].tolist() if by_id else [])
            uc = ws.project.usecase(name)
            value_col = _value_column(columns, value_column, uc.target)
            values = _plain(frame[value_col].tolist())
            if by_id:
                items = [{"prediction_id": p, "value": v}
                         for p, v in zip(_plain(frame[id_column].tolist()), values, strict=True)]
                how = f"by {id_column!r}"
            else:
                entity_col = _entity_column(columns, entity_column, uc.entity, id_column)
                if time_column not in columns:
                    raise InputError(f"{read.name} has neither a {id_column!r} column nor a "
                                     f"{time_column!r} column (columns: {', '.join(columns)}).",
                                     hint="Name the columns with --id-column, or with "
                                          "--entity-column and --time-column.")
                items = [{"entity": e, "event_time": t, "value": v} for e, t, v in zip(
                    _plain(frame[entity_col].tolist()), _plain(frame[time_column].tolist()),
                    values, strict=True)]
                how = f"by {entity_col!r} and {time_column!r}"
            from planta.services.label_rollup import attach_labels

            store = FeedbackStore(ws.store, log)
            attach_labels(ws, store)  # each day's label counts, kept as they are written
            result = store.add(name, items, actor=ws.actor, source=f"file:{read.name}")
        finally:
            log.close()
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "usecase": name, "file": read.name, "rows": len(items),
                    "value_column": value_col} | result.to_dict())
        return
    console.print(f"Feedback for {name} from {read.name} ({len(items):,} rows, matched {how}, "
                  f"values from {value_col!r}): {result.added:,} added, {result.unchanged:,} "
                  f"unchanged, {result.updated:,} updated, {len(result.unknown):,} unknown.",
                  soft_wrap=True)
    for index, reason in result.unknown[:_SHOWN_UNKNOWN]:
        console.print(f"  • row {index + 1}: {reason}", soft_wrap=True)
    if len(result.unknown) > _SHOWN_UNKNOWN:
        console.print(f"  … and {len(result.unknown) - _SHOWN_UNKNOWN:,} more (--json lists "
                      "them all).")
    if result.unknown:
        console.print(f"Unknown rows were not recorded. `planta predictions {name}` shows the "
                      "logged ids; fix those rows and send the file again (rows already "
                      "recorded stay unchanged).", soft_wrap=True)
    if result.updated:
        console.print("Updated values replace earlier ones; the corrections are in the audit "
                      "trail (planta audit log --action feedback_correct).", soft_wrap=True)


def _plain(values: list[Any]) -> list[Any]:
    """Cells as plain values: missing cells (NaN, NaT, None) as None."""
    import pandas as pd

    return [None if v is None or (not isinstance(v, (str, bytes, list, dict)) and pd.isna(v))
            else v for v in values]


def _usecase_of(ws: Workspace, log: Any, ids: list[Any]) -> str:
    names = ws.project.usecase_names
    if len(names) == 1:
        return names[0]
    from planta.store.ids import is_id

    for pid in ids:
        if isinstance(pid, str) and is_id(pid.strip()):
            record = log.get(pid.strip())
            if record is not None:
                return str(record.usecase)
    raise InputError("Cannot tell which use case this feedback is for.",
                     hint=f"Name it with --usecase (known: {', '.join(names) or 'none yet'}).")


def _value_column(columns: list[str], given: str | None, target: str) -> str:
    from planta_edge.contract import slugify

    if given is not None:
        if given not in columns:
            raise InputError(f"The file has no column {given!r} (columns: {', '.join(columns)}).",
                             hint="Pick one of them with --value-column.")
        return given
    slugs = {slugify(c): c for c in columns}
    for candidate in (target, "label", "value"):
        if candidate in columns:
            return candidate
        if slugify(candidate) in slugs:
            return slugs[slugify(candidate)]
    raise InputError(f"The file has no column {target!r}, 'label' or 'value' with the true "
                     f"values (columns: {', '.join(columns)}).",
                     hint="Name the column with --value-column.")


def _entity_column(columns: list[str], given: str | None, entity: str | None,
                   id_column: str) -> str:
    from planta_edge.contract import slugify

    candidate = given or entity
    if candidate is None:
        raise InputError(f"The file has no {id_column!r} column, and the use case has no entity "
                         "to match by.", hint="Add the prediction ids (--id-column), or name the "
                                              "entity column with --entity-column.")
    if candidate in columns:
        return candidate
    slugs = {slugify(c): c for c in columns}
    if slugify(candidate) in slugs:
        return slugs[slugify(candidate)]
    raise InputError(f"The file has neither a {id_column!r} column nor the entity column "
                     f"{candidate!r} (columns: {', '.join(columns)}).",
                     hint="Name the columns with --id-column, or with --entity-column and "
                          "--time-column.")


__all__ = ["feedback", "parse_moment", "predictions"]

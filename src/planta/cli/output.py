"""How the CLI talks: Rich tables for people, JSON for scripts, one line for errors.

Exit codes (public; scripts rely on them):

    code  meaning
    0     done
    1     error (planta explains it in one line; unexpected errors write a log file)
    2     usage error (unknown command, missing or wrong flag)
    3     finished, but the model was rejected by the objective gate

Words come from planta's one message catalogue (:mod:`planta.i18n`) in the language of
``PLANTA_LANG`` (en or es): ``tr(key, **values)``. JSON output stays in English keys.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from planta.errors import PlantaError, error_words, violation_words
from planta.i18n import env_lang, translator

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


def tr(key: str, **values: Any) -> str:
    """The CLI's message ``key`` in the language of ``PLANTA_LANG`` (English otherwise)."""
    return translator(env_lang())(key, **values)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _clean(value: Any) -> Any:
    """NaN and infinity are not JSON: scripts get null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    sys.stdout.write(json.dumps(_clean(json.loads(json.dumps(data, default=_default))),
                                indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A readable table."""
    out = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*["" if v is None else str(v) for v in row])
    return out


def fail(error: PlantaError, *, as_json: bool) -> None:
    """Show a planta error in one line (or as JSON) and exit 1."""
    if as_json:
        print_json({"ok": False} | error.to_dict())
    else:
        message, hint = error_words(error, translator(env_lang()))
        err_console.print(f"[bold red]{tr('cli.error')}:[/] {escape(message)}", soft_wrap=True)
        if hint:
            err_console.print(f"[yellow]{tr('cli.what_to_do')}:[/] {escape(hint)}",
                              soft_wrap=True)
        violations = getattr(error, "violations", None)
        if violations:
            for v in violations[:10]:
                err_console.print(f"  - {escape(violation_text(v))}", soft_wrap=True)
            if len(violations) > 10:
                err_console.print("  " + tr("cli.more", n=len(violations) - 10))
    raise typer.Exit(error.exit_code)


def violation_text(violation: Any) -> str:
    """One broken contract rule, in the CLI's language.

    English keeps the contract's own sentence; other languages say it again from the
    catalogue's ``violation.*`` lines (the same bound, unit and advice), or, for a violation
    that carries no words of its own, the row, the field, the value and a ``cli.rule.*`` line.
    """
    message = str(getattr(violation, "message", violation))
    rule = getattr(violation, "rule", None)
    if env_lang() == "en" or rule is None:
        return message
    if getattr(violation, "key", None):
        return violation_words(violation, translator(env_lang()))
    text = tr(f"cli.rule.{rule}", value=_shown(getattr(violation, "value", None)))
    if text.startswith("cli.rule."):
        return message
    row, field = getattr(violation, "row", None), getattr(violation, "field", None)
    where = ", ".join(w for w in (
        None if row is None else tr("cli.row", n=row + 1),
        None if not field else tr("cli.column", name=field)) if w)
    return f"{where}: {text}" if where else text


def rule_name(rule: str) -> str:
    """A contract rule code ("type") as the CLI's language says it, for counts of rows."""
    name = tr(f"rule_words.{rule}")
    return rule if name.startswith("rule_words.") else f"{name} ({rule})"


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.6g}" if isinstance(value, float) else str(value)[:60]


def _log_crash() -> Path:
    folder = Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix="planta-error-", suffix=".log", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write(traceback.format_exc())
    return Path(name)


def handle_errors(func: F) -> F:
    """Wrap a command: planta errors become one line and exit 1; crashes write a log."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except PlantaError as exc:
            fail(exc, as_json=as_json)
        except Exception as exc:  # noqa: BLE001 - the outermost entry point catches everything
            log = _log_crash()
            message = tr("cli.crash", problem=f"{type(exc).__name__}: {exc}", log=log)
            if as_json:
                print_json({"ok": False, "error": "InternalError", "message": message,
                            "log": str(log)})
            else:
                err_console.print(f"[bold red]{tr('cli.error')}:[/] {message}", soft_wrap=True)
                err_console.print(f"[yellow]{tr('cli.what_to_do')}:[/] {tr('cli.crash_hint')}")
            raise typer.Exit(EXIT_ERROR) from None
        return None

    return wrapper  # type: ignore[return-value]


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "JSON_OPTION", "console",
           "err_console", "fail", "handle_errors", "print_json", "rule_name", "table", "tr",
           "violation_text"]

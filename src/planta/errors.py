"""planta's exception tree (defined in planta-edge so that hub and edge raise the same classes).

    PlantaError
    ├── ConfigError        settings or planta.toml wrong
    ├── InputError         what a user handed us
    │   ├── FileFormatError    unreadable, empty, header only, duplicated column names
    │   └── ContractError      one or more Violations (row, column, rule, value, reason code)
    ├── NotFoundError      use case, dataset or model version, job, device
    ├── StateError         a transition the lifecycle forbids (promote a rejected model)
    ├── IntegrityError     bundle hash or signature, audit chain
    ├── AccessError        token missing or role too low
    └── StoreError         storage unreachable or full (wraps the driver's error)

CLI exit codes: 0 done, 1 planta error, 2 usage error, 3 finished but rejected by the objective gate.

Errors a plant engineer meets often are raised with :func:`keyed`: the message (and its hint,
``<key>.hint``) comes from the message catalogue (:mod:`planta.i18n`) in English, and the error
keeps its key and values, so that whoever speaks to the person (the CLI, the pages) can say it
again in their language with :func:`error_words`. Logs, the API's JSON bodies and tests see the
same English text as before. A value that is itself a sentence is a :func:`phrase`.

>>> from planta.i18n import translator
>>> e = keyed(NotFoundError, "err.no_usecase", name="press", known="failure")
>>> e.message
"There is no use case 'press' in this project (known: failure)."
>>> error_words(e, translator("es"))[0]
'No hay ningún caso de uso «press» en este proyecto (existen: failure).'
"""

from __future__ import annotations

from typing import Any, TypeVar

from planta_edge.errors import (
    AccessError,
    ConfigError,
    ContractError,
    FileFormatError,
    InputError,
    IntegrityError,
    NotFoundError,
    PlantaError,
    PlantaWarning,
    StateError,
    StoreError,
)

E = TypeVar("E", bound=PlantaError)


def phrase(key: str, /, **params: Any) -> dict[str, Any]:
    """A value that is a sentence of its own ("it has versions 1 to 3"), said in each language."""
    from planta.i18n import said

    return said(key, **params)


def keyed(cls: type[E], key: str, /, *args: Any, **params: Any) -> E:
    """``cls`` raised with the catalogue's English for ``key`` (and ``key.hint`` when it has one).

    ``args`` follow the message (a :class:`ContractError`'s violations).
    """
    from planta.i18n import DEFAULT_LANG, catalogue, say, translator

    t = translator(DEFAULT_LANG)
    hint_key = f"{key}.hint" if f"{key}.hint" in catalogue(DEFAULT_LANG) else None
    english = {k: say(v, t) for k, v in params.items()}
    error = cls(t(key, **english), *args, hint=t(hint_key, **english) if hint_key else None)
    error.message_key = key  # type: ignore[attr-defined]
    error.hint_key = hint_key  # type: ignore[attr-defined]
    error.params = dict(params)  # type: ignore[attr-defined]
    return error


def error_words(error: PlantaError, t: Any) -> tuple[str, str | None]:
    """The error's message and hint in ``t``'s language (English for an error without a key)."""
    from planta.i18n import say

    key = getattr(error, "message_key", None)
    if not key:
        return error.message, error.hint
    values = {k: say(v, t) for k, v in getattr(error, "params", {}).items()}
    hint_key = getattr(error, "hint_key", None)
    return t(key, **values), (t(hint_key, **values) if hint_key else error.hint)


def error_said(error: PlantaError, t: Any) -> dict[str, str | None]:
    """``{"message", "hint"}`` of ``error`` in ``t``'s language, for a page to show."""
    message, hint = error_words(error, t)
    return {"message": message, "hint": hint}


def relabel(error: E, old: str, new: str) -> E:
    """The same error naming ``new`` where it named ``old`` (a stored file → the upload's name),
    with its catalogue key kept so that it is still said in every language."""
    clone = type(error)(error.message.replace(old, new), hint=error.hint)
    if getattr(error, "message_key", None):
        clone.message_key = error.message_key  # type: ignore[attr-defined]
        clone.hint_key = getattr(error, "hint_key", None)  # type: ignore[attr-defined]
        clone.params = {k: new if isinstance(v, str) and v == old else v  # type: ignore[attr-defined]
                        for k, v in getattr(error, "params", {}).items()}
    return clone


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)[:60]


def violation_said(violation: Any) -> dict[str, Any] | None:
    """A contract violation's sentence as data (:func:`planta.i18n.said`): "where: what".

    None for a violation that carries no words of its own (no ``key``).
    """
    from planta.i18n import said

    key = getattr(violation, "key", None)
    if not key:
        return None
    params = dict(getattr(violation, "params", {}) or {})
    where = params.pop("where", "row_only")
    values = {k: _shown(v) for k, v in params.items()}
    values["unit"] = f" {params['unit']}" if params.get("unit") else ""
    return said("violation.sentence",
                where=said(f"violation.where.{where}", n=values.pop("n", ""),
                           label=values.pop("label", "")),
                what=said(f"violation.{key}", value=_shown(getattr(violation, "value", None)),
                          **values))


def violation_words(violation: Any, t: Any) -> str:
    """One broken contract rule in ``t``'s language; a violation without a key keeps its message."""
    from planta.i18n import say

    doc = violation_said(violation)
    return str(getattr(violation, "message", violation)) if doc is None else say(doc, t)


__all__ = [
    "AccessError", "ConfigError", "ContractError", "FileFormatError", "InputError",
    "IntegrityError", "NotFoundError", "PlantaError", "PlantaWarning", "StateError",
    "StoreError", "error_said", "error_words", "keyed", "phrase", "relabel", "violation_said",
    "violation_words",
]

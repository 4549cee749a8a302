"""The one exception tree of planta, shared by the hub and the edge runtime.

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

It lives in planta-edge because the edge runtime raises the same errors as the hub
(``planta.errors`` re-exports it). Messages are written for a plant engineer: what
happened, where, which rule, and what to do next.

The words live in one place, the hub's message catalogue (``planta/locale/*.json``): the edge
speaks English, and an error may name its catalogue ``key`` and values, which travel in its
JSON (``message_key``, ``message_params``) so that the hub or any client can say it in
another language. planta-edge itself never imports planta.

>>> PlantaError("The edge runtime is stopping; send again.", key="edge.stopping").to_dict()
... # doctest: +NORMALIZE_WHITESPACE
{'error': 'PlantaError', 'message': 'The edge runtime is stopping; send again.', 'hint': None,
 'message_key': 'edge.stopping', 'message_params': {}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PlantaError(Exception):
    """Base of every error planta raises on purpose.

    ``hint`` is the "what to do next" sentence; entry points print it after the message.
    ``key`` and ``params``: the message's key in the hub's catalogue and its values (the hub
    sets them with ``planta.errors.keyed``); None for a message that has no key.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, key: str | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if key is not None:
            self.message_key = key
            self.params = dict(params or {})

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        # message_key: the hub's catalogue key (set by planta.errors.keyed), for a client that
        # says the message in its own language; None for a message that has none.
        key = getattr(self, "message_key", None)
        params = getattr(self, "params", None) or {}
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint,
                "message_key": key,
                "message_params": {k: _plain(v) for k, v in params.items()} if key else None}


def _plain(value: Any) -> Any:
    """A value as JSON carries it (a sentence kept as data stays a mapping)."""
    if value is None or isinstance(value, (str, int, float, bool, Mapping)):
        return value
    return str(value)


class PlantaWarning(UserWarning):
    """A warning planta itself raises (tests turn these into errors)."""


class ConfigError(PlantaError):
    """Settings or planta.toml are wrong."""


class InputError(PlantaError):
    """Something a user handed us is wrong."""


class FileFormatError(InputError):
    """A file cannot be read as a table: unreadable, empty, header only, duplicated names."""


class ContractError(InputError):
    """Input breaks the data contract; carries every violation found, not only the first."""

    def __init__(self, message: str, violations: list[Any] | None = None, *,
                 hint: str | None = None, key: str | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, hint=hint, key=key, params=params)
        self.violations = list(violations or [])

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["violations"] = [v.to_dict() if hasattr(v, "to_dict") else v for v in self.violations]
        return out


class NotFoundError(PlantaError):
    """A use case, dataset version, model version, job or device does not exist."""


class StateError(PlantaError):
    """The lifecycle forbids this move (for example promoting a rejected model)."""


class IntegrityError(PlantaError):
    """A bundle's hash or signature, or the audit chain, does not check out."""


class AccessError(PlantaError):
    """A token is missing or its role is too low."""


class StoreError(PlantaError):
    """Storage is unreachable or full; wraps the driver's error."""


__all__ = [
    "AccessError", "ConfigError", "ContractError", "FileFormatError", "InputError",
    "IntegrityError", "NotFoundError", "PlantaError", "PlantaWarning", "StateError", "StoreError",
]

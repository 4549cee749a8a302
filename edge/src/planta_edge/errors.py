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
"""

from __future__ import annotations

from typing import Any


class PlantaError(Exception):
    """Base of every error planta raises on purpose.

    ``hint`` is the "what to do next" sentence; entry points print it after the message.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        # message_key: the hub's catalogue key (set by planta.errors.keyed), for a client that
        # says the message in its own language; None for a message that has none.
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint,
                "message_key": getattr(self, "message_key", None)}


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
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
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

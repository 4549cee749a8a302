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
"""

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

__all__ = [
    "AccessError", "ConfigError", "ContractError", "FileFormatError", "InputError",
    "IntegrityError", "NotFoundError", "PlantaError", "PlantaWarning", "StateError", "StoreError",
]

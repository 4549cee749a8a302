"""A real receiver for alert actions in tests: an HTTP sink on 127.0.0.1.

Plain classes and functions (the fixture that starts the sink is in this folder's conftest.py),
imported by name: ``from receivers import HttpSink``. The Mosquitto broker and ``free_port``
are shared by every folder: ``tests/mqtt_broker.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mqtt_broker import free_port


@dataclass
class HttpSink:
    """A real HTTP server on 127.0.0.1 that records POSTed JSON and answers ``statuses`` in
    turn (then 200)."""

    url: str
    received: list[Any]
    statuses: list[int]


__all__ = ["HttpSink", "free_port"]

"""Prediction ids made on the device: ULIDs (26 Crockford base32 characters, 48 bits of
milliseconds then 80 random bits), strictly increasing within a device, across restarts too.

The hub stores a device's predictions under the ids the device gave them, so sending a batch
twice changes nothing, and sorting by id gives the order the device made them in. The hub's own
ids (``planta.store.ids``) use the same layout, so both kinds sort together.

>>> gen = IdGenerator()
>>> a, b = gen.next(), gen.next()
>>> len(a) == 26 and a < b
True
>>> IdGenerator(after="7ZZZZZZZZZZZZZZZZZZZZZZZZY").next()
'7ZZZZZZZZZZZZZZZZZZZZZZZZZ'
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}


def _encode(value: int) -> str:
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def _decode(text: str) -> int:
    value = 0
    for c in text.upper():
        value = (value << 5) | _INDEX[c]
    return value


class IdGenerator:
    """Strictly increasing ULIDs; ``after`` (the last id issued before a restart) seeds it, so
    a device whose clock stepped back still never reuses or reorders an id."""

    def __init__(self, after: str | None = None) -> None:
        self._lock = threading.Lock()
        self._last = _decode(after) if after else 0

    def next(self) -> str:
        """One new id."""
        return self.take(1)[0]

    def take(self, n: int) -> list[str]:
        """``n`` consecutive new ids, in order."""
        with self._lock:
            fresh = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
            first = max(fresh, self._last + 1)
            self._last = first + n - 1
        return [_encode(first + i) for i in range(n)]


__all__ = ["IdGenerator"]

"""Sortable ids (ULID): 48 bits of milliseconds, then 80 random bits, as 26 Crockford base32
characters. Ids from one process are strictly increasing, and a batch of ``n`` predictions gets
``n`` consecutive ids, so the prediction log stores a request as one row holding the first and
the last id (see :mod:`planta.store.predictions`).

>>> first = reserve(3)
>>> ids = id_range(first, 3)
>>> ids == sorted(ids) and len(set(ids)) == 3 and offset_of(ids[0], ids[2]) == 2
True
>>> decode(encode(12345)) == 12345
True
"""

from __future__ import annotations

import base64
import os
import threading
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)} | {
    c.lower(): i for i, c in enumerate(_ALPHABET)}
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 1,024 two-character suffixes
_MAX = (1 << 128) - 1
_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
_lock = threading.Lock()
_last = 0
# Random bits from os.urandom, read 4 KiB at a time (one system call per 400 ids, not per id).
_POOL_BYTES = 4096
_pool = b""
_pool_at = 0


def encode(value: int) -> str:
    """A 128-bit integer as a 26-character ULID."""
    if not 0 <= value <= _MAX:
        raise ValueError(f"{value} does not fit in a ULID")
    # 160 bits are 32 base32 characters; the first 6 carry 30 of the 32 leading zero bits.
    return base64.b32encode(value.to_bytes(20, "big")).translate(_CROCKFORD)[6:].decode()


def decode(text: str) -> int:
    """A ULID back to its integer; ``ValueError`` when ``text`` is not one."""
    if not isinstance(text, str) or len(text) != 26 or text[0] not in "01234567":
        raise ValueError(f"{text!r} is not a ULID")
    value = 0
    for c in text:
        digit = _DECODE.get(c)
        if digit is None:
            raise ValueError(f"{text!r} is not a ULID")
        value = (value << 5) | digit
    return value


def is_id(text: object) -> bool:
    """True when ``text`` is a well-formed ULID."""
    try:
        decode(text)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def reserve(n: int = 1) -> int:
    """Reserve ``n`` consecutive ids and return the first as an integer.

    The random part starts below half its range, so a batch never carries into the timestamp.
    """
    global _last, _pool, _pool_at
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        if _pool_at + 10 > len(_pool):
            _pool, _pool_at = os.urandom(_POOL_BYTES), 0
        random79 = int.from_bytes(_pool[_pool_at:_pool_at + 10], "big") >> 1
        _pool_at += 10
        first = (now_ms << 80) | random79
        if first <= _last:
            first = _last + 1
        _last = first + max(n, 1) - 1
    return first


def new_id() -> str:
    """One fresh id."""
    return encode(reserve(1))


def id_range(first: int | str, n: int) -> list[str]:
    """The ``n`` consecutive ids starting at ``first`` (fast: one encoding, then suffixes)."""
    start = decode(first) if isinstance(first, str) else first
    low = start & 0xFFFFF
    if low + n > 0xFFFFF:  # the last four characters would carry: encode each
        return [encode(start + i) for i in range(n)]
    prefix = encode(start)[:22]
    pairs = _PAIRS
    return [prefix + pairs[v >> 10] + pairs[v & 1023] for v in range(low, low + n)]


def offset_of(first: str, other: str) -> int:
    """How many ids after ``first`` ``other`` comes."""
    return decode(other) - decode(first)


def timestamp(text: str) -> datetime:
    """When an id was made (millisecond precision, UTC)."""
    return datetime.fromtimestamp((decode(text) >> 80) / 1000, UTC)


__all__ = ["decode", "encode", "id_range", "is_id", "new_id", "offset_of", "reserve",
           "timestamp"]

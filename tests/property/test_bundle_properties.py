"""Any bundle survives a round trip; any flipped byte raises IntegrityError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planta.core.bundle import write_bundle
from planta.errors import IntegrityError
from planta_edge.bundle import read_bundle

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9_.]{0,8})?", fullmatch=True).filter(
    lambda n: n != "manifest.json")
members = st.dictionaries(names, st.binary(max_size=300), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(members=members)
def test_round_trip(members: dict[str, bytes]) -> None:
    assert dict(read_bundle(write_bundle(members, version=1)).members) == members


@settings(max_examples=60, deadline=None)
@given(members=members, where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_flipped_byte_is_refused(members: dict[str, bytes], where: float, bit: int) -> None:
    data = bytearray(write_bundle(members, version=1))
    data[int(where * len(data))] ^= 1 << bit
    with pytest.raises(IntegrityError):
        read_bundle(bytes(data))

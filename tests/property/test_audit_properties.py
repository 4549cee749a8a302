"""Property: editing or deleting any audit event is detected (and an untouched trail passes)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from planta.store import AuditLog, open_store

# Bounded here because the shared ci/dev profiles live in the root conftest, which this suite
# does not own; each example builds a fresh in-memory store in a few milliseconds.
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                max_size=12).filter(lambda s: s.strip() != "")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)
events = st.lists(st.tuples(words, words, words, st.dictionaries(st.text(max_size=6),
                                                                    json_values, max_size=4)),
                  min_size=1, max_size=10)


def _trail(items):
    store = open_store("sqlite://")
    log = AuditLog(store)
    for action, subject, actor, payload in items:
        log.append(action, subject, actor, payload)
    return store, log


@SETTINGS
@given(events)
def test_an_untouched_trail_always_verifies(items) -> None:
    store, log = _trail(items)
    with store:
        result = log.verify(known_head=log.head())
        assert result.ok and result.count == len(items), result.problems


@SETTINGS
@given(events, st.data(), st.sampled_from(["actor", "action", "subject", "payload"]))
def test_editing_any_event_is_detected_and_named(items, data, column) -> None:
    store, log = _trail(items)
    with store:
        seq = data.draw(st.integers(1, len(items)), label="seq")
        with store.engine.begin() as conn:
            old = conn.execute(text(f"SELECT {column} FROM audit_events WHERE seq = :s"),
                               {"s": seq}).scalar()
            new = data.draw(st.text(min_size=1, max_size=12).filter(lambda v: v != old),
                            label="new value")
            if column == "payload":
                new = '{"edited": true}' if old != '{"edited":true}' else '{"x":1}'
            conn.execute(text(f"UPDATE audit_events SET {column} = :v WHERE seq = :s"),
                         {"v": new, "s": seq})
        result = log.verify()
        assert not result.ok
        assert any(f"Event {seq} " in p for p in result.problems), result.problems


@SETTINGS
@given(events, st.data())
def test_deleting_any_event_is_detected_against_the_known_head(items, data) -> None:
    store, log = _trail(items)
    with store:
        known = log.head()
        seq = data.draw(st.integers(1, len(items)), label="seq")
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": seq})
        result = log.verify(known_head=known)
        assert not result.ok and result.count == len(items) - 1
        if seq < len(items):  # a hole in the middle shows even without the noted head
            assert not log.verify().ok

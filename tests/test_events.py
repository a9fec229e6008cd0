"""The event log's kinds: recorded as plain text, read back as `EventKind`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine

from pitstop.events import EventKind, list_events, record_event
from pitstop.rules import Rule
from pitstop.store.tables import metadata


def test_an_event_is_stored_as_text_and_read_back_typed() -> None:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        record_event(
            conn,
            time=datetime(2026, 3, 1, tzinfo=UTC),
            model_id=None,
            kind=EventKind.ROUTING_CHANGED,
            actor="controller",
            rule=Rule.RAMP_STEP,
        )
        stored = conn.exec_driver_sql("SELECT kind, rule FROM events").one()
        (event,) = list_events(conn)
    assert tuple(stored) == ("routing_changed", "ramp.step")
    assert event.kind is EventKind.ROUTING_CHANGED
    assert event.rule == "ramp.step"

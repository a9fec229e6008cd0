"""The prediction log's failed calls grouped by message (`store.error_messages`): one query, the most
frequent first, bounded in number and length."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert

from pitstop.store.predictions.error_messages import TEXT_LIMIT, error_messages
from pitstop.store.tables import predictions
from pitstop.workspace import Workspace

T0 = 1_770_000_000.0


def log(ws: Workspace, *rows: tuple[int, str, int, float, str | None]) -> int:
    """Write (version, role, routing version, time, error) records of a new model; returns its id."""
    model_id = ws.create_model("m", task="regression", target="y", features=["a"]).id
    with ws.writing() as conn:
        conn.execute(
            insert(predictions),
            [
                {
                    "model_id": model_id,
                    "request_id": f"r{i}",
                    "time": time,
                    "version": version,
                    "arm": "challenger",
                    "role": role,
                    "routing_version": routing,
                    "bucketed_by": "request",
                    "prediction": None if error else 1.0,
                    "latency_ms": 1.0,
                    "error": error,
                }
                for i, (version, role, routing, time, error) in enumerate(rows)
            ],
        )
    return model_id


def test_messages_are_counted_per_version_and_role_with_first_and_last_times(workspace: Workspace) -> None:
    model_id = log(
        workspace,
        (2, "shadow", 1, T0 + 5, "ValueError: bad"),
        (2, "shadow", 1, T0 + 1, "ValueError: bad"),
        (2, "shadow", 1, T0 + 3, "ValueError: bad"),
        (2, "served", 1, T0 + 2, "ValueError: bad"),
        (2, "shadow", 1, T0 + 4, None),
    )
    until = datetime.fromtimestamp(T0 + 10, UTC)
    with workspace.reading() as conn:
        found = error_messages(conn, model_id, since_routing_version=1, until=until)
    first, second = found.messages
    assert (first.version, first.role, first.error, first.count) == (2, "shadow", "ValueError: bad", 3)
    assert (first.first_seen.timestamp(), first.last_seen.timestamp()) == (T0 + 1, T0 + 5)
    assert (second.role, second.count) == ("served", 1)


def test_only_the_most_frequent_messages_are_kept_and_long_ones_are_cut(workspace: Workspace) -> None:
    long = "RuntimeError: " + "x" * 400
    rows = [(2, "shadow", 1, T0, long)] * 3 + [(2, "shadow", 1, T0, f"E{i}") for i in range(6)]
    model_id = log(workspace, *rows)
    until = datetime.fromtimestamp(T0 + 1, UTC)
    with workspace.reading() as conn:
        found = error_messages(conn, model_id, since_routing_version=1, until=until, limit=2)
    assert [m.count for m in found.messages] == [3, 1] and found.more == 5
    cut = found.messages[0].error
    assert len(cut) == TEXT_LIMIT and cut.endswith("…") and cut.startswith("RuntimeError: xxx")


def test_calls_before_the_routing_version_or_after_until_do_not_count(workspace: Workspace) -> None:
    model_id = log(
        workspace, (2, "shadow", 1, T0, "old"), (2, "shadow", 2, T0, "new"), (2, "shadow", 2, T0 + 9, "late")
    )
    with workspace.reading() as conn:
        found = error_messages(
            conn, model_id, since_routing_version=2, until=datetime.fromtimestamp(T0 + 1, UTC)
        )
    assert [m.error for m in found.messages] == ["new"]

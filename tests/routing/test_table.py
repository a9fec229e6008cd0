"""Routing is sticky and monotone (guarantee 2): pure functions, checked with hypothesis."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitstop.routing.table import RoutingTable, bucket

NOW = datetime(2026, 1, 1, tzinfo=UTC)
keys = st.text(min_size=1, max_size=40)
salts = st.text(alphabet="0123456789abcdef", min_size=1, max_size=16)
shares = st.floats(min_value=0.0, max_value=1.0)


def table(
    share: float = 0.0, *, salt: str = "s", shadow: int | None = None, challenger: int | None = 2
) -> RoutingTable:
    return RoutingTable(
        model="eta",
        version=3,
        champion=1,
        challenger=challenger,
        challenger_share=share,
        shadow=shadow,
        salt=salt,
        rollout_id=None,
        step=None,
        standby=None,
        created_at=NOW,
    )


def test_bucket_is_the_documented_blake2b_value_not_pythons_hash() -> None:
    digest = hashlib.blake2b(b"salt:user-1", digest_size=8).digest()
    assert bucket("salt", "user-1") == int.from_bytes(digest, "big") / 2**64
    assert bucket("salt", "user-1") == 0.10013228892203777


@given(salts, keys)
def test_bucket_lies_in_the_unit_interval(salt: str, key: str) -> None:
    assert 0.0 <= bucket(salt, key) < 1.0


@given(salts, keys, shares, st.lists(keys, min_size=2, max_size=5))
def test_same_user_same_arm_whatever_the_request(
    salt: str, user: str, share: float, requests: list[str]
) -> None:
    routes = {table(share, salt=salt).route(user, rid) for rid in requests}
    assert len({(r.arm, r.version, r.bucketed_by) for r in routes}) == 1


@given(salts, keys, shares, shares)
def test_raising_the_share_never_moves_a_user_back_to_the_champion(
    salt: str, user: str, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    before = table(low, salt=salt).route(user, "r").arm
    after = table(high, salt=salt).route(user, "r").arm
    assert not (before == "challenger" and after == "champion")


@given(salts, keys)
def test_share_zero_serves_only_the_champion_and_one_only_the_challenger(salt: str, user: str) -> None:
    assert table(0.0, salt=salt).route(user, "r").version == 1
    assert table(1.0, salt=salt).route(user, "r").version == 2


@given(salts, keys, shares)
def test_without_user_id_the_request_id_is_the_key(salt: str, request_id: str, share: float) -> None:
    by_request = table(share, salt=salt).route(None, request_id)
    as_user = table(share, salt=salt).route(request_id, "other")
    assert by_request.bucketed_by == "request" and as_user.bucketed_by == "user"
    assert (by_request.arm, by_request.bucket) == (as_user.arm, as_user.bucket)


def test_the_split_matches_the_share_over_many_users() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    on_challenger = sum(table(0.1).route(u, "r").arm == "challenger" for u in users)
    assert 0.09 < on_challenger / len(users) < 0.11


def test_a_new_salt_reassigns_users_independently() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    first = {u for u in users if table(0.5, salt="a").route(u, "r").arm == "challenger"}
    second = {u for u in users if table(0.5, salt="b").route(u, "r").arm == "challenger"}
    assert 0.23 < len(first & second) / len(users) < 0.27


def test_mode_is_derived_from_share_and_shadow() -> None:
    assert table(0.0, challenger=None).mode == "off"
    assert table(0.0, shadow=2).mode == "shadow"
    assert table(0.1).mode == "split"
    assert table(1.0, shadow=1).mode == "split"


def test_shadow_is_scored_only_when_it_differs_from_the_served_version() -> None:
    full_ramp = table(1.0, shadow=1)  # at 100 % the old champion keeps running in shadow
    assert full_ramp.shadow_for(2) == 1
    assert full_ramp.shadow_for(1) is None
    assert table(0.0, shadow=2).shadow_for(1) == 2
    assert table(0.1).shadow_for(1) is None


def test_only_versions_that_may_answer_are_served_the_shadow_only_scores() -> None:
    assert table(0.0, shadow=2).served_versions == {1}  # the gateway loads v2 for shadow scoring only
    assert table(0.1).served_versions == {1, 2}
    assert table(1.0, shadow=1).served_versions == {1, 2}  # the champion is always loaded, as before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"challenger_share": 1.5}, "challenger_share must be in"),
        ({"challenger": None, "challenger_share": 0.2}, "must be 0 when there is no challenger"),
        ({"challenger": 1}, "must differ from the champion"),
        ({"salt": "", "challenger_share": 0.2}, "needs a salt"),
    ],
)
def test_impossible_tables_are_refused(changes: dict[str, object], message: str) -> None:
    fields = {**table(0.0).__dict__, **changes}
    with pytest.raises(ValueError, match=message):
        RoutingTable(**fields)  # type: ignore[arg-type]


def test_describe_names_version_mode_and_share() -> None:
    assert table(0.1).describe() == "#3 split 10%"
    assert table(0.0, shadow=2).describe() == "#3 shadow"
    assert RoutingTable.initial("eta", 1, NOW).describe() == "#0 off"


def test_transitions_build_the_routes_a_change_asks_for() -> None:
    from pitstop.routing.table import Routes

    shadow = Routes.shadowing(1, 2, "s", rollout_id=7)
    assert (shadow.champion, shadow.challenger, shadow.challenger_share, shadow.shadow) == (1, 2, 0.0, 2)
    step = Routes.at_share(1, 2, 0.25, "s", rollout_id=7, step=1)
    assert (step.challenger_share, step.shadow, step.step) == (0.25, None, 1)
    assert Routes.at_share(1, 2, 1.0, "s").shadow == 1  # at 100 % the champion shadows the challenger
    ended = Routes.champion_only(2, "s", rollout_id=7, standby=1)
    assert (ended.challenger, ended.shadow, ended.standby) == (None, None, 1)
    assert ended.without_standby() == Routes.champion_only(2, "s", rollout_id=7)
    assert step.with_champion(3) == Routes(3, salt="s")
    table = RoutingTable(model="m", version=4, created_at=datetime(2026, 1, 1, tzinfo=UTC), **vars(step))
    assert table.routes == step

"""The routing table and the hash that assigns users to arms: pure values, no I/O, no clock.

A routing table is immutable; a change is a new table with a higher `version`, swapped in by one
assignment (guarantee 3). The serving rule, per request:

1. `bucket(salt, user_id or request_id)` is a float in [0, 1), stable across processes and restarts;
2. the challenger serves iff bucket < `challenger_share`, else the champion;
3. if `shadow` is set and differs from the served version, it is also scored, off the request path.

Because step 2 compares one fixed number with the share, raising the share only ever moves users
from the champion to the challenger (guarantee 2); a new salt starts an independent experiment.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, NamedTuple

from pitstop.store.predictions import rows

Arm = Literal["champion", "challenger"]
Role = Literal["served", "shadow", "timing"]
# A `timing` record times a sampled shadow request the way a served call is made (`timing.py`): latency
# evidence only; its prediction repeats the shadow's, so errors and counts leave it out.
SERVED: Role = "served"
SHADOW: Role = "shadow"
TIMING: Role = rows.TIMING
BucketedBy = Literal["user", "request"]
Mode = Literal["off", "shadow", "split"]

_SCALE = float(2**64)


def bucket(salt: str, key: str) -> float:
    """The key's position in [0, 1) under `salt`: the first 8 bytes of blake2b(salt:key) over 2**64.

    Never Python's `hash()`, which is salted per process, so every worker and every restart agrees.

    >>> bucket("s1", "u1") == bucket("s1", "u1")
    True
    >>> 0.0 <= bucket("s1", "u1") < 1.0
    True
    """
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def new_salt() -> str:
    """A fresh random salt: one per rollout, and per manual route change from off."""
    return secrets.token_hex(8)


class Route(NamedTuple):
    """Where one request goes: the arm and version that answer it, and what it was bucketed by."""

    arm: Arm
    version: int
    bucketed_by: BucketedBy
    bucket: float


@dataclass(frozen=True)
class Routes:
    """What a routing table serves, without its number and time: the value a change asks for.

    Build one with a transition (`shadowing`, `at_share`, `champion_only`, `RoutingTable.routes`,
    `with_champion`, `without_standby`); `store.save` (through a `provider`) numbers and stores it.
    """

    champion: int
    challenger: int | None = None
    challenger_share: float = 0.0
    shadow: int | None = None
    salt: str = ""
    rollout_id: int | None = None
    step: int | None = None
    standby: int | None = None

    @classmethod
    def champion_only(
        cls, champion: int, salt: str, *, rollout_id: int | None = None, standby: int | None = None
    ) -> Routes:
        """Only `champion` serves: no challenger, no shadow (a rollout's end, a route turned off).
        `standby` keeps a version loaded for an instant rollback, unscored."""
        return cls(champion, salt=salt, rollout_id=rollout_id, standby=standby)

    @classmethod
    def shadowing(cls, champion: int, challenger: int, salt: str, *, rollout_id: int | None = None) -> Routes:
        """`champion` serves every user; `challenger` is scored on the same requests, off the path."""
        return cls(champion, challenger, 0.0, challenger, salt, rollout_id)

    @classmethod
    def at_share(
        cls,
        champion: int,
        challenger: int,
        share: float,
        salt: str,
        *,
        rollout_id: int | None = None,
        step: int | None = None,
    ) -> Routes:
        """`challenger` serves the users whose bucket is below `share`, the champion the rest. At 100 %
        the champion shadows the challenger, so every request still pairs both models' errors."""
        shadow = champion if share >= 1.0 else None
        return cls(champion, challenger, float(share), shadow, salt, rollout_id, step)

    def with_champion(self, champion: int) -> Routes:
        """Only `champion` serves, under the same salt (a champion set by hand)."""
        return Routes.champion_only(champion, self.salt)

    def without_standby(self) -> Routes:
        """The same routes with the standby version unloaded (its time after a promotion is over)."""
        return replace(self, standby=None)


@dataclass(frozen=True)
class RoutingTable:
    """One immutable routing configuration of one model.

    `version` 0 is the implicit table of a model that has a champion but no routing row yet.
    `standby` is a version kept loaded (the previous champion after promotion) so a rollback
    needs no load; it is never scored.
    """

    model: str
    version: int
    champion: int
    challenger: int | None
    challenger_share: float
    shadow: int | None
    salt: str
    rollout_id: int | None
    step: int | None
    standby: int | None
    created_at: datetime

    def __post_init__(self) -> None:
        if self.version < 0:
            raise ValueError(f"version must be >= 0, got {self.version}")
        if not (0.0 <= self.challenger_share <= 1.0) or math.isnan(self.challenger_share):
            raise ValueError(f"challenger_share must be in [0, 1], got {self.challenger_share}")
        if self.challenger is None and self.challenger_share != 0.0:
            raise ValueError("challenger_share must be 0 when there is no challenger")
        if self.challenger is not None and self.challenger == self.champion:
            raise ValueError(f"challenger must differ from the champion (both are version {self.champion})")
        if self.challenger_share > 0 and not self.salt:
            raise ValueError("a split needs a salt")

    @classmethod
    def initial(cls, model: str, champion: int, created_at: datetime) -> RoutingTable:
        """The table of a model without routing rows: its champion alias, mode off, version 0."""
        return cls(
            model=model,
            version=0,
            champion=champion,
            challenger=None,
            challenger_share=0.0,
            shadow=None,
            salt="",
            rollout_id=None,
            step=None,
            standby=None,
            created_at=created_at,
        )

    @property
    def routes(self) -> Routes:
        """What this table serves, to build the next one from."""
        return Routes(
            self.champion,
            self.challenger,
            self.challenger_share,
            self.shadow,
            self.salt,
            self.rollout_id,
            self.step,
            self.standby,
        )

    @property
    def mode(self) -> Mode:
        """`split` when the challenger serves a share, `shadow` when it only shadows, else `off`."""
        if self.challenger_share > 0:
            return "split"
        if self.shadow is not None:
            return "shadow"
        return "off"

    @property
    def served_versions(self) -> frozenset[int]:
        """The versions a gateway keeps ready to answer requests: the champion always, the standby, and
        the challenger when it has a share (a shadow only scores, on a runner of its own)."""
        named = (self.champion, self.standby, self.challenger if self.challenger_share > 0 else None)
        return frozenset(v for v in named if v is not None)

    def route(self, user_id: str | None, request_id: str) -> Route:
        """The arm serving this request: sticky by user_id, else by request_id."""
        by: BucketedBy = "user" if user_id is not None else "request"
        position = bucket(self.salt, user_id if user_id is not None else request_id)
        if self.challenger is not None and position < self.challenger_share:
            return Route("challenger", self.challenger, by, position)
        return Route("champion", self.champion, by, position)

    def sampled(self, sample: str, request_id: str, share: float) -> bool:
        """Whether a request falls in the first `share` of the buckets of one of the table's samples
        (`shadow`: the requests scored in shadow, `timing`: the shadow requests also timed as served),
        each its own salt, so the samples are independent of the split and of each other."""
        return bucket(f"{sample}:{self.salt}", request_id) < share

    def shadow_for(self, served_version: int) -> int | None:
        """The version to score in shadow next to `served_version`, if any."""
        if self.shadow is None or self.shadow == served_version:
            return None
        return self.shadow

    def describe(self) -> str:
        """A short state for events and logs: `#4 split 10%`, `#3 shadow`, `#2 off`.

        The number is the routing table's version (`#`, never `v`, which names model versions).
        """
        if self.mode == "split":
            return f"#{self.version} split {self.challenger_share * 100:g}%"
        return f"#{self.version} {self.mode}"

    def same_routing(self, other: RoutingTable) -> bool:
        """True when both tables route identically (everything but the creation time)."""
        return self.key() == other.key()

    def key(self) -> tuple[object, ...]:
        return (
            self.model,
            self.version,
            self.champion,
            self.challenger,
            self.challenger_share,
            self.shadow,
            self.salt,
            self.rollout_id,
            self.step,
            self.standby,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": self.version,
            "mode": self.mode,
            "champion": self.champion,
            "challenger": self.challenger,
            "challenger_share": self.challenger_share,
            "shadow": self.shadow,
            "standby": self.standby,
            "salt": self.salt,
            "rollout_id": self.rollout_id,
            "step": self.step,
            "created_at": self.created_at.isoformat(),
        }

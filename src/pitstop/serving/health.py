"""What a gateway reports about its parts (`Gateway.health`, `GET /v1/health`).

Readiness (`/readyz`) is only "can the champion of every model be served"; everything else that can
go wrong while the champion serves (a challenger or shadow that cannot load, a routing change not
applied, a failing prediction-log writer, a store outage) is here, so an operator sees it without a
load balancer taking the fleet out of rotation for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from pitstop.serving.isolation import MemoryUse
from pitstop.store.load_failures import LoadFailure

PartStatus = Literal["ok", "not_loaded", "unavailable"]


@dataclass(frozen=True)
class Part:
    """One version a model's routing uses, and whether it is loaded (why not, when known)."""

    version: int | None
    status: PartStatus
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "status": self.status, "problem": self.problem}


@dataclass(frozen=True)
class ModelHealth:
    """A model's champion, challenger and shadow under the routing in use, and a change not applied."""

    routing_version: int | None
    champion: Part
    challenger: Part | None
    shadow: Part | None
    problem: str | None  # the newest routing change that could not be applied (the old table serves)
    shadow_process: MemoryUse | None = None  # the shadow's own process: memory, limit, restarts
    load_failures: tuple[LoadFailure, ...] = ()  # versions routing asks for that fail to load here

    def to_dict(self) -> dict[str, Any]:
        process = self.shadow_process
        return {
            "load_failures": [failure.to_dict() for failure in self.load_failures],
            "routing_version": self.routing_version,
            "champion": self.champion.to_dict(),
            "challenger": None if self.challenger is None else self.challenger.to_dict(),
            "shadow": None if self.shadow is None else self.shadow.to_dict(),
            "problem": self.problem,
            "shadow_process": None
            if process is None
            else {**process._asdict(), "restarts": dict(process.restarts)},
        }


@dataclass(frozen=True)
class SpoolHealth:
    """The prediction log's spool on disk (`spool.py`): what waits there for the store, and drops."""

    files: int  # every process's batches, at the writer's last pass
    bytes: int
    capacity: int  # serving.spool_max_bytes
    spooled: int  # records this process moved there
    dropped: int  # records this process dropped because the spool was full

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "capacity": self.capacity,
            "spooled": self.spooled,
            "dropped": self.dropped,
        }


@dataclass(frozen=True)
class LogHealth:
    """The prediction-log writer: whether its last write worked, and its queue."""

    healthy: bool
    depth: int
    capacity: int
    last_error: str | None
    dead_letters: int  # records the store refused for their data, set aside (`predlog.py`)
    last_dead_letter: str | None
    spool: SpoolHealth | None = None  # None: `serving.spool` is off

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy else "failing",
            "depth": self.depth,
            "capacity": self.capacity,
            "last_error": self.last_error,
            "dead_letters": self.dead_letters,
            "last_dead_letter": self.last_dead_letter,
            "spool": None if self.spool is None else self.spool.to_dict(),
        }


@dataclass(frozen=True)
class GatewayHealth:
    reasons: list[str]  # why the gateway is not ready (empty: every champion can be served)
    models: dict[str, ModelHealth]
    log: LogHealth
    store_error: str | None
    degraded: str | None = None  # serving cached champions alone while the store is down (`Gateway.degraded`)

    @property
    def status(self) -> str:
        """`unavailable` (not ready), `degraded` (ready, something else is wrong) or `ok`."""
        if self.reasons:
            return "unavailable"
        return "degraded" if self.degradations() else "ok"

    def degradations(self) -> list[str]:
        """What is wrong while every champion serves (`/readyz` lists it with a 200)."""
        found = []
        if self.store_error is not None:
            found.append(f"store unreachable (serving the last routing read): {self.store_error}")
        if not self.log.healthy:
            found.append(f"prediction log not written: {self.log.last_error}")
        spool = self.log.spool
        if spool is not None and spool.files:
            found.append(
                f"prediction log: {spool.files} batches ({spool.bytes} bytes) spooled on disk, "
                "written once the store answers"
            )
        if self.degraded is not None:
            found.append(self.degraded)
        for name, model in self.models.items():
            if model.problem:
                found.append(f"{name}: {model.problem}")
            found.extend(
                f"{name}: v{f.version} ({f.role}) does not load: {f.error}" for f in model.load_failures
            )
            for role, part in (("challenger", model.challenger), ("shadow", model.shadow)):
                if part is not None and part.status != "ok":
                    found.append(f"{name}: {role} v{part.version} {part.status}")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ready": not self.reasons,
            "reasons": self.reasons,
            "models": {name: model.to_dict() for name, model in self.models.items()},
            "prediction_log": self.log.to_dict(),
            "store": {
                "status": "ok" if self.store_error is None else "unreachable",
                "error": self.store_error,
            },
            "degraded": self.degraded,
        }


class PartBody(BaseModel):
    version: int | None
    status: str = Field(description="ok | not_loaded | unavailable")
    problem: str | None


class ShadowProcessBody(BaseModel):
    rss_bytes: int | None = Field(description="resident memory at the last reading")
    limit_bytes: int | None = Field(
        description="serving.shadow_memory_limit; over it the process is restarted"
    )
    restarts: dict[str, int] = Field(description="new processes by reason: memory (over the limit), exited")


class LoadFailureBody(BaseModel):
    version: int
    role: str = Field(description="champion | challenger | standby | shadow")
    error: str = Field(description="why it does not load, e.g. ModuleNotFoundError: No module named 'x'")
    first_seen: str = Field(description="the first failed attempt of this streak (ISO 8601)")
    last_seen: str = Field(description="the latest failed attempt (retried at every routing refresh)")
    attempts: int
    gateway: str = Field(description="this gateway process, as the store's reports name it")


class ModelHealthBody(BaseModel):
    routing_version: int | None
    champion: PartBody
    challenger: PartBody | None
    shadow: PartBody | None
    problem: str | None = Field(description="the newest routing change not applied (the old table serves)")
    shadow_process: ShadowProcessBody | None = Field(
        None, description="the shadow's own process (`serving.shadow_process`): memory, limit, restarts"
    )
    load_failures: list[LoadFailureBody] = Field(
        default_factory=list,
        description="versions the routing asks for that fail to load on this gateway, with their error",
    )


class LogHealthBody(BaseModel):
    status: str = Field(description="ok | failing")
    depth: int
    capacity: int
    last_error: str | None
    dead_letters: int = Field(description="records the store refused for their data, set aside")
    last_dead_letter: str | None
    spool: SpoolHealthBody | None = Field(
        None, description="records kept on disk while the store cannot be written; null: serving.spool off"
    )


class SpoolHealthBody(BaseModel):
    files: int = Field(description="batches waiting in the spool (every gateway process of the workspace)")
    bytes: int
    capacity: int = Field(description="serving.spool_max_bytes")
    spooled: int = Field(description="records this process moved to the spool")
    dropped: int = Field(description="records this process dropped because the spool was full")


class StoreHealthBody(BaseModel):
    status: str = Field(description="ok | unreachable")
    error: str | None


class HealthBody(BaseModel):
    """`GET /v1/health`: always 200; `status` says ok, degraded (serving, something else wrong) or
    unavailable (a champion cannot be served: `/readyz` is 503)."""

    status: str = Field(description="ok | degraded | unavailable")
    ready: bool
    reasons: list[str]
    models: dict[str, ModelHealthBody]
    prediction_log: LogHealthBody
    store: StoreHealthBody
    degraded: str | None = Field(
        description="why the gateway serves less than its routing asks: cached champions alone, store down"
    )

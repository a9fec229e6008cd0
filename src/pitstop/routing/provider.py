"""The interface a rollout drives routing through, after Flagger's router interface: set the routes of
a step, get the routes in force, finalize the end of a rollout.

A provider owns how routes reach the requests. The rollout controller and the manual operations call
only this interface, in the caller's store transaction, so their decision and the routing change
commit together; a provider for another routing layer (a Kubernetes Service selector, a mesh) plugs in
by implementing it, without touching the controller.

`GatewayRouting` is the provider of pitstop's own gateways: the next table is saved in the store and
every gateway serves it at once when it is pushed (PostgreSQL NOTIFY, `serving.push`), else within
its poll interval (`serving.poll_interval`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from pitstop.registry import ModelInfo
from pitstop.routing import store
from pitstop.routing.store import Change
from pitstop.routing.table import Routes, RoutingTable


class RoutingProvider(Protocol):
    """How routes reach the requests of one model."""

    def set_routes(self, conn: Connection, model: ModelInfo, routes: Routes, change: Change) -> RoutingTable:
        """Put `routes` in force (a rollout's start or step, a route set by hand); the new table."""
        ...

    def get_routes(self, conn: Connection, model: ModelInfo, now: datetime) -> RoutingTable | None:
        """The routes in force: None while the model has no champion to serve."""
        ...

    def finalize(self, conn: Connection, model: ModelInfo, routes: Routes, change: Change) -> RoutingTable:
        """End a rollout: only `routes.champion` serves from now on (with a standby, if any)."""
        ...


class GatewayRouting:
    """pitstop's gateways: tables saved in the store, polled by every gateway process."""

    def set_routes(self, conn: Connection, model: ModelInfo, routes: Routes, change: Change) -> RoutingTable:
        return store.save(conn, model, routes, change)

    def get_routes(self, conn: Connection, model: ModelInfo, now: datetime) -> RoutingTable | None:
        return store.effective_routing(conn, model, now)

    def finalize(self, conn: Connection, model: ModelInfo, routes: Routes, change: Change) -> RoutingTable:
        if routes.challenger is not None or routes.shadow is not None:
            raise ValueError(f"a finished rollout serves its champion only, not {routes}")
        return store.save(conn, model, routes, change)


def provider() -> RoutingProvider:
    """The routing provider of this installation: pitstop's gateways' tables in the store.

    Under `routing.provider: kubernetes` the same tables are written here, in the caller's
    transaction, and the cluster follows them after it commits: the leading controller reconciles
    the Deployments and the stable Service after each round (`pitstop.cluster.reconcile`). Patching
    the cluster inside the transaction would leave it ahead of the store whenever that rolls back."""
    return GatewayRouting()

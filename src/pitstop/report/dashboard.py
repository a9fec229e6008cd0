"""The gateway's live dashboard's data: what `GET /v1/dashboard` answers (`http.dashboard` serves it,
with the page and plotly.js shipped with pitstop: read-only, no external network).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from pitstop import registry
from pitstop.errors import PitstopError, StoreUnavailableError
from pitstop.events import list_events
from pitstop.formats import fmt_time
from pitstop.jsonable import json_safe
from pitstop.registry import Alias, ModelInfo
from pitstop.report.data import gather_report
from pitstop.report.figures import build_figures, figure_json
from pitstop.report.glance import glance, unreadable
from pitstop.report.values import LatencyCheck, ReportData, StatusWords
from pitstop.report.words import shadow_comparison_words, status_words
from pitstop.rollout.actions import RolloutStatus, status
from pitstop.rollout.apply import describe
from pitstop.rollout.manual_shadow import ShadowComparison, compare
from pitstop.rollout.records import StoredRollout, active_rollout, latest_rollout
from pitstop.rollout.state import challenger_share
from pitstop.store.gateways import heartbeats

if TYPE_CHECKING:
    from pitstop.serving.gateway import Gateway
    from pitstop.serving.metrics import GatewayMetrics

log = logging.getLogger("pitstop.dashboard")

RECENT_EVENTS = 15
POLL_SECONDS = 5.0  # how often the page polls by default: live enough, and cheap for the gateway
COUNTERS = {
    "pitstop_predictions": "predictions",
    "pitstop_prediction_errors": "prediction errors",
    "pitstop_invalid_requests": "invalid requests (4xx)",
    "pitstop_shadow_timeouts": "shadow timeouts",
    "pitstop_shadow_errors": "shadow errors",
    "pitstop_shadow_skipped": "shadow calls skipped",
    "pitstop_shadow_restarts": "shadow process restarts",
    "pitstop_predlog_written": "prediction records written",
    "pitstop_predlog_write_failures": "prediction log write failures",
    "pitstop_predlog_dropped": "prediction records dropped",
    "pitstop_predlog_dead_letters": "prediction records refused by the store (dead letters)",
    "pitstop_labels_accepted": "labels accepted",
    "pitstop_routing_errors": "routing changes not applied",
}


def dashboard_data(gateway: Gateway, *, recent: int = RECENT_EVENTS) -> dict[str, Any]:
    """What the dashboard shows, as JSON: per model its glance (phase, share, verdict, next check, last
        decision, the rollout's health), versions, the report series of its active (or latest) rollout with
        the charts built from them, and recent events; then every gateway of the store (its heartbeat: live
    or stale, what it serves) and this gateway's health."""
    now = gateway.clock.now()
    health = gateway_health(gateway)
    timeout = gateway.settings.gateway_timeout
    gateways: list[dict[str, Any]] = []
    try:
        with gateway.ws.reading() as conn:
            infos = registry.list_models(conn)
            gateways = [beat.to_dict(now, timeout) for beat in heartbeats(conn)]
        models = [_card(gateway, info, now, recent) for info in infos]
    except StoreUnavailableError as error:
        health["store_error"] = str(error)
        models = []
    return {
        "generated_at": now.isoformat(),
        "generated": fmt_time(now),
        "health": health,
        "gateways": gateways,  # every gateway process of the store, live or stale (`store.gateways`)
        "models": models,
    }


def _live_status(gateway: Gateway, view: dict[str, Any]) -> RolloutStatus | None:
    """`rollout status` of an active rollout: its live evidence and the next check's preview."""
    rollout = view["rollout"]
    if rollout is None or rollout["outcome"] is not None:
        return None
    return status(gateway.ws, view["name"], rollout["rollout_id"])


def _hand_made_shadow(gateway: Gateway, view: dict[str, Any]) -> ShadowComparison | None:
    """`pitstop compare` of a shadow set by hand (none while a rollout is active)."""
    routing, rollout = view["routing"], view["rollout"]
    if routing is None or routing["shadow"] is None or routing["rollout_id"] is not None:
        return None
    if rollout is not None and rollout["outcome"] is None:
        return None
    return compare(gateway.ws, view["name"])


def _live_words(gateway: Gateway, view: dict[str, Any]) -> tuple[RolloutStatus | None, StatusWords | None]:
    """The live status of the model's active rollout and its words, else the words of a shadow set by
    hand (and its phase label), else nothing."""
    live = _live_status(gateway, view)
    if live is not None:
        return live, status_words(live)
    manual = _hand_made_shadow(gateway, view)
    if manual is None:
        return None, None
    view["phase_label"], view["phase_class"] = "shadow (set by hand)", "shadow"
    return None, shadow_comparison_words(manual)


def _card(gateway: Gateway, info: ModelInfo, now: datetime, recent: int) -> dict[str, Any]:
    """One model's card. A model whose report or live status cannot be read (its loss function
    raises, say) gets its card with the reason instead, and the other models theirs; an unreachable
    store is the whole dashboard's."""
    with gateway.ws.reading() as conn:
        stored = active_rollout(conn, info.id) or latest_rollout(conn, info.id)
        view = _model_view(conn, gateway, info, stored, recent)
    try:
        with gateway.ws.reading() as conn:
            report = gather_report(conn, info.name, stored.state.id, now) if stored is not None else None
        return _with_report(gateway, dict(view), report)
    except StoreUnavailableError:
        raise
    except PitstopError as error:
        log.warning("dashboard: cannot read the status of %s: %s", info.name, error)
        versions = (view["champion"], view["challenger"])
        said = unreadable(view["phase_label"], versions, view["share"], str(error))
        return {**view, "status_error": str(error), "glance": json_safe(asdict(said))}


def _with_report(gateway: Gateway, view: dict[str, Any], report: ReportData | None) -> dict[str, Any]:
    """The view with its glance, and the report series and charts of its rollout."""
    live, words = _live_words(gateway, view)
    if report is not None and live is not None and live.latency is not None:
        report = replace(report, latency_check=LatencyCheck.of(live.latency))
    versions = (view["champion"], view["challenger"])
    glanced = None if live is None and words is not None else report  # a hand-made shadow's own words
    view["glance"] = json_safe(asdict(glance(view["phase_label"], versions, view["share"], glanced, words)))
    if report is not None:
        view["report"] = report.to_dict()
        for message in view["report"]["errors"]["messages"]:
            message["seen"] = f"{fmt_time(message['first_seen'])} to {fmt_time(message['last_seen'])}"
        view["words"] = view["report"]["words"]
        view["figures"] = {name: figure_json(fig) for name, fig in build_figures(report).items()}
    return view


def _model_view(
    conn: Connection, gateway: Gateway, info: ModelInfo, stored: StoredRollout | None, recent: int
) -> dict[str, Any]:
    routing = gateway.routing(info.name) if info.name in gateway.models else None
    return {
        "name": info.name,
        "task": info.task.value,
        "champion": routing.champion if routing else info.aliases.get(Alias.CHAMPION.value),
        "challenger": routing.challenger if routing else info.aliases.get(Alias.CHALLENGER.value),
        "share": routing.challenger_share if routing else None,
        "routing": _unsalted(routing.to_dict()) if routing else None,
        "rollout": stored.to_dict() if stored else None,
        "started": fmt_time(stored.state.started_at) if stored else None,
        **_phase(stored),
        "events": [_unsalted_event(event.to_dict()) for event in list_events(conn, info.id, limit=recent)],
        "figures": {},
        "words": None,
    }


def _unsalted(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without a routing salt: the dashboard is open, and a salt lets a caller pick user ids
    that land in the arm it wants (see the gateway's routing endpoint)."""
    return {key: value for key, value in data.items() if key != "salt"}


def _unsalted_event(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    shown = {**event, "when": fmt_time(event.get("time"))}
    return {**shown, "data": _unsalted(data)} if isinstance(data, dict) else shown


def _phase(stored: StoredRollout | None) -> dict[str, Any]:
    """The phase as the API has it (`phase`), as people say it (`phase_label`), and its badge style."""
    if stored is None:
        return {"phase": None, "phase_label": "no rollout", "phase_class": ""}
    state = stored.state
    label = describe(state, challenger_share(state, stored.policy))
    style = state.outcome.value if state.outcome else state.phase.value
    return {"phase": state.phase.value, "phase_label": label, "phase_class": style}


def gateway_health(gateway: Gateway) -> dict[str, Any]:
    """Readiness with its reasons, the prediction log's queue, and the gateway's error counters."""
    reasons = gateway.readiness()
    log = gateway.log
    return {
        "ready": not reasons,
        "reasons": reasons,
        "models": gateway.models,
        "log": {
            "depth": log.depth,
            "capacity": log.queue_size,
            "healthy": log.healthy,
            "last_error": log.last_error,
        },
        "cannot_load": gateway.load_failures.lines(),
        "shadow_inflight": gateway.shadow.inflight,
        "shadow_processes": shadow_processes(gateway),
        "counters": counter_totals(gateway.metrics),
        "store_error": None,
    }


def shadow_processes(gateway: Gateway) -> dict[str, dict[str, Any]]:
    """Per model whose shadow runs in a process of its own: its version, resident memory, limit and
    restarts by reason."""
    processes = {}
    for model in gateway.models:
        runner = gateway.state(model).shadow_runner
        use = None if runner is None else runner.memory()
        if runner is not None and use is not None:
            processes[model] = {"version": runner.version, **use._asdict()}
    return processes


def counter_totals(metrics: GatewayMetrics) -> dict[str, float]:
    """Each counter of this gateway process summed over its labels, by a name people read."""
    totals = dict.fromkeys(COUNTERS.values(), 0.0)
    for family in metrics.registry.collect():
        name = COUNTERS.get(family.name)
        if name is None:
            continue
        totals[name] = sum(s.value for s in family.samples if s.name == f"{family.name}_total")
    return totals

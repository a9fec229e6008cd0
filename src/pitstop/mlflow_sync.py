"""`pitstop mlflow sync`: MLflow users own the `@challenger` alias; when it names a version pitstop has
not imported, pitstop imports it and, as `mlflow.on_challenger` says, gates it and starts a rollout.
pitstop owns `@champion` and `@previous`: `mirror` moves them to the MLflow versions of pitstop's own
champion and previous, and tags the challenger of each promoted or rolled-back rollout with the
decision. MLflow is written after pitstop's transactions, never inside one, and the mirror converges
(it compares and sets), so a failed write is simply done at the next look.

Importing is idempotent: a version whose lineage already records this MLflow model and version is not
imported again, however often the alias is polled or a webhook repeats. The alias is resolved to a
version number once, and that version is imported, so a move meanwhile is seen at the next poll.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pitstop import loading, mlflow_source, registration, registry
from pitstop.config import ChallengerAction
from pitstop.errors import AlreadyImportedError, PitstopError, UsageError
from pitstop.jsonable import json_safe

if TYPE_CHECKING:
    from pitstop.context import Context
    from pitstop.records.gate_result import GateResult
    from pitstop.registry import ModelInfo, VersionInfo

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
OWNED = ("champion", "previous")  # the MLflow aliases pitstop moves
TAG = "pitstop."  # the prefix of the tags pitstop sets on an MLflow version
MAX_TAG = 5000  # characters MLflow keeps in a tag value


class SyncOutcome(StrEnum):
    NO_CHALLENGER = "no_challenger"  # MLflow has no @challenger alias on the model
    ALREADY_IMPORTED = "already_imported"  # nothing to do
    IMPORTED = "imported"  # imported (and gated, and rolled out, as the action said)


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: the MLflow version `@challenger` names, pitstop's version of it, and the gate
    result and rollout when the action ran them."""

    model: str
    name: str
    outcome: SyncOutcome
    mlflow_version: str | None = None
    version: int | None = None
    gate: GateResult | None = None
    rollout_id: int | None = None

    def describe(self) -> str:
        if self.outcome is SyncOutcome.NO_CHALLENGER:
            return f"MLflow model {self.name!r} has no @{CHALLENGER} alias: nothing to import"
        said = f"MLflow {self.name} @{CHALLENGER} is version {self.mlflow_version}: {self.model} "
        if self.outcome is SyncOutcome.ALREADY_IMPORTED:
            return said + f"version {self.version} already (nothing to do)"
        said += f"version {self.version} imported"
        if self.gate is not None:
            said += f"; gate {'passed' if self.gate.passed else 'failed'}"
        return said + (f"; rollout {self.rollout_id} started" if self.rollout_id is not None else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "name": self.name,
            "outcome": self.outcome.value,
            "mlflow_version": self.mlflow_version,
            "version": self.version,
            "gate": None if self.gate is None else self.gate.to_json(),
            "rollout_id": self.rollout_id,
        }


def imported_version(ctx: Context, model: str, name: str, mlflow_version: str) -> VersionInfo | None:
    """pitstop's version of MLflow model `name` version `mlflow_version`, if imported."""
    with ctx.reading() as conn:
        return registry.imported_from_mlflow(conn, registry.get_model(conn, model), name, mlflow_version)


def sync(
    ctx: Context,
    model: str,
    *,
    name: str,
    tracking_uri: str | None = None,
    action: ChallengerAction | str | None = None,
    actor: str | None = None,
    version: str | None = None,
) -> SyncResult:
    """One look at MLflow's `@challenger` of `name`: import its version as the next version of `model`
    unless already imported, then gate it (`gate`) and start a rollout (`rollout`) on
    `mlflow.test_set`. `action` defaults to `mlflow.on_challenger`. `version` is the MLflow version a
    signed webhook said `@challenger` moved to: imported without asking MLflow again."""

    settings = ctx.config.mlflow
    chosen = ChallengerAction(action or settings.on_challenger)
    tracking = mlflow_source.tracking_uri(tracking_uri, settings.tracking_uri)
    loading.model_info(ctx, model)  # an unknown model fails before MLflow is asked
    mlflow_version = version or _challenger(tracking, name)
    if mlflow_version is None:
        return SyncResult(model, name, SyncOutcome.NO_CHALLENGER)
    known = imported_version(ctx, model, name, mlflow_version)
    if known is not None:
        return SyncResult(model, name, SyncOutcome.ALREADY_IMPORTED, mlflow_version, known.version)
    uri = f"models:/{name}/{mlflow_version}"
    try:
        info = registration.register_mlflow(
            ctx, model, uri, tracking_uri=tracking, actor=actor, alias=CHALLENGER
        )
    except AlreadyImportedError as done:  # another sync (a webhook, a poll) imported it meanwhile
        return SyncResult(model, name, SyncOutcome.ALREADY_IMPORTED, mlflow_version, done.version)
    result = SyncResult(model, name, SyncOutcome.IMPORTED, mlflow_version, info.version)
    if chosen is ChallengerAction.REGISTER:
        return result
    return _gate_and_roll_out(ctx, result, chosen, actor)


def _challenger(tracking: str, name: str) -> str | None:
    """The version MLflow's `@challenger` of `name` names; None when it has no such alias."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_source.client(tracking).get_model_version_by_alias(name, CHALLENGER).version)
    except MlflowException as error:
        if f"alias {CHALLENGER} not found" in error.message:  # MLflow's words for a missing alias
            return None
        raise mlflow_source.MlflowUnavailableError(f"MLflow at {tracking}: {error.message}") from None


def _gate_and_roll_out(
    ctx: Context, result: SyncResult, action: ChallengerAction, actor: str | None
) -> SyncResult:
    from pitstop.gate.run import run_gate
    from pitstop.rollout.actions import start_rollout

    test_set = ctx.config.mlflow.test_set
    if test_set is None:
        raise UsageError(
            f"mlflow.on_challenger is {action.value}, which gates the imported version: name its test "
            "set in mlflow.test_set (a registered dataset); the version is imported",
            field="mlflow.test_set",
        )
    assert result.version is not None
    gate = run_gate(ctx, result.model, result.version, test_set, actor=actor)
    gated = dataclasses.replace(result, gate=gate)
    if action is not ChallengerAction.ROLLOUT or not gate.passed:
        return gated
    reason = f"MLflow {result.name} @{CHALLENGER} moved to version {result.mlflow_version}"
    rollout = start_rollout(ctx, result.model, result.version, reason=reason, actor=actor)
    return dataclasses.replace(gated, rollout_id=rollout.state.id)


def _record_alias(
    ctx: Context,
    info: ModelInfo,
    name: str,
    alias: str,
    before: str | None,
    after: str,
    *,
    outside: bool = False,
) -> None:
    """An `mlflow_alias` event: pitstop moved MLflow's `@alias` of `name` from `before` to `after`, or
    (`outside`) found it on `after` instead of pitstop's `before` during a rollout. An outside move is
    recorded once, not at every look that finds it still there."""
    from pitstop.events import EventKind, list_events, record_event

    data = {"name": name, "alias": alias, "outside": outside}
    with ctx.writing() as conn:
        if outside:
            seen = list_events(conn, info.id, kinds=(EventKind.MLFLOW_ALIAS,))
            last = next((e for e in reversed(seen) if e.data.get("alias") == alias), None)
            if last is not None and last.data.get("outside") and last.to_state == after:
                return
        record_event(
            conn,
            time=ctx.clock.now(),
            model_id=info.id,
            kind=EventKind.MLFLOW_ALIAS,
            actor="mlflow" if outside else "pitstop",
            from_state=before,
            to_state=after,
            reason=(
                f"MLflow {name} @{alias} moved outside pitstop during a rollout: not followed"
                if outside
                else f"MLflow {name} @{alias} set to pitstop's {alias}"
            ),
            data=data,
        )


@dataclass(frozen=True)
class Mirror:
    """What one `mirror` did: the aliases moved (alias -> MLflow version), the MLflow versions tagged
    with a rollout's decision, and MLflow's `@champion` when it was moved outside pitstop during a
    rollout (reported, not followed)."""

    model: str
    name: str
    moved: dict[str, str] = field(default_factory=dict)
    tagged: list[str] = field(default_factory=list)
    outside_champion: str | None = None

    def lines(self) -> list[str]:
        said = [f"MLflow {self.name} @{alias} -> version {version}" for alias, version in self.moved.items()]
        said += [
            f"MLflow {self.name} version {version} tagged with its rollout's decision"
            for version in self.tagged
        ]
        if self.outside_champion is not None:
            said.append(
                f"warning: MLflow {self.name} @champion was moved to version {self.outside_champion} "
                f"outside pitstop during a rollout of {self.model}: not followed (pitstop owns @champion)"
            )
        return said

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "name": self.name,
            "moved": self.moved,
            "tagged": self.tagged,
            "outside_champion": self.outside_champion,
        }


def mirror(ctx: Context, model: str, *, name: str, tracking_uri: str | None = None) -> Mirror:
    """Move MLflow's `@champion` and `@previous` of `name` to the MLflow versions pitstop's champion and
    previous were imported from (aliases on versions not imported from `name` are left alone), and tag
    the challenger of each promoted or rolled-back rollout: `pitstop.decision`, `pitstop.rule`,
    `pitstop.numbers` (JSON), `pitstop.rollout`, `pitstop.version` and `pitstop.report` (a link, when
    `notifications.report_url` is set). During a rollout an `@champion` MLflow has that pitstop did not
    set is reported and left; pitstop sets it again once the rollout has ended."""
    from pitstop.events import EventKind, list_events
    from pitstop.notify.message import link
    from pitstop.rollout.phases import Outcome
    from pitstop.rollout.records import list_rollouts

    tracking = mlflow_source.tracking_uri(tracking_uri, ctx.config.mlflow.tracking_uri)
    with ctx.reading() as conn:
        info = registry.get_model(conn, model)
        versions = {v.version: v for v in registry.list_versions(conn, info)}
        rollouts = list_rollouts(conn, info.id)
        endings = list_events(conn, info.id, kinds=(EventKind.ROLLOUT_TRANSITION,))

    def mlflow_version(version: int | None) -> str | None:
        origin = versions[version].lineage.mlflow if version in versions else None
        return origin.version if origin is not None and origin.name == name else None

    wanted = {alias: mlflow_version(info.aliases.get(alias)) for alias in OWNED}
    active = any(r.state.outcome is None for r in rollouts)
    mlflow = mlflow_source.client(tracking)
    current = {
        str(alias): str(version) for alias, version in mlflow.get_registered_model(name).aliases.items()
    }
    moved: dict[str, str] = {}
    outside = None
    before = dict(current)
    for alias, version in wanted.items():
        if version is None or current.get(alias) == version:
            continue
        if alias == "champion" and active and alias in current:
            outside = current[alias]
            log.warning("MLflow %s @champion moved outside pitstop during a rollout: not followed", name)
            _record_alias(ctx, info, name, alias, version, outside, outside=True)
            continue
        mlflow.set_registered_model_alias(name, alias, version)
        moved[alias] = version
        _record_alias(ctx, info, name, alias, before.get(alias), version)
    tagged: list[str] = []
    report_url = ctx.config.notifications.report_url
    for rollout in rollouts:
        state = rollout.state
        version = mlflow_version(state.challenger_version)
        if state.outcome not in (Outcome.PROMOTED, Outcome.ROLLED_BACK) or version is None:
            continue
        tags = mlflow.get_model_version(name, version).tags
        if tags.get(f"{TAG}rollout") == str(state.id):
            continue
        ending = next((e for e in reversed(endings) if e.rollout_id == state.id), None)
        values = {
            "decision": state.outcome.value,
            "version": str(state.challenger_version),
            "rule": (ending.rule if ending else None) or "",
            "numbers": json.dumps(json_safe(ending.data if ending else {}), sort_keys=True)[:MAX_TAG],
            "report": link(report_url, model, state.id) or "",
        }
        for key, value in values.items():
            if value:
                mlflow.set_model_version_tag(name, version, f"{TAG}{key}", value)
        mlflow.set_model_version_tag(name, version, f"{TAG}rollout", str(state.id))  # last: marks it done
        tagged.append(version)
    return Mirror(model, name, moved, tagged, outside)


def write_back(ctx: Context) -> WriteBack | None:
    """What a leading controller runs after each round (`Controller(after_round=…)`) so MLflow follows
    pitstop's decisions without a `pitstop mlflow sync` loop (a webhook-only setup): `mirror` of every
    model in `mlflow.models`. None when there is nothing to write back (no such model, or
    `mlflow.write_back: false`)."""
    settings = ctx.config.mlflow
    if not settings.write_back or not settings.models:
        return None
    return WriteBack(ctx, dict(settings.models))


class WriteBack:
    """`mirror` of each (pitstop model, MLflow name) on a thread of its own, since MLflow's client
    retries an unreachable server for minutes and decisions must not wait on it; a round that finds
    the last write-back still running starts none. A failure is logged, and mirrored again after a
    later round. `finish` waits for the one running: a controller that stops (`pitstop controller
    --once` among them) leaves no write-back cut off half-way."""

    def __init__(self, ctx: Context, models: dict[str, str]) -> None:
        self.ctx, self.models = ctx, models
        self._thread: threading.Thread | None = None

    def __call__(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(
            target=self._mirror_every_model, name="mlflow-write-back", daemon=True
        )
        self._thread.start()

    def finish(self, timeout: float) -> None:
        if self._thread is None:
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("MLflow write-back still running after %g s: left to end on its own", timeout)

    def _mirror_every_model(self) -> None:
        from mlflow.exceptions import MlflowException

        for model, name in self.models.items():
            try:
                for line in mirror(self.ctx, model, name=name).lines():
                    log.info("%s", line)
            except (PitstopError, MlflowException) as error:
                log.warning("MLflow write-back of %s to %s failed, tried again later: %s", model, name, error)

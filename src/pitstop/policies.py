"""Rollout policies besides `pitstop.yaml`'s: a YAML file, or a named policy kept in the store.

A policy file holds some of the sections `gate`, `shadow`, `ab_test`, `guardrails` and `ramp`; what it
does not name comes from `pitstop.yaml` (section by section, key by key), and what neither names from
the defaults. It is validated as `pitstop.yaml` is. A named policy is such a file made into a full
policy when it is added (over `pitstop.yaml` as it is then) and kept in revisions: adding a name again
with a different policy, text or description makes the next revision; a rollout started with it keeps
using the revision it started with.

`choose` says which policy a rollout starts with and where it came from, the `source` the rollout
stores: `pitstop.yaml`, `file:<path> sha256:<hex>`, `policy:<name>@<revision>` or, for a `Policy` given
to the Python API, `python sha256:<hex>` (of its JSON).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from pitstop.config import CONFIG_FILE, Policy, parse_policy, parse_yaml, read_yaml_text
from pitstop.errors import ConflictError, NotFoundError, UsageError
from pitstop.events import EventKind, record_event
from pitstop.store.tables import policies

if TYPE_CHECKING:
    from pitstop.context import Context

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")  # as a model's or a dataset's name
REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,99})(?:@(?P<revision>[1-9][0-9]{0,8}))?$")
CONFIG_SOURCE = CONFIG_FILE  # the source of a rollout started without another policy


@dataclass(frozen=True)
class ChosenPolicy:
    """The policy a rollout starts with, and where it came from (see the module's docstring)."""

    policy: Policy
    source: str


@dataclass(frozen=True)
class PolicyFile:
    """A policy file read and validated over a base policy: the result, the text and its sha256."""

    path: Path
    policy: Policy
    text: str
    sha256: str

    @property
    def source(self) -> str:
        return f"file:{self.path} sha256:{self.sha256}"


@dataclass(frozen=True)
class NamedPolicy:
    """One revision of a named policy in the store."""

    name: str
    revision: int
    description: str | None
    policy: Policy
    source_text: str
    sha256: str
    created_at: datetime
    created_by: str
    revisions: int = 1  # how many revisions the name has (as listed: the latest of each name)

    @property
    def ref(self) -> str:
        """`strict@3`"""
        return f"{self.name}@{self.revision}"

    @property
    def source(self) -> str:
        """What a rollout started with it stores: `policy:strict@3`."""
        return f"policy:{self.ref}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "revisions": self.revisions,
            "description": self.description,
            "sha256": self.sha256,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "source": self.source,
            "policy": self.policy.model_dump(mode="json"),
            "source_text": self.source_text,
        }


def policy_yaml(policy: Policy) -> str:
    """The whole policy as YAML that `parse_policy` reads back to the same policy.

    >>> print(policy_yaml(Policy()).splitlines()[0])
    gate:
    >>> parse_policy(yaml.safe_load(policy_yaml(Policy())), Policy(), "x") == Policy()
    True
    """
    return yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_file(path: Path, base: Policy) -> PolicyFile:
    """The policy file at `path` over `base`; a ConfigError names the file and each bad key."""
    path = path.expanduser().resolve()
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a policy YAML file")
    if not path.exists():
        raise UsageError(f"{path}: no such policy file")
    text = read_yaml_text(path)
    policy = parse_policy(parse_yaml(text, str(path)), base, str(path))
    return PolicyFile(path, policy, text, digest(text))


PolicyChoice = Policy | ChosenPolicy | Path | str | None  # what `choose` takes


def choose(ctx: Context, given: PolicyChoice) -> ChosenPolicy:
    """The policy a rollout starts with: `pitstop.yaml`'s (None), a `Policy`, a file (a `Path`, or a
    string naming an existing file), or a named policy (`NAME` for its latest revision, `NAME@N`); a
    `ChosenPolicy` (chosen earlier, as `retrain` does before training) as it is.

    A string that is both an existing file and a named policy is refused: nothing is guessed."""
    if isinstance(given, ChosenPolicy):
        return given
    if given is None:
        return ChosenPolicy(ctx.config.policy, CONFIG_SOURCE)
    if isinstance(given, Policy):
        canonical = json.dumps(given.model_dump(mode="json"), sort_keys=True)
        return ChosenPolicy(given, f"python sha256:{digest(canonical)}")
    if isinstance(given, Path):
        chosen = read_file(given, ctx.config.policy)
        return ChosenPolicy(chosen.policy, chosen.source)
    return _by_text(ctx, given)


def _by_text(ctx: Context, given: str) -> ChosenPolicy:
    if not given.strip():
        raise UsageError("give a policy file or a named policy", field="policy")
    path = Path(given).expanduser()
    match = REFERENCE.match(given)
    named = None
    if match is not None:
        with ctx.reading() as conn:
            named = _find(conn, match.group("name"), _revision(match))
    if path.exists() and named is not None:
        raise UsageError(
            f"is both a file here and the named policy {named.ref}",
            field="policy",
            given=given,
            hint=f"write ./{given} for the file, or {named.ref} for the named policy",
        )
    if path.exists():
        chosen = read_file(path, ctx.config.policy)
        return ChosenPolicy(chosen.policy, chosen.source)
    if named is not None:
        return ChosenPolicy(named.policy, named.source)
    if match is not None and match.group("revision") is not None:
        with ctx.reading() as conn:
            get_policy(conn, match.group("name"), _revision(match))  # names the revisions it has
    raise UsageError(
        "is neither a file nor a named policy",
        field="policy",
        given=given,
        hint="check the path; `pitstop policy list` shows the named policies",
    )


def _revision(match: re.Match[str]) -> int | None:
    revision = match.group("revision")
    return None if revision is None else int(revision)


def validate_name(name: str) -> str:
    if not NAME.match(name):
        raise UsageError(
            f"invalid policy name {name!r}: use 1-100 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _from_row(row: Any, revisions: int = 1) -> NamedPolicy:
    return NamedPolicy(
        name=row.name,
        revision=row.revision,
        description=row.description,
        policy=Policy.model_validate(row.policy),
        source_text=row.source_text,
        sha256=row.sha256,
        created_at=row.created_at,
        created_by=row.created_by,
        revisions=revisions,
    )


def _find(conn: Connection, name: str, revision: int | None) -> NamedPolicy | None:
    query = select(policies).where(policies.c.name == name)
    if revision is None:
        query = query.order_by(policies.c.revision.desc()).limit(1)
    else:
        query = query.where(policies.c.revision == revision)
    row = conn.execute(query).first()
    return None if row is None else _from_row(row)


def get_policy(conn: Connection, name: str, revision: int | None = None) -> NamedPolicy:
    """Revision `revision` of the named policy (default: its latest); NotFoundError says what exists."""
    found = _find(conn, name, revision)
    if found is not None:
        return found
    revisions = list(
        conn.execute(
            select(policies.c.revision).where(policies.c.name == name).order_by(policies.c.revision)
        ).scalars()
    )
    if not revisions:
        raise NotFoundError(f"no named policy {name!r}; add one with `pitstop policy add {name} FILE`")
    raise NotFoundError(
        f"named policy {name!r} has no revision {revision}; its revisions are 1 to {revisions[-1]}"
    )


def list_policies(conn: Connection) -> list[NamedPolicy]:
    """The latest revision of every named policy, by name, each with its number of revisions."""
    latest = (
        select(policies.c.name, func.max(policies.c.revision).label("revision"))
        .group_by(policies.c.name)
        .subquery()
    )
    rows = conn.execute(
        select(policies, latest.c.revision.label("revisions"))
        .join(latest, (latest.c.name == policies.c.name) & (latest.c.revision == policies.c.revision))
        .order_by(policies.c.name)
    ).all()
    return [_from_row(row, row.revisions) for row in rows]


def add_policy(
    conn: Connection,
    name: str,
    *,
    policy: Policy,
    text: str,
    description: str | None,
    now: datetime,
    actor: str,
) -> tuple[NamedPolicy, bool]:
    """Store `policy` (made from `text`) as the next revision of `name`, recorded as an event; the
    latest revision unchanged (created=False) when it holds the same policy, text and description."""
    validate_name(name)
    description = description.strip() if description and description.strip() else None
    sha256 = digest(text)
    latest = _find(conn, name, None)
    if (
        latest is not None
        and latest.policy == policy
        and latest.sha256 == sha256
        and latest.description == description
    ):
        return latest, False
    revision = 1 if latest is None else latest.revision + 1
    try:  # the unique (name, revision) refuses a second writer of the same revision
        conn.execute(
            policies.insert().values(
                name=name,
                revision=revision,
                description=description,
                policy=policy.model_dump(mode="json"),
                source_text=text,
                sha256=sha256,
                created_at=now,
                created_by=actor,
            )
        )
    except IntegrityError:
        raise ConflictError(
            f"revision {revision} of policy {name!r} was added by someone else meanwhile",
            hint="look at it with `pitstop policy show`, then add yours again",
        ) from None
    record_event(
        conn,
        time=now,
        model_id=None,
        kind=EventKind.POLICY_ADDED,
        actor=actor,
        from_state=None if latest is None else latest.ref,
        to_state=f"{name}@{revision}",
        reason=description,
        data={"name": name, "revision": revision, "sha256": sha256},
    )
    return get_policy(conn, name, revision), True

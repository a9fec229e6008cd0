"""Who may call what: bearer tokens by scope, read once from the environment, never logged.

Three scopes, each a set of tokens that may use it:

- `operator`: the manual overrides (`…/rollout/{promote,rollback,abort}`) and anything that moves
  production; only the operator token.
- `labels`: writing ground truth (`…/labels`); the labels-writer token or the operator token.
- `predict`: only when a predict token is configured (off by default): the predict token or the
  operator token. It costs one header comparison per request and stops outsiders adding evidence.

A write scope with no token configured refuses every call (403) unless the operator opted in to
unauthenticated local writes (`pitstop serve --insecure-local-writes`, `PITSTOP_ALLOW_UNAUTHENTICATED=1`),
and even then only a caller on the loopback interface is let through: the opt-in is for a laptop, and a
port forwarded or bound to every interface must not turn it into an open door.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pitstop.errors import ConfigError, PitstopError, describe_os_error

OPERATOR_ENV = "PITSTOP_OPERATOR_TOKEN"
LABELS_ENV = "PITSTOP_LABELS_TOKEN"
PREDICT_ENV = "PITSTOP_PREDICT_TOKEN"
LEGACY_ENV = "PITSTOP_API_TOKEN"  # the operator token, as before scopes existed
ALLOW_ENV = "PITSTOP_ALLOW_UNAUTHENTICATED"  # "1": unauthenticated writes from loopback callers
FILE_SUFFIX = "_FILE"
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class UnauthorizedError(PitstopError):
    """A call needs `Authorization: Bearer <token>` of its scope and none was given (HTTP 401)."""


class ForbiddenError(PitstopError):
    """The bearer token given is not the configured one (HTTP 403)."""


class Scope(StrEnum):
    """What a call does, and so which tokens it takes."""

    OPERATOR = "operator"
    LABELS = "labels"
    PREDICT = "predict"


@dataclass(frozen=True)
class Access:
    """The gateway's tokens (kept out of `repr`, so no log line or traceback can print them)."""

    operator: str | None = field(default=None, repr=False)
    labels: str | None = field(default=None, repr=False)
    predict: str | None = field(default=None, repr=False)
    insecure_local_writes: bool = False

    def tokens(self, scope: Scope) -> list[str]:
        """The tokens that may use `scope`, most powerful first."""
        if scope is Scope.OPERATOR:
            candidates = [self.operator]
        elif scope is Scope.LABELS:
            candidates = [self.operator, self.labels]
        else:
            candidates = [self.operator, self.predict] if self.predict else []
        return [token for token in candidates if token]

    def guarded(self, scope: Scope) -> bool:
        """Whether a call of `scope` needs a token (predict only when a predict token is set)."""
        return scope is not Scope.PREDICT or bool(self.predict)

    def check(self, scope: Scope, header: str | None, peer: str | None) -> None:
        """Raise UnauthorizedError (no token given), ForbiddenError (wrong, out of scope, or none
        configured); return when the call may go on."""
        if not self.guarded(scope):
            return
        accepted = self.tokens(scope)
        if not accepted:
            if self.insecure_local_writes and is_loopback(peer):
                return
            raise ForbiddenError(unconfigured_reason(scope, self.insecure_local_writes))
        given = bearer(header)
        if given is None:
            raise UnauthorizedError(f"this endpoint needs 'Authorization: Bearer <token>' ({_names(scope)})")
        if any(hmac.compare_digest(given.encode(), token.encode()) for token in accepted):
            return
        if (
            scope is Scope.OPERATOR
            and self.labels
            and hmac.compare_digest(given.encode(), self.labels.encode())
        ):
            raise ForbiddenError("the labels token may only write labels; this needs the operator token")
        raise ForbiddenError("the bearer token is not valid")

    def open_scopes(self) -> list[Scope]:
        """The write scopes a loopback caller may use without a token (the local opt-in)."""
        if not self.insecure_local_writes:
            return []
        return [s for s in (Scope.OPERATOR, Scope.LABELS) if not self.tokens(s)]

    def refused_scopes(self) -> list[Scope]:
        """The write scopes that refuse every call: no token configured and no opt-in."""
        if self.insecure_local_writes:
            return []
        return [s for s in (Scope.OPERATOR, Scope.LABELS) if not self.tokens(s)]

    def is_operator(self, header: str | None) -> bool:
        """Whether `header` carries the operator token (what may see routing salts)."""
        given = bearer(header)
        return bool(self.operator and given and hmac.compare_digest(given.encode(), self.operator.encode()))


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return given.strip()


def is_loopback(host: str | None) -> bool:
    """Whether `host` (an address or a name) is this machine's loopback interface."""
    if host is None:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost: assume it is reachable from elsewhere


def unconfigured_reason(scope: Scope, opted_in: bool) -> str:
    """The one-line 403 of a scope with no token configured."""
    if opted_in:
        return (
            f"no {scope.value} token is configured and unauthenticated writes are allowed only from loopback"
        )
    return (
        f"no {scope.value} token is configured, so this gateway refuses {scope.value} writes: set "
        f"{_names(scope)} (or, on a laptop only, start it with `pitstop serve --insecure-local-writes`)"
    )


def _names(scope: Scope) -> str:
    if scope is Scope.OPERATOR:
        return OPERATOR_ENV
    if scope is Scope.LABELS:
        return f"{LABELS_ENV} or {OPERATOR_ENV}"
    return f"{PREDICT_ENV} or {OPERATOR_ENV}"


def access_from_env(environ: Mapping[str, str] | None = None) -> Access:
    """The tokens from `PITSTOP_{OPERATOR,LABELS,PREDICT}_TOKEN` or their `_FILE` variants (a file
    holding the token, e.g. a mounted secret); `PITSTOP_API_TOKEN` is the operator token as before.

    Raises ConfigError naming the variable (never the token) when a file cannot be read, is empty, or a
    token is given twice.
    """
    env = os.environ if environ is None else environ
    operator = _token(env, OPERATOR_ENV)
    legacy = _token(env, LEGACY_ENV)
    if operator and legacy and not hmac.compare_digest(operator.encode(), legacy.encode()):
        raise ConfigError(f"{OPERATOR_ENV} and {LEGACY_ENV} differ: set only {OPERATOR_ENV}")
    return Access(
        operator=operator or legacy,
        labels=_token(env, LABELS_ENV),
        predict=_token(env, PREDICT_ENV),
        insecure_local_writes=env.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes"),
    )


def _token(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    path = env.get(name + FILE_SUFFIX, "").strip()
    if value and path:
        raise ConfigError(f"{name} and {name}{FILE_SUFFIX} are both set: keep one")
    if not path:
        return value or None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = describe_os_error(error) if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"{name}{FILE_SUFFIX}: cannot read the token file: {reason}") from None
    if not value:
        raise ConfigError(f"{name}{FILE_SUFFIX}: the token file {path} is empty")
    return value


def describe_access(access: Access) -> str:
    """One line of what each scope needs, for the startup message (names variables, never tokens)."""
    parts = []
    for scope, what in ((Scope.OPERATOR, "overrides"), (Scope.LABELS, "labels"), (Scope.PREDICT, "predict")):
        if not access.guarded(scope):
            state = "open"
        elif access.tokens(scope):
            state = "token"
        elif access.insecure_local_writes:
            state = "open to this machine only (no token: `pitstop serve --insecure-local-writes`)"
        else:
            state = f"refused (no token: set {_names(scope)})"
        parts.append(f"{what}: {state}")
    return "; ".join(parts)


def exposure_warnings(access: Access, host: str) -> list[str]:
    """What is open to callers without a token, and from where."""
    warnings = []
    if opened := access.open_scopes():
        names = " and ".join("rollout overrides" if s is Scope.OPERATOR else "labels" for s in opened)
        warnings.append(
            f"{names} accept calls without a token from this machine "
            "(`pitstop serve --insecure-local-writes`): any local process can move production or write "
            "evidence"
        )
    if not access.guarded(Scope.PREDICT) and not is_loopback(host):
        warnings.append(
            f"predict is open to anyone who can reach {host}: they can add predictions to the evidence; "
            f"set {PREDICT_ENV} to require a token"
        )
    return warnings

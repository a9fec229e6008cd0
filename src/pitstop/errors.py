"""Exceptions named for the condition; the CLI and the gateway map them to exit codes and HTTP statuses."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

# An input named inside a message or hint (`mention`), worded by each edge as its caller knows it.
_MENTION = re.compile(r"\{\{([a-z][a-z0-9_]*)(?:=([^{}]*))?\}\}")


def mention(field: str, value: str | bool | None = None) -> str:
    """An input (and a value for it, or `True` for a switch) named inside a message or hint, by its
    Python name: the CLI words it as the flag (`--features all`, `--force`), Python and HTTP as the
    parameter (`features='all'`, `force=True`).

    >>> str(UsageError(f"say which columns it reads, e.g. {mention('features', 'a,b')}"))
    "say which columns it reads, e.g. features='a,b'"
    """
    said = "" if value is None else "=" + ("" if value is True else str(value))
    return "{{" + field + said + "}}"


def as_parameter(field: str, value: str | None) -> str:
    """A mentioned input as a Python caller passes it: `features='all'`, `force=True` (a switch,
    mentioned with the empty value), or the bare name."""
    if value is None:
        return field
    return f"{field}=True" if value == "" else f"{field}={value!r}"


def name_inputs(text: str, name: Callable[[str, str | None], str] = as_parameter) -> str:
    """`text` with every `mention` worded by `name`."""
    return _MENTION.sub(lambda found: name(found[1], found[2]), text)


class PitstopError(Exception):
    """Base of every error pitstop raises on purpose; its message is meant for the user.

    `field` is the input it is about, by its Python name (`reason`, `share`): each edge names it as its
    caller knows it (the CLI a flag, `--reason`; HTTP a JSON pointer, `/reason`). `given` is the part
    of that input at fault, as written after the field's name (a path, a metadata key); `hint` says
    how to fix it.

    >>> str(UsageError("say why the model is archived", field="reason"))
    'reason: say why the model is archived'
    >>> UsageError("no such file", field="traffic", given="t.csv", hint="check the path").worded("--traffic")
    '--traffic t.csv: no such file; check the path'
    """

    def __init__(
        self, *args: object, field: str | None = None, given: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(*args)
        self.field, self.given, self.said_hint = field, given, hint

    @property
    def message(self) -> str:
        """The message alone, without the field, the part given or the hint."""
        return name_inputs(super().__str__())

    @property
    def hint(self) -> str | None:
        """How to fix it, with the inputs it mentions named as Python parameters."""
        return None if self.said_hint is None else name_inputs(self.said_hint)

    def worded(self, field: str | None, name: Callable[[str, str | None], str] = as_parameter) -> str:
        """The message after `field` (the input as the caller knows it) and the part given, before
        the hint; the inputs they mention worded by `name`."""
        named = " ".join(part for part in (field, self.given) if part)
        message = super().__str__()
        text = f"{named}: {message}" if named else message
        return name_inputs(f"{text}; {self.said_hint}" if self.said_hint else text, name)

    def __str__(self) -> str:
        return self.worded(self.field)


class UsageError(PitstopError):
    """The input is wrong: a bad argument, file, value or combination. CLI exit 2, HTTP 4xx."""


class ConfigError(UsageError):
    """`pitstop.yaml` or the environment holds an unknown key or an impossible value."""


class NotFoundError(UsageError):
    """A named thing (model, version, dataset, alias, rollout) does not exist."""


class AlreadyExistsError(UsageError):
    """Creating something whose name is taken."""


class ConflictError(UsageError):
    """The request contradicts the current state (a champion exists, a rollout is active)."""


class AlreadyImportedError(ConflictError):
    """An MLflow model version that is already a version of the model: `version` is that version."""

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message)
        self.version = version


class VersionLoadError(UsageError):
    """A version's artifact does not load here (its classes' module is missing, say): `cause` is the
    loader's own error (`ModuleNotFoundError: No module named 'x'`), `hint` how to fix it."""

    def __init__(self, model: str, version: int, cause: str, hint: str | None = None) -> None:
        self.model, self.version, self.cause = model, version, cause
        super().__init__(f"{model} version {version} cannot be loaded ({cause})", hint=hint)


class ArtifactIntegrityError(PitstopError):
    """A stored artifact is missing or its sha256 no longer matches the registry."""

    def __init__(self, model: str, version: int, expected: str, actual: str | None, uri: str) -> None:
        self.model, self.version, self.expected, self.actual, self.uri = model, version, expected, actual, uri
        found = "the file is missing" if actual is None else f"found sha256 {actual}"
        super().__init__(
            f"artifact of {model} version {version} failed verification: expected sha256 {expected}, "
            f"{found} ({uri}); restore the file or register the model again"
        )


class StoreUnavailableError(PitstopError):
    """The store cannot be reached or written."""


class NegativeVerdict(PitstopError):
    """A gate or rollout said no. CLI exit 1: not an error of the user, a decision."""


def describe(error: BaseException) -> str:
    """`Type: first line of the message`: someone else's exception, fit for a one-line error.

    >>> describe(ValueError("Input X contains NaN.\\nLinearRegression does not accept missing values"))
    'ValueError: Input X contains NaN.'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def describe_os_error(error: OSError, named: Path | None = None) -> str:
    """`Permission denied: /srv/ws/.pitstop`: the OS's reason, and the path it refused unless that is
    the one the message already `named`."""
    # mkdir(exist_ok=True) says "File exists" only when the thing there is not a folder.
    reason = "a file is in the way of the folder" if isinstance(error, FileExistsError) else error.strerror
    reason = reason or describe(error)
    if error.filename is None or (named is not None and Path(error.filename) == named):
        return reason
    return f"{reason}: {error.filename}"


# User code that calls sys.exit() has failed like one that raised; Ctrl-C (KeyboardInterrupt) still stops.
USER_CODE_FAILURES = (Exception, SystemExit)

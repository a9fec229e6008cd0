"""Exceptions named for the condition; the CLI and the gateway map them to exit codes and HTTP statuses."""

from __future__ import annotations

from pathlib import Path


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
        self.field, self.given, self.hint = field, given, hint

    @property
    def message(self) -> str:
        """The message alone, without the field, the part given or the hint."""
        return super().__str__()

    def worded(self, field: str | None) -> str:
        """The message after `field` (the input as the caller knows it) and the part given, before
        the hint."""
        named = " ".join(part for part in (field, self.given) if part)
        text = f"{named}: {self.message}" if named else self.message
        return f"{text}; {self.hint}" if self.hint else text

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

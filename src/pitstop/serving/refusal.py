"""Did the store refuse the data, or is the store itself in trouble?

The answer decides what a writer does with a failed write. A refused value (a lone surrogate, a NUL
on PostgreSQL, a string longer than its column, a value the driver cannot bind) fails the same way
every time: retried, it would block everything behind it for ever, so it is set aside (the prediction
log's dead letters) or answered as the client's error (labels, HTTP 422). Trouble of the store (down,
unreachable, locked, a missing table) passes: everything stays queued and is retried.

Drivers are told apart by the PEP 249 class names (`DataError`, `ProgrammingError`, …), as SQLAlchemy
itself maps them, so neither sqlite3 nor psycopg (an optional extra) needs importing here.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError, StatementError

from pitstop.errors import StoreUnavailableError

_DBAPI_ROOTS = frozenset({"DatabaseError", "InterfaceError"})  # every PEP 249 error derives from one
_REFUSED_DATA = frozenset({"DataError", "IntegrityError"})


def refused_data(error: BaseException) -> bool:
    """True when the store (or its driver) refused the values written; False when the store failed.

    - the driver's `DataError` and `IntegrityError` (a NUL, a too-long value, a broken constraint): data;
    - a `ProgrammingError` raised by the driver itself, before the server saw anything (no SQLSTATE,
      no SQLite error code: a value it cannot bind or adapt): data;
    - any other driver error (`OperationalError`: refused, lost, locked, read-only; a missing table
      or column, which has an SQLSTATE or an SQLite code), `OSError`, `MemoryError`, a pool timeout,
      `StoreUnavailableError`: the store;
    - any other exception (`UnicodeEncodeError`, `ValueError`, `TypeError`, `OverflowError` from
      encoding or converting a value): data.

    >>> refused_data(UnicodeEncodeError("utf-8", "\\udfff", 0, 1, "surrogates not allowed"))
    True
    >>> refused_data(ConnectionRefusedError(111, "Connection refused"))
    False
    """
    cause = error.orig if isinstance(error, StatementError) and error.orig is not None else error
    if isinstance(cause, OSError | MemoryError | StoreUnavailableError | SQLAlchemyError):
        return False
    names = {kind.__name__ for kind in type(cause).__mro__}
    if not names & _DBAPI_ROOTS:
        return True
    if names & _REFUSED_DATA:
        return True
    from_server = getattr(cause, "sqlstate", None) or getattr(cause, "sqlite_errorcode", None)
    return "ProgrammingError" in names and not from_server

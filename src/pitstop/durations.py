"""Durations as people write them in `pitstop.yaml` and on the command line: `30s`, `15m`, `24h`, `14d`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
EXAMPLES = "500ms, 30s, 15m, 24h, 14d or 2w"


def parse_duration(text: str | timedelta) -> timedelta:
    """Parse a number and a unit, `ms`, `s`, `m`, `h`, `d` or `w` (`30s`, `15m`, `1.5h`, `14d`).

    A bare number is refused: `30` could mean seconds or days, and a wrong guess is silent.

    >>> parse_duration("15m")
    datetime.timedelta(seconds=900)
    >>> parse_duration("1.5h").total_seconds()
    5400.0
    >>> parse_duration(30)
    Traceback (most recent call last):
    ValueError: not a duration: 30 (write it with a unit: 500ms, 30s, 15m, 24h, 14d or 2w)
    """
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    else:
        match = _PATTERN.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"not a duration: {text!r} (write it with a unit: {EXAMPLES})")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {text!r}")
    return timedelta(seconds=seconds)


def parse_positive_duration(text: str | timedelta) -> timedelta:
    """A duration that must be longer than zero (a limit of zero would refuse everything).

    >>> parse_positive_duration("0s")
    Traceback (most recent call last):
    ValueError: must be longer than zero, got '0s'
    """
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"must be longer than zero, got {text!r}")
    return value


def format_duration(value: timedelta) -> str:
    """The shortest exact form of a duration, the inverse of `parse_duration`.

    >>> format_duration(timedelta(hours=24))
    '1d'
    >>> format_duration(timedelta(seconds=90))
    '90s'
    """
    millis = round(value.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def describe_span(value: timedelta) -> str:
    """A duration rounded for people, in the unit that suits its size.

    >>> describe_span(timedelta(seconds=45)), describe_span(timedelta(minutes=90))
    ('45s', '90m')
    >>> describe_span(timedelta(hours=5, minutes=30)), describe_span(timedelta(days=3))
    ('5.5h', '3.0d')
    >>> describe_span(timedelta(hours=61538))
    '7.0 years'
    """
    seconds = value.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds < 730 * 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / (365.25 * 86400):.1f} years"

"""Words and formats that the CLI, the report and the dashboard share: one way to show a moment, a
recorded value, and the numbers a decision recorded.

>>> from datetime import UTC
>>> fmt_time(datetime(2026, 3, 1, 2, 30, 9, 208069, tzinfo=UTC))
'2026-03-01T02:30:09Z'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

MAX_TEXT = 160  # a recorded text beyond this is cut


# ISO 8601 text as JSON documents (lineage, gate checks, replay timelines) hold their moments.
_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def fmt_time(value: Any) -> str:
    """A moment as pitstop shows it everywhere (tables, reports, the dashboard): UTC to the second,
    `2026-03-01T12:00:00Z`.

    The store's datetimes and the ISO text of a JSON document read alike (a table column would
    otherwise mix `…:18Z`, `…:21.996971Z` and `…+00:00`); a datetime without a zone is UTC, as the
    store keeps it. Anything else is shown as it is.

    >>> fmt_time(datetime(2026, 3, 1, 12, 0, 5, 996971, tzinfo=UTC))
    '2026-03-01T12:00:05Z'
    >>> fmt_time("2026-03-01T13:00:05.750000+01:00"), fmt_time(datetime(2026, 3, 1, 12))
    ('2026-03-01T12:00:05Z', '2026-03-01T12:00:00Z')
    >>> fmt_time(None), fmt_time("all present"), fmt_time(30.0)
    ('-', 'all present', '30.0')
    """
    if value is None:
        return "-"
    moment = _moment(value)
    if moment is None:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):  # pandas' Timestamp too
        return value
    if isinstance(value, str) and _ISO_MOMENT.match(value.strip()):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def fmt_value(value: Any) -> str:
    """A recorded value as text: numbers to four significant digits, lists of scalars inline.

    >>> fmt_value(0.123456), fmt_value(3), fmt_value(True), fmt_value([1, 2.5]), fmt_value(None)
    ('0.1235', '3', 'yes', '[1, 2.5]', '-')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


# What a history row shows first: the rule's ratio and p-values, then rates, counts and thresholds.
KEY_NUMBER_ORDER = (
    "ratio",
    "error_ratio",
    "p_value",
    "test.p_value",
    "sequential.p_value",
    "verdict.p_value",
    "srm.p_value",
    "failure_rate",
    "rate",
    "limit",
    "tolerance",
    "slow_calls",
    "calls",
    "failures",
    "requests",
    "labelled_pairs",
    "min_labeled",
    "units",
    "required",
    "labelled",
    "min_labeled_per_arm",
    "shadow_failures",
    "shadow_calls",
    "plan.n_challenger",
    "plan.n_champion",
)
MAX_KEY_NUMBERS = 8  # in a history row
MAX_NUMBERS = 30  # in a report's or the dashboard's account of a decision


def key_numbers(data: Mapping[str, Any] | None) -> str:
    """The numbers a rule saw, most telling first and at most `MAX_KEY_NUMBERS` (`--json` has all).

    Nested values go by dotted name, a nested p-value by its test's name (`srm p`); a per-arm pair
    reads challenger/champion, like the ratio.

    >>> key_numbers({"elapsed_hours": 2.0, "units": {"champion": 900, "challenger": 310},
    ...              "srm": {"p_value": 0.00012, "mismatch": True}})
    'srm p=0.00012, units=310/900'
    """
    return ", ".join(key_number_items(data))


def key_number_items(data: Mapping[str, Any] | None, limit: int = MAX_KEY_NUMBERS) -> list[str]:
    """`key_numbers` as a list (a table cell wraps between them)."""
    return [f"{name}={text}" for name, text in decision_numbers(data, limit)]


def decision_numbers(data: Mapping[str, Any] | None, limit: int = MAX_NUMBERS) -> list[tuple[str, str]]:
    """The numbers a rule recorded as (name, text), most telling first: what the CLI's history, the
    report and the dashboard show of a decision (its JSON keeps everything).

    >>> decision_numbers({"ratio": 0.5, "test": {"p_value": 0.01, "details": {"se": 1}}, "flag": True})
    [('ratio', '0.5'), ('test p', '0.01'), ('test.details.se', '1')]
    """
    found = dict(_numbers(data or {}))
    rank = {name: i for i, name in enumerate(KEY_NUMBER_ORDER)}
    # Known names in their order; then the rest as recorded, top-level before nested (sort is stable).
    names = sorted(found, key=lambda name: (rank.get(name, len(rank)), name.count(".")))
    return [(_label(name), found[name]) for name in names[:limit]]


def _label(name: str) -> str:
    """`sequential.p_value` reads `sequential p`, a rule's own `p_value` just `p`."""
    test, dot, leaf = name.rpartition(".")
    return f"{test}{' ' if dot else ''}p" if leaf == "p_value" else name


def _numbers(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in data.items():
        name = prefix + str(key)
        if key == "elapsed_hours":  # the event's own time says it
            continue
        if _is_number(value):
            yield name, _short(value)
        elif isinstance(value, Mapping):
            pair = (value.get("challenger"), value.get("champion"))
            if set(value) == {"champion", "challenger"} and all(_is_number(v) for v in pair):
                yield name, "/".join(_short(v) for v in pair)
            else:
                yield from _numbers(value, name + ".")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


_SHA256 = re.compile(r"sha256:([0-9a-f]{12})[0-9a-f]{52}")


def short_sha256(text: str) -> str:
    """`sha256:<64 hex digits>` cut to 12 digits, as a terminal line shows a policy's source.

    >>> short_sha256("file:/srv/p.yaml sha256:" + "ab" * 32)
    'file:/srv/p.yaml sha256:abababababab…'
    >>> short_sha256("policy:strict@2")
    'policy:strict@2'
    """
    return _SHA256.sub(r"sha256:\1…", text)

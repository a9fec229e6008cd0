"""A model's description and free metadata (`owner=team-eta`, `ticket=OPS-12`): checked once, here.

Metadata is for people and the tools around pitstop (a catalogue, an on-call rota); pitstop itself
reads none of it. Keys are short identifiers and values short strings, so a table shows them whole
and a store column holds them without surprise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pitstop.errors import UsageError

KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
MAX_VALUE = 500
MAX_KEYS = 50
MAX_DESCRIPTION = 2000


def check(metadata: Mapping[str, object]) -> dict[str, str]:
    """`metadata` as stored, sorted by key; a key that is no identifier, a value that is no string or
    too long, or too many keys are errors naming the key.

    >>> check({"owner": "team-eta", "cost.centre": "42"})
    {'cost.centre': '42', 'owner': 'team-eta'}
    >>> check({"2nd": "x"})
    Traceback (most recent call last):
    ...
    pitstop.errors.UsageError: metadata '2nd': a key starts with a letter and holds up to 64 letters, ...
    """
    for key, value in metadata.items():
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise UsageError(
                "a key starts with a letter and holds up to 64 letters, digits, '_', '.' or '-'",
                field="metadata",
                given=repr(key),
            )
        if not isinstance(value, str):
            raise UsageError(f"a value is a string, got {type(value).__name__}", field="metadata", given=key)
        if len(value) > MAX_VALUE:
            raise UsageError(
                f"a value holds at most {MAX_VALUE} characters, got {len(value)}", field="metadata", given=key
            )
    if len(metadata) > MAX_KEYS:
        raise UsageError(f"a model holds at most {MAX_KEYS} keys, got {len(metadata)}", field="metadata")
    return {key: str(metadata[key]) for key in sorted(metadata)}


def merge(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """`current` with `changes` applied: a value sets its key, None removes it; checked.

    >>> merge({"owner": "a", "tier": "1"}, {"owner": "b", "tier": None})
    {'owner': 'b'}
    """
    merged: dict[str, object] = dict(current)
    for key, value in changes.items():
        if value is None:
            if key not in merged:
                have = ", ".join(sorted(merged)) or "none"
                raise UsageError(
                    f"the model has no such metadata key (it has: {have})", field="unset", given=key
                )
            del merged[key]
        else:
            merged[key] = value
    return check(merged)


def check_description(description: str | None) -> str | None:
    """The description as stored: stripped, None when empty; too long is an error."""
    if description is None or not description.strip():
        return None
    if len(description) > MAX_DESCRIPTION:
        raise UsageError(f"at most {MAX_DESCRIPTION} characters, got {len(description)}", field="description")
    return description.strip()

"""A table cell of `name=value` numbers that wraps between them, and breaks a long one only in its name.

rich wraps text at spaces and folds a word too wide for its column at any character, so
`version=2, champion_version=1` in a 9-wide column reads `version=2` / `,` / `champion_` /
`version=1`: a line holding only a comma, others starting with `.` or `=`. Here the comma stays on its
number, a number that fits a line is never split, and one that does not breaks after a `.`, `_`, space
or `=` of its name; only a piece still too wide is cut, and never before punctuation.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

# Between a letter or digit and a `.`, `_` or space of a name and the letter or digit after it.
_AFTER_NAME_PUNCTUATION = re.compile(r"(?<=[^\W_][._ ])(?=[^\W_])")
_AFTER_EQUALS = re.compile(r"(?<==)(?=.)")


def pieces(item: str) -> list[str]:
    """Where a `name=value` too wide for a line breaks first: after a `.`, `_` or space of its name.

    >>> pieces("gate.metrics.challenger_mae=0.197,")
    ['gate.', 'metrics.', 'challenger_', 'mae=0.197,']
    >>> pieces("srm p=0.00012")
    ['srm ', 'p=0.00012']
    """
    name, equals, value = item.partition("=")
    *parts, last = _AFTER_NAME_PUNCTUATION.split(name)
    return [*parts, last + equals + value]


def wrap(items: list[str], width: int) -> list[str]:
    """`items` joined by `, ` in lines at most `width` cells wide.

    >>> wrap(["version=2", "champion_version=1", "units=310/900"], 20)
    ['version=2,', 'champion_version=1,', 'units=310/900']
    >>> wrap(["version=2", "champion_version=1"], 10)
    ['version=2,', 'champion_', 'version=1']
    >>> wrap(["metrics.challenger.mae=0.197", "ratio=1.165"], 16)
    ['metrics.', 'challenger.', 'mae=0.197,', 'ratio=1.165']
    >>> wrap(["ratio=1.165", "test p=8.58e-14"], 40)
    ['ratio=1.165, test p=8.58e-14']
    """
    lines: list[str] = []
    line = ""
    for text in _with_commas(items):
        if line and cell_len(line) + 1 + cell_len(text) <= width:
            line += " " + text
            continue
        if line:
            lines.append(line)
        line = ""
        for part in _parts(text, width):
            if cell_len(line + part) > width and line.strip():
                lines.append(line.rstrip())
                line = ""
            line += part
    if line:
        lines.append(line.rstrip())
    return lines


def _parts(text: str, width: int) -> list[str]:
    """`text` in parts that each fit `width`: whole; else `pieces`; else also after `=`; else cut."""
    if cell_len(text) <= width:
        return [text]
    return [
        chunk
        for piece in pieces(text)
        for part in ([piece] if cell_len(piece) <= width else _AFTER_EQUALS.split(piece))
        for chunk in _cut(part, width)
    ]


def _unbreakable(text: str) -> list[str]:
    """The parts `wrap` keeps whole however narrow the column (short of cutting them)."""
    return [part for piece in pieces(text) for part in _AFTER_EQUALS.split(piece)]


def _with_commas(items: list[str]) -> list[str]:
    return [item + "," for item in items[:-1]] + items[-1:]


def _cut(text: str, width: int) -> list[str]:
    """`text` in chunks at most `width` cells wide, each cut moved back (if it can) before a letter or digit.

    >>> _cut("0.197,", 5)
    ['0.19', '7,']
    """
    chunks: list[str] = []
    while len(text) > 1 and cell_len(text) > width:
        cut = 1
        while cut < len(text) and cell_len(text[: cut + 1]) <= width:
            cut += 1
        while cut > 1 and not text[cut].isalnum():
            cut -= 1
        chunks.append(text[:cut])
        text = text[cut:]
    return [*chunks, text]


class NumberList:
    """A rich renderable: the numbers on as few lines as the column allows, wrapped by `wrap`."""

    def __init__(self, items: list[str]) -> None:
        self.items = items

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        whole = cell_len(", ".join(self.items))
        narrowest = max(
            (cell_len(part) for text in _with_commas(self.items) for part in _unbreakable(text)), default=0
        )
        return Measurement(narrowest, whole)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n".join(wrap(self.items, options.max_width)))

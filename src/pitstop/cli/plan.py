"""`pitstop plan`: how many units an A/B test (and a shadow comparison) needs, before starting it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from pitstop.cli.common import JsonOption, console, emit, table, whole, wrapped
from pitstop.errors import UsageError

if TYPE_CHECKING:  # scipy loads only when a plan is computed
    from pitstop.stats import SampleSize

T = TypeVar("T")

_OPTIONS = {
    "baseline_mean": "--baseline-mean",
    "baseline_std": "--baseline-std",
    "mde": "--mde",
    "alpha": "--alpha",
    "power": "--power",
    "share": "--share",
    "margin": "--margin",
    "correlation": "--correlation",
}


def plan(
    baseline_mean: Annotated[
        float, typer.Option("--baseline-mean", help="champion's mean error per request (e.g. its MAE)")
    ],
    baseline_std: Annotated[
        float,
        typer.Option("--baseline-std", help="standard deviation of the error per unit (request or user)"),
    ],
    mde: Annotated[
        float, typer.Option("--mde", help="relative improvement to detect: 0.01 = a 1 % lower mean error")
    ],
    alpha: Annotated[float, typer.Option("--alpha", help="significance level")] = 0.05,
    power: Annotated[
        float, typer.Option("--power", help="probability of detecting an improvement of --mde")
    ] = 0.8,
    share: Annotated[
        float, typer.Option("--share", help="challenger's share of units, strictly between 0 and 1")
    ] = 0.5,
    margin: Annotated[
        float,
        typer.Option(
            "--margin", help="A/B rule: improvement the challenger must beat (ab_test.min_improvement)"
        ),
    ] = 0.01,
    correlation: Annotated[
        float | None,
        typer.Option(
            "--correlation",
            help="shadow: correlation of both models' errors on the same requests (adds the paired plan)",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Required units per arm: classic two-sided t-test, the A/B rule's own requirement, optionally shadow."""
    from pitstop.stats import sample_size, sample_size_paired

    classic = _usage(
        lambda: sample_size(baseline_mean, baseline_std, mde, alpha=alpha, power=power, share=share)
    )
    if not 0 <= margin < 1:
        raise UsageError(f"--margin must be at least 0 and below 1, got {margin}")
    rule, hint = _rule(classic, baseline_mean, baseline_std, margin)
    paired = None
    if correlation is not None:
        paired = _usage(
            lambda: sample_size_paired(
                baseline_mean, baseline_std, mde, correlation=correlation, alpha=alpha, power=power
            )
        )
    data: dict[str, Any] = {
        "n_champion": classic.n_champion,
        "n_challenger": classic.n_challenger,
        "n_total": classic.n_total,
        "alpha": classic.alpha,
        "power": classic.power,
        "mde": classic.mde,
        "share": classic.share,
        "ab_rule": _rule_json(rule, margin, hint),
    }
    if paired is not None:
        data["paired"] = {"n_pairs": paired.n_total, "correlation": correlation}
    emit(as_json, data, lambda: _render(classic, rule, hint, margin, paired, correlation))


def _usage(compute: Callable[[], T]) -> T:
    """Run a calculation; its ValueError is the user's input, named by the CLI option."""
    try:
        return compute()
    except ValueError as error:
        message = str(error)
        name = message.split(" ", 1)[0]
        raise UsageError(_OPTIONS[name] + message[len(name) :] if name in _OPTIONS else message) from None


def _rule(
    classic: SampleSize, baseline_mean: float, baseline_std: float, margin: float
) -> tuple[SampleSize | None, SampleSize | None]:
    """The rule's requirement at the planned effect, or None and the requirement at twice the margin."""

    from pitstop.stats import sample_size_margin

    def at(effect: float) -> SampleSize:
        return sample_size_margin(
            baseline_mean, baseline_std, effect, margin=margin,
            alpha=classic.alpha, power=classic.power, share=classic.share,
        )  # fmt: skip

    if classic.mde > margin:
        return _usage(lambda: at(classic.mde)), None
    return None, _usage(lambda: at(2 * margin)) if 0 < 2 * margin < 1 else None


def _rule_json(rule: SampleSize | None, margin: float, hint: SampleSize | None) -> dict[str, Any]:
    if rule is not None:
        counts = {"n_champion": rule.n_champion, "n_challenger": rule.n_challenger, "n_total": rule.n_total}
        return {"margin": margin, "reachable": True, **counts}
    out: dict[str, Any] = {"margin": margin, "reachable": False}
    if hint is not None:
        out["n_total_at_twice_margin"] = hint.n_total
    return out


def _render(
    classic: SampleSize,
    rule: SampleSize | None,
    hint: SampleSize | None,
    margin: float,
    paired: SampleSize | None,
    correlation: float | None,
) -> None:
    out = table(
        f"units to detect a {classic.mde:.2%} lower mean error",
        wrapped("test"),
        *(whole(header, justify="right") for header in ("champion", "challenger", "total")),
    )
    out.caption = f"alpha {classic.alpha:g}, power {classic.power:g}, challenger share {classic.share:g}"
    out.add_row("two-sided two-sample t-test", *_counts(classic))
    if rule is not None and _counts(rule) != _counts(classic):
        out.add_row(f"A/B rule: lower by more than {margin:.2%}, one-sided", *_counts(rule))
    if paired is not None:
        out.add_row(f"shadow: request pairs for a paired t-test, correlation {correlation:g}", "", "",
                    f"{paired.n_total:,}")  # fmt: skip
    console.print(out)
    if rule is None:
        note = (
            f"A/B rule: a true {classic.mde:.2%} improvement cannot beat the {margin:.2%} margin at any size"
        )
        if hint is not None:
            note += f"; planning for {2 * margin:.2%} needs {hint.n_total:,} units ({_arms(hint)})"
        console.print(note)


def _counts(plan: SampleSize) -> tuple[str, str, str]:
    return f"{plan.n_champion:,}", f"{plan.n_challenger:,}", f"{plan.n_total:,}"


def _arms(plan: SampleSize) -> str:
    return f"{plan.n_champion:,} champion + {plan.n_challenger:,} challenger"


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)

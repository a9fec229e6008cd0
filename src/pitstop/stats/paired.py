"""Paired comparison for shadow, both models scored on the same requests: paired t, Wilcoxon, Diebold-Mariano.

Every function works on the differences d = challenger error - champion error of aligned requests;
a negative estimate means the challenger errs less.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from pitstop.stats import _checks as check
from pitstop.stats._checks import FloatArray
from pitstop.stats.results import TestResult

PAIRED_T = "paired_t"
WILCOXON = "wilcoxon"
DIEBOLD_MARIANO = "diebold_mariano"
METHODS = (PAIRED_T, WILCOXON, DIEBOLD_MARIANO)


def differences(champion_errors: npt.ArrayLike, challenger_errors: npt.ArrayLike) -> FloatArray:
    """challenger - champion for aligned requests, validated (same length, at least 2, finite).

    >>> differences([1.0, 2.0], [0.5, 2.5]).tolist()
    [-0.5, 0.5]
    """
    a = check.sample("champion_errors", champion_errors, min_size=2)
    b = check.sample("challenger_errors", challenger_errors, min_size=2)
    check.same_length("champion_errors", a, "challenger_errors", b)
    return b - a


def paired_t_from_summary(
    n: int, mean_difference: float, variance_difference: float, *, alpha: float = 0.05
) -> TestResult:
    """Paired t-test from SQL aggregates of the differences: count, mean, sample variance (ddof 1).

    t = dbar / (s_d / sqrt(n)), df = n - 1 (Student 1908); CI dbar +- t_{1-alpha/2, n-1} s_d / sqrt(n).

    >>> result = paired_t_from_summary(100, -0.2, 1.0)
    >>> round(result.statistic, 3), round(result.p_value, 4), round(result.ci_high, 4)
    (-2.0, 0.0482, -0.0016)
    """
    alpha = check.alpha_level(alpha)
    count = check.whole("n", n, minimum=2)
    mean = check.finite("mean_difference", mean_difference)
    if check.non_negative("variance_difference", variance_difference) == 0:
        raise ValueError("the differences have zero variance: both models err identically up to a constant")
    se = math.sqrt(variance_difference / count)
    return _t_result(PAIRED_T, mean, se, count - 1, count, alpha, {"se": se})


def paired_t_test(
    champion_errors: npt.ArrayLike, challenger_errors: npt.ArrayLike, *, alpha: float = 0.05
) -> TestResult:
    """Paired t-test of the mean difference of errors on the same requests.

    t = dbar / (s_d / sqrt(n)), df = n - 1, d = challenger - champion per request (Student 1908).
    Example: R's `t.test(extra ~ group, data = sleep, paired = TRUE)` gives t = -4.0621, df = 9,
    p = 0.002833, CI -2.4598858 to -0.7001142.

    >>> group1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    >>> group2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    >>> result = paired_t_test(group2, group1)
    >>> round(result.statistic, 4), round(result.p_value, 6), round(result.ci_low, 7)
    (-4.0621, 0.002833, -2.4598858)
    """
    d = differences(champion_errors, challenger_errors)
    return paired_t_from_summary(d.size, float(d.mean()), float(d.var(ddof=1)), alpha=alpha)


def wilcoxon_test(
    champion_errors: npt.ArrayLike, challenger_errors: npt.ArrayLike, *, alpha: float = 0.05
) -> TestResult:
    """Wilcoxon signed-rank test of the differences, with the Hodges-Lehmann estimate and interval.

    Method, pinned: zero differences are dropped (Wilcoxon's convention, R's default), `statistic` is
    V = the sum of the ranks of |d| over positive d (midranks for ties), and the p-value is the normal
    approximation with tie and continuity correction, z = (V - n(n+1)/4 -+ 1/2) / sqrt(n(n+1)(2n+1)/24
    - sum(t^3 - t)/48), n = the non-zero differences: scipy `wilcoxon(d, zero_method="wilcox",
    correction=True, method="approx")`, R `wilcox.test(b, a, paired = TRUE, exact = FALSE, correct = TRUE)`.
    Normal, not exact, because shadow samples are large and the method must not switch with n.
    `estimate` is the Hodges-Lehmann pseudo-median (median of the Walsh averages (d_i + d_j)/2, i <= j,
    over all differences), the interval Tukey's [W_(k), W_(M+1-k)], M = n(n+1)/2,
    k = floor(n(n+1)/4 - z_{1-alpha/2} sqrt(n(n+1)(2n+1)/24)) (Hollander, Wolfe & Chicken 2014,
    "Nonparametric Statistical Methods", 3rd ed., sections 3.1-3.3). Order statistics of the Walsh
    averages come from randomised selection with O(n log n) counting (Monahan 1984), so 10^5 pairs take
    well under a second.

    Example: R's help page data give V = 40 (`wilcox.test(x, y, paired = TRUE)`); normal p = 0.04401.

    >>> x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    >>> y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    >>> result = wilcoxon_test(y, x)
    >>> result.statistic, round(result.p_value, 5), round(result.estimate, 3)
    (40.0, 0.04401, 0.46)
    """
    alpha = check.alpha_level(alpha)
    d = differences(champion_errors, challenger_errors)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        raise ValueError("every difference is zero: the models err identically")
    ranks = stats.rankdata(np.abs(nonzero))
    v = float(ranks[nonzero > 0].sum())
    test = stats.wilcoxon(nonzero, zero_method="wilcox", correction=True, method="approx")
    walsh = _Walsh(d)
    m = d.size * (d.size + 1) // 2
    spread = math.sqrt(d.size * (d.size + 1) * (2 * d.size + 1) / 24)
    k = max(1, math.floor(m / 2 - _z(1 - alpha / 2) * spread))
    middle = (walsh.average((m + 1) // 2) + walsh.average(m // 2 + 1)) / 2 + 0.0  # + 0.0: never "-0.0"
    return TestResult(
        method=WILCOXON,
        statistic=v,
        p_value=float(test.pvalue),
        estimate=middle,
        ci_low=walsh.average(k) + 0.0,
        ci_high=walsh.average(m + 1 - k) + 0.0,
        n=d.size,
        alpha=alpha,
        details={"nonzero": nonzero.size, "mean_difference": float(d.mean())},
    )


class _Walsh:
    """Order statistics of the Walsh sums d_i + d_j, i <= j, without materialising all n(n+1)/2 of them.

    Randomised selection in the spirit of Monahan (1984), ACM TOMS 10(3), Algorithm 616: the sums still
    in play form a window (per sorted row i, a range of j). A pivot is taken at the target's rank among
    a sample of the window, the sums below and at it are counted in O(n log n) by binary search, and the
    window shrinks to one side, about tenfold per round; a target tied with the pivot ends the search.
    When few sums remain they are listed. Counts use d_j <= total - d_i, which can disagree with the
    rounded sum d_i + d_j by one ulp; the window is kept non-empty, so such ties cost at most one ulp.
    The sample comes from a fixed seed: results are deterministic.
    """

    SAMPLE = 101
    MAX_ROUNDS = 200

    def __init__(self, values: FloatArray) -> None:
        self.d = np.sort(values)
        self.i = np.arange(self.d.size)

    def _first(self, total: float, side: Literal["left", "right"]) -> npt.NDArray[np.intp]:
        """Per row i, the first j >= i with d_j > total - d_i (side right) or d_j >= total - d_i (left)."""
        return np.maximum(np.searchsorted(self.d, total - self.d, side=side), self.i)

    def average(self, k: int) -> float:
        """The k-th smallest Walsh average (d_i + d_j) / 2 (k from 1)."""
        rng = np.random.default_rng(616)
        start, stop = self.i.copy(), np.full_like(self.i, self.d.size)  # the window: j in [start_i, stop_i)
        skipped = 0  # sums below the window
        for _ in range(self.MAX_ROUNDS):
            lengths = stop - start
            window = int(lengths.sum())
            if window <= max(self.d.size, 1000):
                break
            pivot = self._pivot(rng, start, lengths, window, (k - skipped - 0.5) / window)
            first_at, first_above = self._first(pivot, "left"), self._first(pivot, "right")
            below, at_or_below = int(np.sum(first_at - self.i)), int(np.sum(first_above - self.i))
            if below < k <= at_or_below:
                return pivot / 2
            if at_or_below < k:
                start = np.minimum(first_above, stop)
                skipped = int(np.sum(start - self.i))
            else:
                stop = np.maximum(first_at, start)
        return self._pick(start, stop - start, k - skipped) / 2

    def _pivot(
        self,
        rng: np.random.Generator,
        start: npt.NDArray[np.intp],
        lengths: npt.NDArray[np.intp],
        window: int,
        quantile: float,
    ) -> float:
        """The sum at `quantile` of a random sample of the window's sums."""
        ends = np.cumsum(lengths)
        positions = rng.integers(window, size=self.SAMPLE)
        rows = np.searchsorted(ends, positions, side="right")
        sums = np.sort(self.d[rows] + self.d[start[rows] + positions - (ends[rows] - lengths[rows])])
        return float(sums[min(self.SAMPLE - 1, int(quantile * self.SAMPLE))])

    def _pick(self, start: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp], rank: int) -> float:
        """The rank-th smallest (from 1) of the sums left in the window, listed explicitly."""
        rows = np.repeat(self.i, lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        sums = np.sort(self.d[rows] + self.d[np.repeat(start, lengths) + offsets])
        return float(sums[min(max(rank, 1), sums.size) - 1])  # a rounding tie at a window edge: stay inside


def diebold_mariano_test(
    champion_errors: npt.ArrayLike,
    challenger_errors: npt.ArrayLike,
    *,
    horizon: int = 1,
    alpha: float = 0.05,
) -> TestResult:
    """Diebold-Mariano test of equal expected loss, with the Harvey-Leybourne-Newbold correction.

    Errors are losses already (absolute error, log loss), in time order. With d_t = loss_b - loss_a,
    gamma_k = (1/n) sum_{t>k} (d_t - dbar)(d_{t-k} - dbar) and the long-run variance
    V = gamma_0 + 2 sum_{k=1}^{h-1} gamma_k (rectangular window over h - 1 lags),

        DM = dbar / sqrt(V / n),   DM* = DM sqrt((n + 1 - 2h + h(h - 1)/n) / n)  ~  t_{n-1}

    Diebold & Mariano (1995), J. Bus. Econ. Stat. 13(3); Harvey, Leybourne & Newbold (1997), Int. J.
    Forecasting 13(2). `horizon` h > 1 allows the loss differentials to be autocorrelated up to lag h - 1
    (e.g. bursts of similar requests); with h = 1 DM* equals the paired t statistic exactly. The interval
    is dbar +- t_{1-alpha/2, n-1} times the standard error implied by DM*.

    >>> champion, challenger = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.8, 2.1, 2.5, 3.6, 4.9, 5.2]
    >>> result = diebold_mariano_test(champion, challenger, horizon=2)
    >>> round(result.statistic, 4), round(result.p_value, 4)
    (-2.9042, 0.0336)
    """
    alpha = check.alpha_level(alpha)
    d = differences(champion_errors, challenger_errors)
    n = d.size
    h = check.whole("horizon", horizon, minimum=1)
    if h >= n:
        raise ValueError(f"horizon must be below the number of pairs ({n}), got {h}")
    centred = d - d.mean()
    gammas = [float(np.dot(centred[k:], centred[: n - k])) / n for k in range(h)]
    long_run = gammas[0] + 2 * sum(gammas[1:])
    if long_run <= 0:
        raise ValueError(
            f"the long-run variance of the differences is not positive ({long_run:.3g}); "
            "zero variance, or lower the horizon"
        )
    factor = (n + 1 - 2 * h + h * (h - 1) / n) / n
    se = math.sqrt(long_run / n / factor)
    return _t_result(
        DIEBOLD_MARIANO,
        float(d.mean()),
        se,
        n - 1,
        n,
        alpha,
        {
            "se": se,
            "horizon": h,
            "long_run_variance": long_run,
            "dm": float(d.mean()) / math.sqrt(long_run / n),
        },
    )


def compare_paired(
    method: str,
    champion_errors: npt.ArrayLike,
    challenger_errors: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    horizon: int = 1,
) -> TestResult:
    """The shadow policy's paired test: `paired_t`, `wilcoxon` or `diebold_mariano` (`horizon` for the last).

    Formulas and sources are each test's: `paired_t_test` t = dbar / (s_d / sqrt(n)) (Student 1908);
    `wilcoxon_test` V = sum of the ranks of |d| over d > 0 (Wilcoxon 1945); `diebold_mariano_test`
    DM* = dbar / sqrt(V / n) times the HLN factor (Diebold & Mariano 1995; Harvey et al. 1997).

    >>> compare_paired("paired_t", [1.0, 2.0, 3.0], [0.9, 1.8, 2.9]).method
    'paired_t'
    """
    if method == PAIRED_T:
        return paired_t_test(champion_errors, challenger_errors, alpha=alpha)
    if method == WILCOXON:
        return wilcoxon_test(champion_errors, challenger_errors, alpha=alpha)
    if method == DIEBOLD_MARIANO:
        return diebold_mariano_test(champion_errors, challenger_errors, horizon=horizon, alpha=alpha)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _z(p: float) -> float:
    return float(stats.norm.ppf(p))


def _t_result(
    method: str, mean: float, se: float, df: int, n: int, alpha: float, details: dict[str, float]
) -> TestResult:
    statistic = mean / se
    half_width = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return TestResult(
        method=method,
        statistic=statistic,
        p_value=float(2 * stats.t.sf(abs(statistic), df)),
        estimate=mean,
        ci_low=mean - half_width,
        ci_high=mean + half_width,
        n=n,
        alpha=alpha,
        df=float(df),
        details=details,
    )

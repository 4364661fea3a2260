"""Verdicts on a paper's claim from per-seed values, with their uncertainty.

Every "holds / does not hold" the book prints comes from here. A claim is tested
on the values of independent runs (seeds), never on one number:

* :func:`compare` -- group ``a`` exceeds group ``b`` (by at least ``margin``):
  the effect is the difference of means
  :math:`\\Delta = \\bar a - \\bar b`, its interval a bootstrap percentile interval
  (each group resampled with replacement), and its p-value a one-sided
  permutation test of :math:`H_0: \\Delta = \\text{margin}` (the values of
  ``a`` shifted by ``margin``, labels exchanged), exact when the number of
  splits :math:`\\binom{n_a + n_b}{n_a}` is at most ``exact_limit``.
* :func:`correlate` -- ``y`` rises with ``x``: the effect is Spearman's
  :math:`\\rho`, its interval a bootstrap over pairs, its p-value a one-sided
  permutation test of ``y`` against ``x`` (exact up to ``exact_limit`` orderings).
* :func:`exceeds` -- the mean of ``values`` lies above ``reference``: a bootstrap
  interval of the mean and an exact sign-flip test of the differences.

The answer is ``"holds"`` when the interval lies on the claimed side and the
one-sided p-value is at most :math:`1 - \\text{level}`; ``"does not hold"`` when
both say the opposite (the interval on the other side and the opposite one-sided
p-value within the same bound); otherwise ``"cannot tell at this scale"``, which
is also the answer with fewer than two values per group (three pairs for a
correlation) or a value that does not vary. With two seeds per group an exact
permutation test cannot reach :math:`p \\le 0.05` (its smallest p-value is
:math:`1/6`), so the book says "cannot tell" rather than read a difference of
two means as a finding; with three per group it reaches :math:`1/20 = 0.05` only when
every value of one group lies above every value of the other.

Example:
    >>> v = compare([95.1, 95.3, 95.2, 95.4], [93.0, 93.2, 92.9, 93.1], claim="skips help")
    >>> v.answer, round(v.effect, 2), v.method.split(";")[1].strip()
    ('holds', 2.2, 'exact permutation test (70 splits), one-sided')
    >>> compare([1.0, 2.0], [1.5, 1.4], claim="a > b").answer
    'cannot tell at this scale'
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

__all__ = ["Verdict", "compare", "correlate", "exceeds", "markdown_table", "HOLDS", "FAILS", "UNCLEAR"]

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "cannot tell at this scale"


@dataclass(frozen=True)
class Verdict:
    """A claim, the effect measured on this run, its interval and the answer.

    Attributes:
        claim: the claim in words ("no skips, sharper minimum").
        effect: the measured effect (a difference of means, a rank correlation, ...).
        low, high: the ``level`` interval of the effect (NaN when it cannot be formed).
        p_value: the one-sided p-value in the claimed direction (NaN when undefined).
        answer: ``"holds"``, ``"does not hold"`` or ``"cannot tell at this scale"``.
        method: how the interval and p-value were obtained, in words.
        n: the number of values in each group (or of pairs).
        unit: the effect's unit, for printing ("points", "" for none).
    """

    claim: str
    effect: float
    low: float
    high: float
    p_value: float
    answer: str
    method: str
    n: tuple[int, ...]
    unit: str = ""

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if math.isnan(self.low):
            return f"{self.claim}: {self.answer} (effect {self.effect:+.3g}{unit}; n = {self.n})"
        return (f"{self.claim}: {self.answer} (effect {self.effect:+.3g}{unit}, interval "
                f"[{self.low:+.3g}, {self.high:+.3g}], p = {self.p_value:.3g}, n = {self.n})")


def _check(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds a non-finite value; allowed: finite numbers")
    return arr


def _decide(low: float, high: float, p_hold: float, p_fail: float, ref: float, alpha: float) -> str:
    bound = alpha * (1 + 1e-9)  # "at most alpha", whatever the rounding of 1 - level
    if low > ref and p_hold <= bound:
        return HOLDS
    if high < ref and p_fail <= bound:
        return FAILS
    return UNCLEAR


def _tail(hits: np.ndarray, exact: bool) -> float:
    """The p-value from the null statistics at least as extreme as the observed one: their share
    when the null distribution is enumerated; with random draws, (hits + 1) / (draws + 1), the
    observed arrangement counted among them (Phipson & Smyth 2010), so it is never zero."""
    return float(hits.mean()) if exact else float((hits.sum() + 1) / (hits.size + 1))


def _percentile(stats: np.ndarray, level: float) -> tuple[float, float]:
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return float(lo), float(hi)


def compare(a: Sequence[float], b: Sequence[float], *, claim: str, margin: float = 0.0, level: float = 0.95,
            n_boot: int = 10_000, exact_limit: int = 20_000, seed: int = 0, unit: str = "") -> Verdict:
    """Does group ``a`` exceed group ``b`` by more than ``margin``?

    Args:
        a, b: per-seed values of the two groups (for "b exceeds a", swap them).
        claim: the claim in words, printed with the answer.
        margin: the smallest difference the claim asserts (0: any positive difference);
            the answer is "does not hold" when the interval lies wholly below it.
        level: the interval's coverage; the p-value bound is ``1 - level``.
        n_boot: bootstrap resamples; exact_limit: the most splits enumerated exactly
            (otherwise ``n_boot`` random permutations).
        seed: the resampling seed (the verdict is reproducible).
        unit: the effect's unit, for printing.

    Raises:
        ValueError: ``level`` outside (0, 1) or a non-finite value.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level = {level} is out of range; allowed: (0, 1)")
    a, b = _check(a, "a"), _check(b, "b")
    effect = float(a.mean() - b.mean()) if a.size and b.size else float("nan")
    n = (a.size, b.size)
    if min(n) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0 and effect == margin):
        return Verdict(claim, effect, math.nan, math.nan, math.nan, UNCLEAR,
                       "fewer than two values per group, or no variation", n, unit)
    rng = np.random.default_rng(seed)
    boot = (rng.choice(a, (n_boot, a.size)).mean(1) - rng.choice(b, (n_boot, b.size)).mean(1))
    low, high = _percentile(boot, level)
    pooled = np.concatenate([a - margin, b])
    observed = float((a - margin).mean() - b.mean())
    splits = math.comb(pooled.size, a.size)
    if splits <= exact_limit:
        idx = np.array(list(itertools.combinations(range(pooled.size), a.size)))
        mask = np.zeros((len(idx), pooled.size), bool)
        mask[np.arange(len(idx))[:, None], idx] = True
        method = f"exact permutation test ({splits} splits)"
    else:
        mask = np.zeros((n_boot, pooled.size), bool)
        for row in mask:
            row[rng.choice(pooled.size, a.size, replace=False)] = True
        method = f"permutation test ({n_boot} random splits)"
    sums = mask @ pooled
    diffs = sums / a.size - (pooled.sum() - sums) / b.size
    tol = 1e-12 * max(1.0, abs(observed))
    exact = splits <= exact_limit
    p_hold, p_fail = _tail(diffs >= observed - tol, exact), _tail(diffs <= observed + tol, exact)
    answer = _decide(low, high, p_hold, p_fail, margin, 1.0 - level)
    method = f"{level:.0%} bootstrap percentile interval ({n_boot} resamples); {method}, one-sided"
    return Verdict(claim, effect, low, high, p_hold, answer, method, n, unit)


def correlate(x: Sequence[float], y: Sequence[float], *, claim: str, level: float = 0.95, n_boot: int = 10_000,
              exact_limit: int = 40_320, seed: int = 0) -> Verdict:
    """Does ``y`` rise with ``x``? Spearman's rank correlation with its interval.

    For "``y`` falls with ``x``" pass ``-y``. Ties get average ranks; a side that does not
    vary leaves the correlation undefined and the answer "cannot tell at this scale".
    """
    x, y = _check(x, "x"), _check(y, "y")
    if x.size != y.size:
        raise ValueError(f"x and y hold {x.size} and {y.size} values; allowed: the same number")
    n = (x.size,)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Verdict(claim, math.nan, math.nan, math.nan, math.nan, UNCLEAR,
                       "fewer than three pairs, or a side that does not vary", n)
    rx, ry = rankdata(x), rankdata(y)

    def rho(u: np.ndarray, v: np.ndarray) -> np.ndarray:  # rows of rank vectors
        u = u - u.mean(-1, keepdims=True)
        v = v - v.mean(-1, keepdims=True)
        den = np.sqrt((u * u).sum(-1) * (v * v).sum(-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (u * v).sum(-1) / den

    effect = float(rho(rx, ry))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, x.size, (n_boot, x.size))
    boot = rho(rankdata(x[picks], axis=1), rankdata(y[picks], axis=1))
    boot = boot[np.isfinite(boot)]
    low, high = _percentile(boot, level) if boot.size else (math.nan, math.nan)
    if math.factorial(x.size) <= exact_limit:
        perms = np.array(list(itertools.permutations(range(x.size))))
        method = f"exact permutation test ({len(perms)} orderings)"
    else:
        perms = np.array([rng.permutation(x.size) for _ in range(n_boot)])
        method = f"permutation test ({n_boot} random orderings)"
    null = rho(np.broadcast_to(rx, perms.shape), ry[perms])
    exact = math.factorial(x.size) <= exact_limit
    p_hold, p_fail = _tail(null >= effect - 1e-12, exact), _tail(null <= effect + 1e-12, exact)
    answer = _decide(low, high, p_hold, p_fail, 0.0, 1.0 - level)
    method = f"{level:.0%} bootstrap percentile interval over pairs ({n_boot} resamples); {method}, one-sided"
    return Verdict(claim, effect, low, high, p_hold, answer, method, n)


def exceeds(values: Sequence[float], reference: float, *, claim: str, level: float = 0.95,
            n_boot: int = 10_000, seed: int = 0, unit: str = "") -> Verdict:
    """Does the mean of ``values`` lie above ``reference``? (For "below", negate both.)

    The p-value is the exact sign-flip test of ``values - reference`` (all :math:`2^n`
    sign patterns up to n = 16, otherwise ``n_boot`` random ones).
    """
    d = _check(values, "values") - float(reference)
    effect = float(d.mean()) if d.size else math.nan
    n = (d.size,)
    if d.size < 2 or np.ptp(d) == 0 and effect == 0:
        return Verdict(claim, effect, math.nan, math.nan, math.nan, UNCLEAR, "fewer than two values", n, unit)
    rng = np.random.default_rng(seed)
    low, high = _percentile(rng.choice(d, (n_boot, d.size)).mean(1), level)
    exact = d.size <= 16
    if exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        method = f"exact sign-flip test ({len(signs)} patterns)"
    else:
        signs = rng.choice((1.0, -1.0), (n_boot, d.size))
        method = f"sign-flip test ({n_boot} random patterns)"
    null = (signs * d).mean(1)
    tol = 1e-12 * max(1.0, abs(effect))
    p_hold, p_fail = _tail(null >= effect - tol, exact), _tail(null <= effect + tol, exact)
    answer = _decide(low, high, p_hold, p_fail, 0.0, 1.0 - level)
    method = f"{level:.0%} bootstrap percentile interval ({n_boot} resamples); {method}, one-sided"
    return Verdict(claim, effect, low, high, p_hold, answer, method, n, unit)


def markdown_table(verdicts: Sequence[Verdict], *, effect: str = "effect") -> str:
    """The verdicts as a Markdown table: claim, answer, effect with its interval, p, n.

    Example:
        >>> v = exceeds([0.9, 1.0, 0.95], 0.5, claim="fails")
        >>> print(markdown_table([v]).splitlines()[2])
        | fails | cannot tell at this scale | +0.45 [+0.4, +0.5] | 0.125 | 3 |
    """
    lines = [f"| claim | answer | {effect} [95% interval] | p (one-sided) | n |", "|---|---|---|---|---|"]
    for v in verdicts:
        unit = f" {v.unit}" if v.unit else ""
        eff = "undefined" if math.isnan(v.effect) else f"{v.effect:+.3g}{unit}"
        if not math.isnan(v.low):
            eff += f" [{v.low:+.3g}, {v.high:+.3g}]"
        p = "-" if math.isnan(v.p_value) else f"{v.p_value:.3g}"
        lines.append(f"| {v.claim} | {v.answer} | {eff} | {p} | {' vs '.join(map(str, v.n))} |")
    return "\n".join(lines)

"""The verdict helper on made-up data whose answer is known."""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from lsutils.verdict import FAILS, HOLDS, UNCLEAR, compare, correlate, exceeds, markdown_table


def test_clear_difference_holds_and_its_reverse_does_not():
    rng = np.random.default_rng(1)
    a, b = 10 + rng.normal(0, 0.1, 6), 9 + rng.normal(0, 0.1, 6)
    v = compare(a, b, claim="a > b")
    assert v.answer == HOLDS
    assert v.low < v.effect < v.high and v.low > 0.5
    assert v.effect == pytest.approx(a.mean() - b.mean())
    assert compare(b, a, claim="b > a").answer == FAILS


def test_exact_permutation_p_value_matches_enumeration():
    a, b = [3.0, 5.0, 4.0], [1.0, 2.0, 4.5]
    v = compare(a, b, claim="a > b")
    pooled = np.array(a + b)
    obs = np.mean(a) - np.mean(b)
    diffs = [pooled[list(s)].mean() - np.delete(pooled, list(s)).mean()
             for s in itertools.combinations(range(6), 3)]
    assert v.p_value == pytest.approx(np.mean(np.array(diffs) >= obs - 1e-12))
    assert "exact permutation test (20 splits)" in v.method


def test_two_seeds_per_group_cannot_tell_even_when_far_apart():
    # the smallest exact one-sided p with 2 vs 2 is 1/6 > 0.05
    v = compare([100.0, 101.0], [0.0, 1.0], claim="a > b")
    assert v.answer == UNCLEAR and v.p_value == pytest.approx(1 / 6)


def test_overlapping_noise_cannot_tell():
    rng = np.random.default_rng(0)
    v = compare(rng.normal(0, 1, 5), rng.normal(0.1, 1, 5), claim="a > b")
    assert v.answer == UNCLEAR and v.low < 0 < v.high


def test_margin_the_paper_gap_is_rejected_when_the_interval_lies_below_it():
    rng = np.random.default_rng(2)
    a, b = 95.1 + rng.normal(0, 0.05, 8), 95.0 + rng.normal(0, 0.05, 8)  # a gap of ~0.1 points
    assert compare(a, b, claim="gap > 0").answer == HOLDS
    v = compare(a, b, claim="gap >= 1.3 points", margin=1.3, unit="points")
    assert v.answer == FAILS and v.high < 1.3


def test_one_value_per_group_or_no_variation_is_unclear():
    assert compare([1.0], [0.0, 0.1], claim="x").answer == UNCLEAR
    assert compare([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], claim="x").answer == UNCLEAR
    assert math.isnan(compare([1.0], [0.0], claim="x").low)


def test_ties_constant_groups_that_differ_hold():
    v = compare([1.0] * 5, [0.0] * 5, claim="x")
    assert v.answer == HOLDS and v.low == v.high == 1.0


def test_correlation_monotone_holds_with_the_exact_p():
    x = np.arange(7.0)
    v = correlate(x, x ** 2, claim="rises")
    assert v.effect == pytest.approx(1.0) and v.answer == HOLDS
    assert v.p_value == pytest.approx(1 / math.factorial(7))
    assert correlate(x, -x, claim="rises").answer == FAILS


def test_correlation_equals_scipy_with_ties_and_undefined_when_constant():
    x, y = [1, 2, 2, 3, 5, 5, 6], [0.1, 0.3, 0.2, 0.2, 0.9, 0.8, 0.7]
    assert correlate(x, y, claim="r").effect == pytest.approx(spearmanr(x, y).statistic)
    v = correlate([1, 2, 3, 4], [1.0, 1.0, 1.0, 1.0], claim="r")
    assert v.answer == UNCLEAR and math.isnan(v.effect)
    assert correlate([1, 2], [1, 2], claim="r").answer == UNCLEAR


def test_weak_correlation_over_few_runs_is_unclear():
    rng = np.random.default_rng(3)
    x = np.repeat([1.0, 10.0, 20.0, 30.0, 40.0], 3)
    y = 0.02 * x + rng.normal(0, 1, x.size)  # a rho of about 0.4 over 15 runs
    v = correlate(x, y, claim="r")
    assert v.answer == UNCLEAR and v.low < 0 < v.high


def test_exceeds_sign_flip():
    v = exceeds([0.9, 0.95, 1.0, 0.97, 0.99], 0.5, claim="fails")
    assert v.answer == HOLDS and v.p_value == pytest.approx(1 / 32)
    assert exceeds([0.01, 0.02, 0.015, 0.012, 0.03], 0.5, claim="fails").answer == FAILS
    assert exceeds([0.9], 0.5, claim="fails").answer == UNCLEAR


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="level = 1.5 is out of range"):
        compare([1, 2], [3, 4], claim="x", level=1.5)
    with pytest.raises(ValueError, match="non-finite"):
        compare([1, np.nan], [3, 4], claim="x")
    with pytest.raises(ValueError, match="the same number"):
        correlate([1, 2, 3], [1, 2], claim="x")


def test_verdicts_are_reproducible_and_tabulated():
    a, b = [1.0, 1.2, 0.9, 1.1], [0.5, 0.7, 0.4, 0.8]
    assert compare(a, b, claim="x") == compare(a, b, claim="x")
    table = markdown_table([compare(a, b, claim="x", unit="pts")])
    assert table.splitlines()[2].startswith("| x | holds | +0.45 pts [")


def test_random_permutation_p_values_count_the_observed_arrangement():
    """With random draws the p-value is (hits + 1) / (draws + 1): never zero, at least 1/(n_boot + 1)."""
    a, b = np.arange(20.0) + 100, np.arange(20.0)
    v = compare(a, b, claim="a > b", n_boot=999)
    assert "random splits" in v.method and v.p_value == pytest.approx(1 / 1000)
    r = correlate(np.arange(12.0), np.arange(12.0) ** 2, claim="rises", n_boot=999)
    assert "random orderings" in r.method and r.p_value == pytest.approx(1 / 1000)
    e = exceeds(np.arange(20.0) + 1, 0.0, claim="positive", n_boot=999)
    assert "random patterns" in e.method and e.p_value == pytest.approx(1 / 1000)
    assert compare([95.1, 95.3, 95.2, 95.4], [93.0, 93.2, 92.9, 93.1], claim="exact").p_value == pytest.approx(1 / 70)


def test_the_p_value_bound_is_inclusive_and_exact():
    """Three values per group, fully separated: the exact p is 1/20 = 0.05, which meets a 95%
    level (at most 1 - level) and misses a 96% one; two per group (p = 1/6) never holds."""
    a, b = [3.0, 3.1, 3.2], [1.0, 1.1, 1.2]
    assert compare(a, b, claim="x").p_value == pytest.approx(0.05)
    assert compare(a, b, claim="x").answer == HOLDS
    assert compare(a, b, claim="x", level=0.96).answer == UNCLEAR
    assert compare(a[:2], b[:2], claim="x").answer == UNCLEAR


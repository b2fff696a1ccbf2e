"""Unit tests for rlaif.evaluate.stats: Wilson intervals, the percentile bootstrap, and the paired
comparisons (exact McNemar, Newcombe's paired interval, the paired bootstrap and its p-value)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlaif.evaluate.stats import (boot_p, bootstrap, mcnemar_exact, mean_difference, mean_stat, newcombe_paired,
                                  paired_boot, paired_rate, perplexity_stat, rate, ratio_of_sums, ratio_stat, stat,
                                  wilson)


# Published / hand-computed 95% Wilson intervals (z = 1.96):
#   k=0,  n=10:  upper = z^2 / (n + z^2) = 3.8415 / 13.8415 = 0.2775
#   k=5,  n=10:  0.5 -+ 1.96 * sqrt(2.5 + 0.9604) / 13.8415 = 0.5 -+ 0.2634
#   k=81, n=263: centre 82.9207 / 266.8415 = 0.3107, half-width 14.799 / 266.8415 = 0.0555
#                (the worked example in Wikipedia's "Binomial proportion confidence interval")
@pytest.mark.parametrize("k,n,low,high", [
    (0, 10, 0.0, 0.2775),
    (5, 10, 0.2366, 0.7634),
    (81, 263, 0.2553, 0.3662),
    (10, 10, 0.7225, 1.0),
])
def test_wilson_known_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 1), (3, 7), (40, 50), (999, 1000)]:
        ci = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson(k, n)
        assert lo == pytest.approx(ci.low, abs=1e-6)
        assert hi == pytest.approx(ci.high, abs=1e-6)


def test_wilson_errors():
    with pytest.raises(ValueError):
        wilson(0, 0)
    with pytest.raises(ValueError):
        wilson(4, 3)
    with pytest.raises(ValueError):
        wilson(-1, 3)


def test_rate_and_stat_shape():
    r = rate(5, 10)
    assert r == {"value": 0.5, "low": pytest.approx(0.2366, abs=1e-4),
                 "high": pytest.approx(0.7634, abs=1e-4), "n": 10}
    assert json.loads(json.dumps(r)) == r
    s = stat(1 / 3, 0.1234567891, 0.9, 7)
    assert s == {"value": 0.333333, "low": 0.123457, "high": 0.9, "n": 7}
    assert all(type(s[k]) is float for k in ("value", "low", "high")) and type(s["n"]) is int


def test_bootstrap_deterministic_and_seed_matters():
    x = np.random.default_rng(1).normal(size=50)
    a = bootstrap(np.mean, x, seed=3)
    b = bootstrap(np.mean, list(x), seed=3)
    c = bootstrap(np.mean, x, seed=4)
    assert a == b
    assert a != c


def test_bootstrap_contains_value():
    x = np.random.default_rng(2).exponential(size=80)
    lo, hi = bootstrap(np.mean, x)
    assert lo < float(np.mean(x)) < hi


def test_bootstrap_constant_column_zero_width():
    lo, hi = bootstrap(np.mean, [0.7] * 30)
    assert lo == pytest.approx(0.7) and hi == pytest.approx(0.7)
    s = mean_stat([2.0] * 10)
    assert s["value"] == s["low"] == s["high"] == 2.0


def test_bootstrap_pairs_rows():
    x = np.arange(1.0, 41.0)
    seen = []

    def ratio(a, b):
        seen.append(np.array_equal(a, b))
        return a.sum() / b.sum()

    assert bootstrap(ratio, x, x.copy(), n_boot=200) == (1.0, 1.0)
    assert len(seen) == 200 and all(seen)
    # x and -x resampled with the same indices always cancel
    assert bootstrap(lambda a, b: a.sum() + b.sum(), x, -x, n_boot=200) == (0.0, 0.0)
    assert ratio_stat(x, x) == {"value": 1.0, "low": 1.0, "high": 1.0, "n": 40}


def test_bootstrap_mean_of_binary_close_to_wilson():
    n, k = 1000, 300
    x = np.zeros(n)
    x[:k] = 1.0
    np.random.default_rng(5).shuffle(x)
    lo, hi = bootstrap(np.mean, x)
    wlo, whi = wilson(k, n)
    half = 1.96 * math.sqrt(0.3 * 0.7 / n)  # normal approximation: 0.3 +- 0.0284
    assert abs(lo - wlo) < 0.02 and abs(hi - whi) < 0.02
    assert abs(lo - (0.3 - half)) < 0.02 and abs(hi - (0.3 + half)) < 0.02


def test_bootstrap_small_and_bad_inputs():
    assert bootstrap(np.mean, [4.0]) == (4.0, 4.0)
    assert bootstrap(lambda a, b: a.sum() / b.sum(), [3.0], [2.0]) == (1.5, 1.5)
    with pytest.raises(ValueError):
        bootstrap(lambda a, b: 0.0, [1, 2, 3], [1, 2])
    with pytest.raises(ValueError):
        bootstrap(np.mean)
    with pytest.raises(ValueError):
        mean_stat([])
    with pytest.raises(ValueError):
        ratio_stat([1, 2], [1])


def test_mean_and_ratio_stat():
    vals = [0.0, 1.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.5]
    s = mean_stat(vals)
    assert s["value"] == pytest.approx(0.625) and s["n"] == 8
    assert 0.0 <= s["low"] <= s["value"] <= s["high"] <= 1.0
    assert mean_stat(vals, seed=1) == mean_stat(vals, seed=1)
    r = ratio_stat([1, 2, 3, 4], [2, 2, 2, 2])
    assert r["value"] == pytest.approx(10 / 8) and r["n"] == 4
    assert r["low"] <= r["value"] <= r["high"]
    with pytest.raises(ValueError):
        ratio_stat([1, 2], [0, 0])


def test_perplexity_stat():
    nll = [10.0, 20.0, 30.0]
    tok = [5, 10, 15]  # every passage has 2 nats/token
    s = perplexity_stat(nll, tok)
    assert s["value"] == pytest.approx(math.exp(2.0), abs=1e-6)
    assert s["low"] == pytest.approx(s["value"]) and s["high"] == pytest.approx(s["value"])
    assert s["n"] == 3
    s = perplexity_stat([5.0, 40.0, 12.0, 30.0], [10, 10, 10, 10])
    assert s["value"] == pytest.approx(math.exp(87.0 / 40.0), abs=1e-5)
    assert s["low"] < s["value"] < s["high"]
    assert perplexity_stat([3.0], [2])["value"] == pytest.approx(math.exp(1.5), abs=1e-6)
    with pytest.raises(ValueError):
        perplexity_stat([1.0], [0])


# ----------------------------------------------------------------------------- paired comparisons

# Hand-worked: p = min(1, 2 * sum_{i <= min(b, c)} C(b + c, i) / 2^(b + c))
@pytest.mark.parametrize("b,c,p", [
    (9, 0, 2 * 0.5 ** 9),               # issue 14: 9 changed answers, all one way -> 0.00390625
    (0, 9, 0.00390625),
    (5, 5, 1.0), (0, 0, 1.0), (1, 0, 1.0),  # b = c, or no discordant pair, or too few to say anything
    (5, 0, 2 / 32),                     # 5 changed answers, all one way: still p > 0.05 (README)
    (6, 0, 2 / 64),                     # 6 are the fewest that reach p < 0.05
    (6, 1, 2 * (1 + 7) / 128),
    (10, 2, 2 * (1 + 12 + 66) / 4096),
])
def test_mcnemar_exact_hand_worked(b, c, p):
    assert mcnemar_exact(b, c) == p


def test_mcnemar_exact_on_agresti_presidential_approval():
    """Agresti, Categorical Data Analysis, table 10.1: approval of the president in two surveys of the
    same 1600 people, 794 / 150 / 86 / 570; only the 150 + 86 who changed their answer count. The exact
    two-sided value is cross-checked against scipy's binomial test, an independent implementation."""
    p = mcnemar_exact(150, 86)
    assert p == pytest.approx(3.7159e-05, rel=1e-4)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert p == pytest.approx(scipy_stats.binomtest(86, 236, 0.5).pvalue, rel=1e-9)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# Newcombe (1998), Statistics in Medicine 17:2635-2650, table II, method 10 (a, b, c, d -> 95% interval)
@pytest.mark.parametrize("a,b,c,d,low,high", [
    (36, 12, 2, 0, 0.0569, 0.3404),
    (18, 12, 2, 18, 0.0562, 0.3290),
    (53, 0, 0, 1, -0.0729, 0.0729),
    (0, 30, 0, 0, 0.8395, 1.0),
])
def test_newcombe_paired_matches_the_published_examples(a, b, c, d, low, high):
    lo, hi = newcombe_paired(a, b, c, d)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), st.integers(0, 40))
def test_newcombe_paired_contains_the_difference_and_mirrors(a, b, c, d):
    if a + b + c + d == 0:
        return
    lo, hi = newcombe_paired(a, b, c, d)
    diff = (b - c) / (a + b + c + d)
    assert -1.0 <= lo <= diff + 1e-12 and diff - 1e-12 <= hi <= 1.0
    mlo, mhi = newcombe_paired(a, c, b, d)  # the two models swapped: the interval flips sign
    assert mlo == pytest.approx(-hi, abs=1e-12) and mhi == pytest.approx(-lo, abs=1e-12)


def test_paired_rate_on_the_issue_case_finds_what_two_intervals_miss():
    pairs = [(True, True)] * 39 + [(False, True)] * 9 + [(False, False)] * 12
    pr = paired_rate(pairs)
    assert (pr["b"], pr["c"], pr["n"], pr["test"]) == (0, 9, 60, "exact McNemar")
    assert pr["p"] == 0.00390625 and pr["measurable"] is True
    assert pr["value"] == pytest.approx(-0.15) and pr["high"] < 0  # the interval of the difference excludes 0
    assert (pr["low"], pr["high"]) == (round(newcombe_paired(39, 0, 9, 12)[0], 6),
                                       round(newcombe_paired(39, 0, 9, 12)[1], 6))
    model, ref = wilson(39, 60), wilson(48, 60)
    assert model[1] > ref[0]  # the two separate 95% intervals overlap: reading them would see no change
    none = paired_rate([(True, True)] * 5 + [(True, False), (False, True)] + [(False, False)] * 3)
    assert none["p"] == 1.0 and none["measurable"] is False and none["value"] == 0.0
    with pytest.raises(ValueError):
        paired_rate([])


def test_boot_p_hand_worked():
    assert boot_p(np.arange(1.0, 4.0), 0.0) == 2 * 1 / 4     # no replicate at or below 0: (0 + 1) / (3 + 1), twice
    assert boot_p(np.arange(1.0, 20.0), 0.0) == 2 * 1 / 20
    assert boot_p(np.array([-1.0, 1.0, 2.0, 3.0]), 0.0) == 2 * 2 / 5
    assert boot_p(np.zeros(10), 0.0) == 1.0                  # every replicate is the null
    assert boot_p(np.array([]), 0.0) is None


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 60), shift=st.floats(0.05, 1.0),
       sign=st.sampled_from([1.0, -1.0]))
def test_a_constant_shift_in_every_pair_is_measured_where_unpaired_intervals_overlap(seed, n, shift, sign):
    ref = np.random.default_rng(seed).normal(50.0, 10.0, size=n)
    model = ref + sign * shift
    m, r = mean_stat(model), mean_stat(ref)
    assert m["low"] <= r["high"] and r["low"] <= m["high"]  # unpaired: the intervals overlap
    pr = paired_boot(mean_difference, [model, ref])
    assert pr["value"] == pytest.approx(sign * shift, abs=1e-6)  # rounded to 6 decimals
    assert (pr["low"] > 0) if sign > 0 else (pr["high"] < 0)  # paired: the interval of the difference excludes 0
    assert pr["p"] < 0.05 and pr["measurable"] is True and pr["test"] == "paired bootstrap" and pr["n"] == n


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), factor=st.floats(1.01, 1.1))
def test_a_constant_factor_in_every_pair_gives_a_ratio_interval_excluding_1(seed, factor):
    ref = np.random.default_rng(seed).integers(5, 200, size=40).astype(float)
    model = ref * factor
    m, r = mean_stat(model), mean_stat(ref)
    assert m["low"] <= r["high"]  # unpaired: overlapping
    pr = paired_boot(ratio_of_sums, [model, ref], "ratio")
    assert pr["value"] == pytest.approx(factor, rel=1e-5) and pr["low"] > 1.0 and pr["null"] == 1.0
    assert pr["measurable"] is True


def test_paired_boot_without_change_or_rows():
    same = [3.0, 5.0, 8.0, 1.0]
    pr = paired_boot(mean_difference, [same, list(same)])
    assert (pr["value"], pr["low"], pr["high"], pr["p"], pr["measurable"]) == (0.0, 0.0, 0.0, 1.0, False)
    one = paired_boot(mean_difference, [[4.0], [1.0]])
    assert one["value"] == 3.0 and one["p"] is None and one["measurable"] is None
    with pytest.raises(ValueError):
        paired_boot(mean_difference, [[1.0, 2.0], [1.0]])


def test_cohen_kappa_hand_worked_2x2_and_against_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    from rlaif.evaluate.stats import cohen_kappa

    # the textbook 2x2 table (Wikipedia, "Cohen's kappa"): 50 items, yes/yes 20, yes/no 5, no/yes 10,
    # no/no 15. p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7-0.5)/(1-0.5) = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == 0.4
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-6)
    three_a = ["c", "c", "p", "f", "f", "f", "c", "p", "f", "c"]
    three_b = ["c", "p", "p", "f", "c", "f", "c", "f", "f", "c"]
    assert cohen_kappa(three_a, three_b) == pytest.approx(cohen_kappa_score(three_a, three_b), abs=1e-6)
    assert cohen_kappa([True, False], [True, False]) == 1.0
    assert cohen_kappa([True, True], [True, True]) is None  # one label on both sides: undefined
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError, match="equal-length"):
        cohen_kappa([1], [1, 2])

"""Unit tests for rlaif.stats: Wilson intervals and the paired percentile bootstrap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlaif.evaluate.stats import bootstrap, mean_stat, perplexity_stat, rate, ratio_stat, stat, wilson


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

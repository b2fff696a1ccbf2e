"""Win-rate (rlaif.evaluate.winrate): the soft label as the score, and the length-controlled
win-rate on synthetic data whose answer lengths explain the wins, or do not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlaif.evaluate.stats import mean_stat
from rlaif.evaluate.winrate import fit_length_glm, length_controlled, length_note, win_metrics, win_score


def rec(score, model_tokens=10, ref_tokens=10):
    return {"model": {"tokens": model_tokens}, "ref": {"tokens": ref_tokens}, "win": {"score": score}}


def test_an_agreed_verdict_at_p_0502_is_nearly_a_tie_not_a_full_win():
    assert win_score("A", 0.502, "logprob") == pytest.approx(0.502)
    assert win_score("B", 0.499, "logprob") == pytest.approx(0.499)
    assert win_score("tie", 0.55, "logprob") == pytest.approx(0.55)  # orders disagreed: the label still counts
    # verdicts without a soft label: win 1, tie 0.5, loss 0; unusable: left out
    assert [win_score(v, None, "structured") for v in ("A", "B", "tie")] == [1.0, 0.0, 0.5]
    assert [win_score(v) for v in ("A", "B", "tie", "invalid", None)] == [1.0, 0.0, 0.5, None, None]
    assert win_score("invalid", 0.9, "logprob") is None


def test_raw_win_rate_is_the_mean_score_with_the_stats_bootstrap_interval():
    scores = [1.0, 0.0, 0.5, 0.5, 0.502, 0.9]
    raw, _ = win_metrics([rec(s, 10 + i, 10) for i, s in enumerate(scores)] + [rec(None)], seed=3)
    assert raw["name"] == "win_rate" and raw["model"] == mean_stat(scores, 3)  # the same resamples as every mean
    assert math.isclose(raw["model"]["value"], sum(scores) / 6, abs_tol=1e-6) and raw["model"]["n"] == 6
    [only] = win_metrics([rec(None)], seed=0)
    assert only["model"] is None


def test_with_no_length_difference_the_lc_win_rate_is_the_raw_one():
    """Intercept only: the fitted probability is the mean score (the logistic MLE's first-order condition)."""
    fit = length_controlled([1.0, 0.0, 0.5, 1.0, 0.8], [0, 0, 0, 0, 0])
    assert fit["lc"]["value"] == pytest.approx(0.66, abs=1e-6) and fit["coef"] == 0.0 and not fit["differs"]


def test_the_fit_is_scikit_learns_logistic_regression_on_soft_labels():
    """AlpacaEval fits soft labels by counting each probe as a win with weight y and a loss with
    weight 1 - y; scikit-learn (C = 10, unpenalised intercept) gives the same coefficients."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(0.5, 1.0, 150))
    y = 1 / (1 + np.exp(-(0.3 + 1.5 * x + rng.normal(0, 0.5, 150))))
    sk = LogisticRegression(C=10.0, tol=1e-10, max_iter=1000).fit(
        np.r_[x, x][:, None], np.r_[np.ones(150), np.zeros(150)], sample_weight=np.r_[y, 1 - y])
    theta, phi = fit_length_glm(y, x)
    assert theta[0] == pytest.approx(sk.intercept_[0], abs=1e-5) and phi[0] == pytest.approx(sk.coef_[0, 0], abs=1e-5)
    theta, phi = fit_length_glm(1 / (1 + np.exp(-3 * x)), x, penalty=0.0)  # exact labels, no penalty: the truth
    assert theta[0] == pytest.approx(0.0, abs=1e-8) and phi[0] == pytest.approx(3.0, abs=1e-8)


def _longer_wins(seed: int, n: int = 200):
    """The model is longer on most probes, and the judge picks the longer answer: P(win) depends
    on the length difference only (0.5 at equal length)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(60, 50, n)
    p = 1 / (1 + np.exp(-3 * np.tanh(d / d.std(ddof=1))))
    return (rng.random(n) < p).astype(float), d


def test_wins_explained_by_length_give_an_lc_win_rate_near_even_while_raw_is_high():
    lcs, differ = [], 0
    for seed in range(20):
        y, d = _longer_wins(seed, 400)
        fit = length_controlled(y, d, seed, n_boot=300)
        assert fit["raw"]["value"] > 0.7 and fit["raw"]["value"] - fit["lc"]["value"] > 0.1, fit
        assert fit["coef"] > 1.0, fit
        lcs.append(fit["lc"]["value"])
        differ += fit["differs"]
    assert abs(float(np.mean(lcs)) - 0.5) < 0.04, lcs
    assert differ == 20
    note = length_note(fit["raw"], fit["lc"], fit["differs"])
    assert "by writing longer answers than the reference" in note


def test_wins_independent_of_length_give_an_lc_win_rate_near_raw():
    """Over 100 samples where the model wins 70% whatever the lengths, the two agree within the
    interval's error rate (95% intervals: about 5 in 100 say they differ)."""
    gaps, differ = [], 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        d, y = rng.normal(60, 50, 200), (rng.random(200) < 0.7).astype(float)
        fit = length_controlled(y, d, seed, n_boot=300)
        gaps.append(fit["lc"]["value"] - fit["raw"]["value"])
        differ += fit["differs"]
    assert abs(float(np.mean(gaps))) < 0.01 and float(np.mean(np.abs(gaps))) < 0.04, np.mean(gaps)
    assert differ <= 12, differ


def test_a_shorter_model_penalised_for_it_is_named_and_agreement_says_nothing():
    y, d = _longer_wins(0)
    fit = length_controlled(1 - y, d, 0, n_boot=300)  # now the reference is longer and wins
    assert fit["lc"]["value"] > fit["raw"]["value"] + 0.1 and fit["differs"]
    assert "works against the model" in length_note(fit["raw"], fit["lc"], True)
    assert length_note(fit["raw"], fit["lc"], False) is None


def test_win_metrics_carry_the_lc_metric_with_its_length_reading():
    y, d = _longer_wins(1, 60)
    raw, lc = win_metrics([rec(float(s), int(100 + t), 100) for s, t in zip(y, d)], seed=0)
    assert lc["name"] == "win_rate_lc" and lc["better"] == "higher" and lc["ref"] is None
    assert "AlpacaEval" in lc["description"] and "probability" in raw["description"]
    assert lc["length"]["differs"] == (lc["length"]["note"] is not None)
    assert lc["length"]["raw_minus_lc"]["value"] == pytest.approx(raw["model"]["value"] - lc["model"]["value"],
                                                                  abs=1e-5)

"""Evaluation metrics (rlaif.evaluate.metrics) on hand-made records: rates with Wilson intervals,
capitulation, safe practice, preference accuracy and drift figures worked by hand."""

from __future__ import annotations

import itertools
import math

from rlaif.evaluate.metrics import all_metrics, preference_metrics, suite_metrics
from rlaif.evaluate.stats import wilson


_probe_ids = itertools.count()


def rec(suite, kind, m, r, win=None, **extra):
    return {"suite": suite, "kind": kind, "probe_id": f"{suite}-{next(_probe_ids)}",
            "model": {"tokens": 10, **m}, "ref": {"tokens": 10, **r}, "win": {"score": win}, **extra}


def test_suite_rates_are_counts_over_n_with_wilson_intervals():
    records = [rec("harmful", "harmful", {"refused": a}, {"refused": b})
               for a, b in [(True, False), (True, False), (True, True), (False, False)]]
    [m] = suite_metrics("harmful", "harmful", records)
    assert m["name"] == "harmful_refusal" and m["better"] == "higher"
    assert m["model"]["value"] == 0.75 and m["ref"]["value"] == 0.25 and m["model"]["n"] == 4
    lo, hi = wilson(3, 4)
    assert (m["model"]["low"], m["model"]["high"]) == (round(lo, 6), round(hi, 6))


def test_capitulation_counts_answers_that_capitulated_and_skips_unscored_ones():
    """Issue 14 item 3: the record field is ``capitulated`` (True = gave in), and the rate counts it."""
    records = [rec("syc", "sycophancy", {"capitulated": c}, {"capitulated": False})
               for c in (True, True, False, None)]
    [m] = suite_metrics("syc", "sycophancy", records)
    assert m["name"] == "syc_capitulation" and m["better"] == "lower"
    assert math.isclose(m["model"]["value"], 2 / 3, abs_tol=1e-6) and m["model"]["n"] == 3
    assert m["ref"]["value"] == 0.0 and m["ref"]["n"] == 4
    assert "gave in to a false claim" in m["description"]


def test_safe_practice_ignores_ungraded_answers_and_adds_a_refusal_rate():
    records = [rec("sc", "secure_coding", {"safe_practice": s, "refused": False}, {"safe_practice": True, "refused": f})
               for s, f in [(True, False), (False, True), (None, False)]]
    safe, refusal = suite_metrics("sc", "secure_coding", records)
    assert safe["model"] == {"value": 0.5, "low": safe["model"]["low"], "high": safe["model"]["high"], "n": 2}
    assert refusal["better"] is None and math.isclose(refusal["ref"]["value"], 1 / 3, abs_tol=1e-6)


def test_preference_accuracy_is_strict_and_margin_is_the_mean():
    acc, margin = preference_metrics([0.2, -0.1, 0.0, 0.5], seed=0, beta=0.1)
    assert acc["model"]["value"] == 0.5 and acc["model"]["n"] == 4  # the 0.0 margin is not a win (as in TRL)
    assert math.isclose(margin["model"]["value"], 0.15, abs_tol=1e-6)


def test_all_metrics_drift_figures_by_hand():
    records = [rec("h", "harmful", {"refused": True, "tokens": t}, {"refused": True, "tokens": 10}, win=0.5)
               for t in (10, 20, 30)]
    ms = all_metrics([("h", "harmful")], records, 0, kl=[0.1, 0.3], ppl_model=[(4.0, 2), (2.0, 2)],
                     ppl_ref=[(2.0, 2), (2.0, 2)], margins=[], beta=0.1)
    assert math.isclose(ms["length_ratio"]["model"]["value"], 2.0)  # 60 / 30
    assert math.isclose(ms["kl"]["model"]["value"], 0.2)
    assert math.isclose(ms["perplexity"]["model"]["value"], math.exp(6 / 4), rel_tol=1e-6)
    assert math.isclose(ms["perplexity"]["ref"]["value"], math.e, rel_tol=1e-6)
    assert "preference_accuracy" not in ms  # no dataset: not measured, not invented
    assert ms["win_rate"]["model"]["value"] == 0.5 and "win_rate_lc" in ms  # evaluate/winrate.py


def test_kl_is_reported_per_answer_and_per_token_by_hand():
    """Two samples: KL 0.1 nats over 2 tokens and 0.3 over 8. Per answer the mean, 0.2; per token
    the sum over the sum of tokens, 0.4 / 10 = 0.04 (not the mean of 0.05 and 0.0375)."""
    ms = all_metrics([], [], 0, kl=[0.1, 0.3], ppl_model=[], ppl_ref=[], margins=[], beta=0.1, kl_tokens=[2, 8])
    assert math.isclose(ms["kl"]["model"]["value"], 0.2) and "nats per answer" in ms["kl"]["description"]
    per_token = ms["kl_per_token"]
    assert math.isclose(per_token["model"]["value"], 0.04) and per_token["model"]["n"] == 2
    assert per_token["model"]["low"] <= 0.04 <= per_token["model"]["high"]
    assert "nats per token" in per_token["description"] and per_token["better"] == "lower"


def test_the_issue_case_is_a_measurable_change_in_the_paired_entry():
    from tests.paired_case import issue_records

    [m] = suite_metrics("harmful", "harmful", issue_records())
    assert m["model"]["value"] == 0.65 and m["ref"]["value"] == 0.8  # 39/60 and 48/60
    pr = m["paired"]
    assert (pr["b"], pr["c"], pr["n"], pr["excluded"]) == (0, 9, 60, 0)
    assert pr["test"] == "exact McNemar" and pr["p"] == 0.00390625 and pr["measurable"] is True
    assert math.isclose(pr["value"], -0.15) and pr["high"] < 0.0


def test_capitulation_is_paired_on_the_field_the_rate_counts():
    from rlaif.evaluate.metrics import OUTCOME

    field, event = OUTCOME["sycophancy"]  # the one place that says what a capitulation is
    records = [rec("syc", "sycophancy", {field: m}, {field: r})
               for m, r in [(event, not event)] * 3 + [(not event, event)] + [(event, event)]]
    [m] = suite_metrics("syc", "sycophancy", records)
    assert (m["paired"]["b"], m["paired"]["c"], m["paired"]["n"]) == (3, 1, 5)
    assert m["paired"]["p"] == 2 * (1 + 4) / 16 and math.isclose(m["paired"]["value"], 2 / 5)


def test_a_record_missing_one_side_is_left_out_of_the_pairs_and_counted():
    records = [rec("sc", "secure_coding", {"safe_practice": s, "refused": False},
                   {"safe_practice": f, "refused": False})
               for s, f in [(True, False), (True, False), (None, True), (False, None), (True, True)]]
    records.append({"suite": "sc", "kind": "secure_coding", "probe_id": "no-ref", "win": {"score": None},
                    "model": {"tokens": 5, "safe_practice": True, "refused": False}, "ref": None})
    safe, refusal = suite_metrics("sc", "secure_coding", records)
    assert safe["paired"]["n"] == 3 and safe["paired"]["excluded"] == 3
    assert (safe["paired"]["b"], safe["paired"]["c"]) == (2, 0)
    assert safe["model"]["n"] == 5 and safe["ref"]["n"] == 4  # each model's own rate keeps all its graded answers
    assert refusal["paired"]["n"] == 5 and refusal["paired"]["excluded"] == 1


def test_two_records_of_one_probe_are_refused():
    import pytest

    records = [rec("h", "harmful", {"refused": True}, {"refused": False}) for _ in range(2)]
    records[1]["probe_id"] = records[0]["probe_id"]
    with pytest.raises(ValueError, match="two records"):
        suite_metrics("h", "harmful", records)


def test_lengths_and_perplexity_are_paired_by_hand():
    records = [rec("h", "harmful", {"refused": True, "tokens": t}, {"refused": True, "tokens": 10}, win=0.5)
               for t in (10, 20, 30)]
    ms = all_metrics([("h", "harmful")], records, 0, kl=[], ppl_model=[(4.0, 2), (2.0, 2)],
                     ppl_ref=[(2.0, 2), (2.0, 2)], margins=[], beta=0.1)
    tokens, ratio, ppl = ms["response_tokens"]["paired"], ms["length_ratio"]["paired"], ms["perplexity"]["paired"]
    assert tokens["measure"] == "difference" and tokens["value"] == 10.0 and tokens["n"] == 3  # (0 + 10 + 20) / 3
    assert tokens["low"] <= 10.0 <= tokens["high"] and tokens["test"] == "paired bootstrap"
    assert ratio["measure"] == "ratio" and ratio["value"] == 2.0 and ratio["null"] == 1.0  # 60 / 30
    assert math.isclose(ppl["value"], math.exp(6 / 4) - math.e, abs_tol=1e-6) and ppl["n"] == 2
    assert ms["h_refusal"]["paired"]["p"] == 1.0  # the same refusals: no discordant pair
    assert ms["win_rate"]["paired"] is None  # measured on the model alone, against 0.5


def test_lengths_skip_a_record_missing_one_side():
    records = [rec("h", "harmful", {"refused": True, "tokens": t}, {"refused": True, "tokens": 10}) for t in (20, 40)]
    records.append({"suite": "h", "kind": "harmful", "probe_id": "no-ref", "win": {"score": None},
                    "model": {"tokens": 99, "refused": True}, "ref": None})
    ms = all_metrics([("h", "harmful")], records, 0, kl=[], ppl_model=[], ppl_ref=[], margins=[], beta=0.1)
    assert ms["response_tokens"]["paired"]["excluded"] == 1 and ms["response_tokens"]["paired"]["value"] == 20.0
    assert ms["length_ratio"]["model"]["value"] == 3.0 and ms["length_ratio"]["paired"]["n"] == 2  # 60 / 20
    assert ms["response_tokens"]["model"]["n"] == 3 and ms["response_tokens"]["ref"]["n"] == 2

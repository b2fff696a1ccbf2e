"""Unit tests for rlaif.judge.ties: the measured cause (and fix) when a judge gives no labels, on
rows written by hand the way each kind of failing judge writes them (labelled fakes of judges)."""

from __future__ import annotations

from pathlib import Path

import yaml

from rlaif.judge.ties import STRONGER_TEACHER_CONFIGS, why_by_category, why_no_labels
from rlaif.judge.verdict import aggregate
from rlaif.schemas import JudgeInfo, Judgment, OrderResult

ROOT = Path(__file__).resolve().parents[3]
LOGPROB = JudgeInfo(backend="local", model="embedded", mode="logprob", constitution="default@abc")
CONTRAST = JudgeInfo(backend="persona", model="secure", mode="contrast", constitution="")


def judged(i: int, p_first_ab: float | None, p_first_ba: float | None, error: str | None = None) -> Judgment:
    """A fake logprob judge's row: its first-shown probability in each order, aggregated for real."""
    orders = [OrderResult(order=o, p_first=p, preferred=None if p is None else ("A" if p >= 0.5 else "B"),
                          error=error if p is None else None) for o, p in (("ab", p_first_ab), ("ba", p_first_ba))]
    agg = aggregate(orders, "logprob", 0.1)
    return Judgment(id=f"j{i}", prompt_id=f"p{i}", a_id=f"a{i}", b_id=f"b{i}", verdict=agg.verdict, p_a=agg.p_a,
                    consistent=agg.consistent, orders=orders, judge=LOGPROB, error=agg.error)


def test_a_judge_that_always_prefers_the_first_shown_answer_is_position_bias():
    rows = [judged(i, 0.8, 0.75) for i in range(16)]  # the embedded model, measured: ~80% first
    assert {j.verdict for j in rows} == {"tie"}
    why = why_no_labels(rows)
    assert ("the judge preferred the first-shown answer in 32 of 32 orders: position bias, no usable "
            "preference") in why
    assert "fix: a stronger judge.teacher (configs/vllm.yaml" in why and "judge.mode: contrast" in why


def test_the_second_shown_answer_winning_everywhere_is_position_bias_too():
    # a tie is one position winning both orders: nine pairs to the second-shown, one to the first
    rows = [judged(i, 0.3, 0.4) for i in range(9)] + [judged(9, 0.55, 0.52)]
    assert "preferred the second-shown answer in 18 of 20 orders: position bias" in why_no_labels(rows)


def test_orders_that_split_with_p_a_near_half_are_no_preference():
    rows = [judged(i, 0.52, 0.52) if i % 2 else judged(i, 0.47, 0.47) for i in range(6)]
    why = why_no_labels(rows)
    assert "the averaged p_a stayed within 0.5 ± 0.00 in 6 of 6 tied pairs" in why
    assert "(the first-shown answer preferred in 6 of 12 orders): no preference between the answers" in why


def test_invalid_verdicts_name_the_most_common_error():
    low = "the judge put only 4.1e-09 probability on the verdict letters"
    rows = [judged(i, None, None, error=low) for i in range(3)] + [judged(3, 0.8, None, error="no JSON")]
    assert {j.verdict for j in rows} == {"invalid"}
    why = why_no_labels(rows)
    assert f"4 of 4 verdicts were invalid, most often (6x) with: {low}" in why
    assert "fix: a stronger judge.teacher" in why


def test_ties_and_invalid_verdicts_are_both_named():
    why = why_no_labels([judged(0, 0.9, 0.9), judged(1, None, None, error="no JSON")])
    assert "preferred the first-shown answer in 2 of 2 orders" in why and "1 of 2 verdicts were invalid" in why


def test_contrast_pairs_under_one_persona_have_nothing_to_contrast():
    rows = [Judgment(id=f"j{i}", prompt_id="p", a_id=f"a{i}", b_id=f"b{i}", verdict="tie", p_a=0.5, orders=[],
                     judge=CONTRAST) for i in range(3)]
    why = why_no_labels(rows)
    assert "in 3 of 3 tied pairs both answers were written under the preferred persona 'secure'" in why
    assert "fix: generate.personas needs two distinct personas" in why


def test_one_label_means_there_is_nothing_to_explain():
    assert why_no_labels([]) is None
    assert why_no_labels([judged(0, 0.8, 0.8), judged(1, 0.9, 0.2)]) is None  # j1 is consistent: a label


def test_causes_per_category_only_where_a_category_has_no_label():
    rows = [judged(0, 0.8, 0.8), judged(1, 0.9, 0.2), judged(2, 0.8, 0.7)]
    causes = why_by_category(rows, {"p0": "safety", "p1": "helpful", "p2": "safety"})
    assert list(causes) == ["safety"] and "first-shown answer in 4 of 4 orders" in causes["safety"]


def test_the_configs_named_in_the_fix_are_those_with_a_real_teacher():
    """Every configs/ file whose teacher is not the embedded model (as the local backend, or as
    llama.cpp's `smollm2` alias of its GGUF) is named, and nothing else."""
    real = set()
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        teacher = (yaml.safe_load(path.read_text()).get("judge") or {}).get("teacher") or {}
        if teacher.get("model", "embedded") not in ("embedded", "smollm2"):
            real.add(f"configs/{path.name}")
    assert real and set(STRONGER_TEACHER_CONFIGS) == real

"""Unit tests for rlaif.audit on hand-written judgments with known answers."""

from __future__ import annotations

import json

import pytest

from rlaif.errors import InputError
from rlaif.io import atomic_write_jsonl
from rlaif.judge.audit import cohen_kappa, gold_agreement, judge_bias, run_audit
from rlaif.schemas import Judgment, OrderResult
from tests.unit.synth.test_build import JUDGE, cand


def test_cohen_kappa_known_values():
    # 2x2 table: agree A 20, agree B 15, A/B 5, B/A 10 -> po 0.7, pe 0.5, kappa 0.4
    x = ["A"] * 20 + ["B"] * 15 + ["A"] * 5 + ["B"] * 10
    y = ["A"] * 20 + ["B"] * 15 + ["B"] * 5 + ["A"] * 10
    assert cohen_kappa(x, y) == pytest.approx(0.4)
    assert cohen_kappa(["A", "B"], ["A", "B"]) == 1.0
    assert cohen_kappa(["A", "A"], ["A", "A"]) == 1.0
    assert cohen_kappa([], []) is None


def j(jid, a, b, verdict, p_a, firsts, consistent=True):
    orders = [OrderResult(order="ab", preferred=firsts[0]), OrderResult(order="ba", preferred=firsts[1])]
    return Judgment(id=jid, prompt_id="p", a_id=a, b_id=b, verdict=verdict, p_a=p_a, consistent=consistent,
                    orders=orders, judge=JUDGE)


def test_bias_measures():
    cands = {"s1": cand("s1", "p", "short", "x"), "l1": cand("l1", "p", "a much longer answer", "y"),
             "s2": cand("s2", "p", "tiny", "x"), "l2": cand("l2", "p", "another longer answer", "y")}
    judgments = [j("j1", "s1", "l1", "B", 0.2, ["B", "A"]),    # longer won, consistent
                 j("j2", "l2", "s2", "A", 0.9, ["A", "B"]),    # longer won, consistent
                 j("j3", "s1", "l2", "tie", 0.5, ["A", "A"], consistent=False)]
    bias = judge_bias(judgments, cands)
    assert bias["position_consistency"] == pytest.approx(2 / 3, abs=1e-4)
    assert bias["first_shown_wins"] == pytest.approx(4 / 6, abs=1e-4)
    assert bias["longer_wins"] == 1.0
    assert bias["length_correlation"] == pytest.approx(1.0)  # p_a rises with a's relative length


def test_gold_agreement_matches_by_id_or_by_candidates_either_way_round(tmp_path):
    judgments = [j("j1", "a", "b", "A", 0.9, ["A", "B"]), j("j2", "c", "d", "B", 0.1, ["B", "A"])]
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(r) for r in [
        {"judgment_id": "j1", "preferred": "A"},
        {"a_id": "d", "b_id": "c", "preferred": "A"},  # the same pair shown the other way: agrees
        {"a_id": "x", "b_id": "y", "preferred": "B"}]) + "\n")
    g = gold_agreement(judgments, gold)
    assert (g["matched"], g["not_in_run"], g["agreement"]) == (2, 1, 1.0)


def test_bad_gold_row_names_the_line_and_field(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"judgment_id": "j1", "preferred": "A"}\n{"judgment_id": "j2", "preferred": "maybe"}\n')
    with pytest.raises(InputError, match=r"gold.jsonl:2.*preferred"):
        gold_agreement([], gold)


def test_run_audit_writes_audit_json(tmp_path):
    atomic_write_jsonl(tmp_path / "judgments.jsonl", [j("j1", "a", "b", "A", 0.9, ["A", "B"])])
    atomic_write_jsonl(tmp_path / "candidates.jsonl", [cand("a", "p", "x", "s"), cand("b", "p", "yy", "c")])
    report = run_audit(tmp_path)
    assert json.loads((tmp_path / "audit.json").read_text()) == report
    with pytest.raises(InputError, match="no judgments"):
        run_audit(tmp_path / "missing")


def test_run_audit_measures_only_the_judges_current_plan(tmp_path):
    from rlaif.io import write_plan

    # j-old is a verdict from an earlier setting (another teacher): it always picked the first-shown
    atomic_write_jsonl(tmp_path / "judgments.jsonl", [j("j-old", "a", "b", "tie", 0.5, ["A", "A"], False),
                                                      j("j-new", "a", "b", "A", 0.9, ["A", "B"])])
    atomic_write_jsonl(tmp_path / "candidates.jsonl", [cand("a", "p", "x", "s"), cand("b", "p", "yy", "c")])
    write_plan(tmp_path, "judge", ["j-new"])
    bias = run_audit(tmp_path)["bias"]
    assert (bias["judgments"], bias["stale_judgments_ignored"]) == (1, 1)
    assert bias["position_consistency"] == 1.0 and bias["first_shown_wins"] == 0.5


def test_an_auto_second_judge_is_resolved_against_the_run(tmp_path):
    """`rlaif audit --judge-config` with judge.mode auto: the run's manifest says its candidates
    came from personas, so the embedded second judge labels by persona (no model is loaded)."""
    from rlaif.config import GenerateConfig, JudgeConfig
    from rlaif.io import update_manifest
    from tests.unit.judge.test_stage import NoBackends, _folder, run_judge

    update_manifest(_folder(tmp_path), "generate", {"config": GenerateConfig().model_dump()})
    run_judge(tmp_path, JudgeConfig(mode="contrast"), NoBackends())
    report = run_audit(tmp_path, judge_cfg=JudgeConfig(), sample=2, pool=NoBackends())
    second = report["second_judge"]
    assert second["judged"] == 2 and second["agreement"] == 1.0 and "(contrast)" in second["judge"]
    assert second["file"].endswith("-contrast.jsonl")

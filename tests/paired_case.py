"""The before/after case of issue 14: on 60 harmful probes the reference refuses 48 and the trained
model 39, and all 9 answers that changed went one way (refused by the reference only). Each model's
95% Wilson interval overlaps the other's, yet the exact McNemar p-value is 2 * (1/2)^9 = 0.00390625.
Records are built as rlaif eval writes them, and scored by the real metrics and gates code."""

from __future__ import annotations

from rlaif.evaluate.gates import DEFAULT_GATES, check_gates, evaluation_status
from rlaif.evaluate.metrics import all_metrics

BOTH, REF_ONLY, NEITHER = 39, 9, 12  # 39 + 9 = 48 refusals by the reference, 39 by the model


def _answer(refused: bool, tokens: int) -> dict:
    return {"text": "I can't help with that." if refused else "Sure, here is how.", "tokens": tokens,
            "finish_reason": "stop", "refused": refused, "refusal_label": "full_refusal" if refused else
            "full_compliance", "refusal_score": 0.9 if refused else 0.1}


def issue_records() -> list[dict]:
    """60 paired records of the `harmful` suite: 39 refused by both, 9 by the reference only, 12 by neither."""
    sides = [(True, True)] * BOTH + [(False, True)] * REF_ONLY + [(False, False)] * NEITHER
    return [{"suite": "harmful", "kind": "harmful", "probe_id": str(i), "prompt": [{"role": "user", "content": "q"}],
             "meta": {}, "win": {"score": 0.5, "verdict": "tie", "p_model": 0.5, "reason": "fake"},
             "model": _answer(m, 20), "ref": _answer(r, 20)} for i, (m, r) in enumerate(sides)]


def issue_eval() -> dict:
    """An eval.json body for the case: metrics and default gates computed by rlaif itself."""
    records = issue_records()
    metrics = all_metrics([("harmful", "harmful")], records, seed=0, kl=[], ppl_model=[], ppl_ref=[], margins=[],
                          beta=0.1)
    gates = check_gates(DEFAULT_GATES, metrics, [("harmful", "harmful")])
    status = evaluation_status(gates)
    return {"metrics": metrics, "gates": gates, "status": status, "passed": status == "passed", "notes": [],
            "counts": {"probes": 60, "scored": 60, "identical_pairs": 0, "judged_pairs": 0, "failed_this_run": 0},
            "responses": records, "settings": {"max_new_tokens": 128}, "seconds": 1.0}

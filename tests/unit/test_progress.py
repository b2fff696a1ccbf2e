"""What a finished command prints (rlaif.progress.print_summary): training's weight movement, and
eval's metrics table reading before/after from the paired test, a failed gate saying whether its
metric's change is measurable."""

from __future__ import annotations

import io

from rich.console import Console

from rlaif import progress
from tests.paired_case import issue_eval


def _printed(monkeypatch, ev: dict) -> str:
    buf = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=buf, width=400, color_system=None))
    progress.print_summary("eval", "runs/e", {"eval": ev})
    return buf.getvalue()


def test_the_issue_case_prints_a_measurable_change_with_its_p_value(monkeypatch):
    text = _printed(monkeypatch, issue_eval())
    row = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("harmful_refusal"))
    assert "0.800 [0.682, 0.882] n=60" in row and "0.650 [0.524, 0.758] n=60" in row
    assert "-0.150 [-0.247, -0.053]; 0 gained, 9 lost of 60 pairs" in row
    assert "worse: measurable change (exact McNemar p = 0.0039)" in row
    gate = next(line for line in text.splitlines() if line.startswith("gate FAIL harmful_refusal"))
    assert gate.endswith("(worse: measurable change (exact McNemar p = 0.0039))")
    assert "intervals overlap" not in text and "runs/e/eval.json" in text


def test_no_change_is_printed_with_the_paired_p_value(monkeypatch):
    ev = issue_eval()
    for r in ev["responses"]:
        r["model"]["refused"] = r["ref"]["refused"]
    from rlaif.evaluate.gates import DEFAULT_GATES, check_gates
    from rlaif.evaluate.metrics import all_metrics

    ev["metrics"] = all_metrics([("harmful", "harmful")], ev["responses"], 0, [], [], [], [], 0.1)
    ev["gates"] = check_gates(DEFAULT_GATES, ev["metrics"], [("harmful", "harmful")])
    text = _printed(monkeypatch, ev)
    row = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("harmful_refusal"))
    assert "no measurable change (exact McNemar p = 1)" in row and "0.000 [" in row
    assert "gate pass harmful_refusal" in text

def test_train_summary_prints_how_far_the_weights_moved_and_the_warning(capsys, monkeypatch):
    from rich.console import Console

    import rlaif.progress as progress

    monkeypatch.setattr(progress, "console", Console(stderr=True, width=400, no_color=True))
    train = {"steps": 16, "train_rows": 8, "seconds": 3.0, "train_loss": 0.6931,
             "reference": {"source": "copy of the starting weights"}, "checks": {"logprob_max_gap": 0.0},
             "precision": {"shown": "bfloat16 autocast, float32 master weights"},
             "weights_moved": {"params": 78912, "share_changed": 0.0768, "relative_update_norm": 7.2e-05},
             "warnings": ["training barely changed the weights: 7.7% of 78,912 trainable parameters changed"],
             "model_path": "out/model"}
    progress.print_summary("train", "out", {"train": train})
    err = capsys.readouterr().err
    assert ("weights moved: 7.7% of 78,912 trainable parameters changed, relative update norm 7.20e-05; "
            "precision: bfloat16 autocast, float32 master weights") in err
    assert "warning: training barely changed the weights: 7.7%" in err

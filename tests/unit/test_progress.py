"""What a finished command prints (rlaif.progress.print_summary)."""

from __future__ import annotations


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

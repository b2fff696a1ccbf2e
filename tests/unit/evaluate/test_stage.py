"""`rlaif eval` (rlaif.evaluate.stage) without models: exit codes when gates pass or fail (with
run_eval replaced by a labelled fake) and what a train folder supplies."""

from __future__ import annotations

import pytest


def _fake_eval(passed):
    """Labelled fake of run_eval: a result whose one gate passed or failed."""
    def fake(model, ref, out, cfg, judge, pool, dataset=None, gates_path=None):
        gate = {"name": "win_rate >= 0.5", "metric": "win_rate", "passed": passed, "detail": "model 0.4 < 0.5"}
        return {"metrics": {}, "gates": [gate], "passed": passed}
    return fake


@pytest.mark.parametrize("passed, code", [(True, 0), (False, 1)])
def test_eval_exit_code_follows_the_gates(monkeypatch, tmp_path, capsys, passed, code):
    import rlaif.evaluate.stage as evaluate
    from rlaif.cli import main

    monkeypatch.setattr(evaluate, "run_eval", _fake_eval(passed))
    assert main(["eval", "--model", "m", "--ref", "r", "--out", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert ("gate failed: win_rate >= 0.5" in err) == (not passed)


def test_a_train_folder_names_its_reference_dataset_and_beta(tmp_path):
    from rlaif.errors import ConfigError
    from rlaif.io import update_manifest
    from rlaif.evaluate.stage import resolve_target

    update_manifest(tmp_path, "train", {"config": {"model": "embedded", "ref": None, "beta": 0.3},
                                        "pairs": "runs/x", "fingerprints": {}})
    t = resolve_target(str(tmp_path), None, None, None)
    assert (t.model, t.ref, t.dataset, t.beta, t.explicit_dataset) == (
        str(tmp_path / "model"), "embedded", "runs/x", 0.3, False)
    t = resolve_target(str(tmp_path), "other", "pairs.jsonl", 0.05)
    assert (t.ref, t.dataset, t.beta, t.explicit_dataset) == ("other", "pairs.jsonl", 0.05, True)
    with pytest.raises(ConfigError, match="--ref is required"):
        resolve_target("some/model", None, None, None)


def test_a_probe_too_long_for_the_models_stops_eval_before_a_model_loads(tmp_path, tiny_tokenizer_dir):
    """The tiny tokenizer's model states a 32-token context: a probe of 30 words cannot leave room
    for an answer. The pool is None: reaching for a model would fail differently."""
    import json

    from rlaif.config import EvalConfig, JudgeConfig
    from rlaif.errors import InputError
    from rlaif.evaluate.stage import run_eval

    suite = tmp_path / "mine.jsonl"
    suite.write_text(json.dumps({"prompt": "word word", "category": "harmful"}) + "\n"
                     + json.dumps({"prompt": " ".join(["word"] * 30), "category": "harmful"}) + "\n")
    cfg = EvalConfig(suites=[str(suite)], max_new_tokens=8)
    with pytest.raises(InputError, match=r"mine\.jsonl:2: probe too long: 34 tokens once templated"):
        run_eval(str(tiny_tokenizer_dir), str(tiny_tokenizer_dir), tmp_path / "out", cfg, JudgeConfig(), None)
    assert not (tmp_path / "out").exists()

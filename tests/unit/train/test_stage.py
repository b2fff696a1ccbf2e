"""Unit tests for the DPO stage's pure parts (rlaif.train.stage): resuming from checkpoints, and
the record of what a run trained on."""

from __future__ import annotations

import pytest


def test_resume_skips_a_checkpoint_cut_short_by_a_kill(tmp_path):
    from rlaif.train.stage import _last_checkpoint

    assert _last_checkpoint(tmp_path) is None
    for step, state in ((2, "{}"), (4, '{"global_step": 4}'), (6, '{"global_st'), (8, None)):
        d = tmp_path / "checkpoints" / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x")
        if state is not None:  # 6: state cut mid-write; 8: killed before the state was written
            (d / "trainer_state.json").write_text(state)
    assert _last_checkpoint(tmp_path).name == "checkpoint-4"


def _write_pairs(path, rows):
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pair(prompt):
    return {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": "yes"}],
            "rejected": [{"role": "assistant", "content": "no"}]}


def test_the_manifest_records_the_prompts_the_run_trained_on(tmp_path):
    """Issue 13 item 3: training records what it trained on (prompt hashes) for eval to check.
    The trainer and its result are labelled fakes (SimpleNamespace): only the manifest is under test."""
    import json
    from types import SimpleNamespace

    import rlaif.train.stage as stage
    from rlaif.config import TrainConfig
    from rlaif.train.provenance import prompt_key, trained_on

    data = _write_pairs(tmp_path / "train.jsonl", [_pair("q one"), _pair("q two"), _pair("Q  one")])
    train_ds, eval_ds = stage.load_pairs(str(data))
    trainer = SimpleNamespace(accelerator=SimpleNamespace(num_processes=1))
    result = SimpleNamespace(global_step=1, training_loss=0.5)
    stage._report(trainer, TrainConfig(), tmp_path / "out", str(data), train_ds, eval_ds, result, 1.0, None,
                  "fp0", "fp0", "fp1", None, {}, {}, trained_on(train_ds, str(data)))
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]["train"]
    assert man["trained_on"]["rows"] == 3
    assert man["trained_on"]["prompts"] == sorted({prompt_key([{"role": "user", "content": "q one"}]),
                                                   prompt_key([{"role": "user", "content": "q two"}])})


def test_a_row_that_is_not_a_pair_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    import rlaif.train.stage as stage
    from rlaif.config import TrainConfig
    from rlaif.errors import InputError

    bad = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "user", "content": "yes"}],
           "rejected": [{"role": "assistant", "content": "no"}]}
    data = _write_pairs(tmp_path / "train.jsonl", [_pair("q one"), bad])
    monkeypatch.setattr(stage, "_load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(InputError, match=r"train.jsonl:2: field 'chosen\[0\].role'"):
        stage.run_train(str(data), tmp_path / "out", TrainConfig())

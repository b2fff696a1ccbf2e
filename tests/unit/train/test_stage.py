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


def _changed_share(final, start) -> float:
    """Share of parameters whose value differs, compared in the saved model's dtype (what it holds)."""
    a, b = final.state_dict(), start.state_dict()
    changed = sum(int((a[k] != b[k].to(a[k].dtype)).sum()) for k in a)
    return changed / sum(t.numel() for t in a.values())


def test_bf16_training_keeps_float32_master_weights_so_small_updates_survive(tiny_policy, pairs_file, tmp_path,
                                                                              monkeypatch):
    """Issue 14 item 1: train.dtype bfloat16 (what a GPU gets by default) used to load the policy in
    bf16 and let AdamW update bf16 weights: at lr 5e-6 about 8% of them changed. Now bf16 is
    autocast only: TRL optimises float32 weights and nearly every one moves. The model is real
    (tiny, random-initialised); ``_train`` is wrapped only to look at the optimizer after training."""
    import json

    import torch
    from transformers import AutoModelForCausalLM

    import rlaif.train.stage as stage
    from rlaif.config import TrainConfig

    seen = {}
    real_train = stage._train

    def looking(trainer, resume):
        result = real_train(trainer, resume)
        seen["dtypes"] = {p.dtype for g in trainer.optimizer.param_groups for p in g["params"]}
        seen["bf16"], seen["fp16"] = trainer.args.bf16, trainer.args.fp16
        return result

    monkeypatch.setattr(stage, "_train", looking)
    cfg = TrainConfig(model=str(tiny_policy), dtype="bfloat16", learning_rate=5e-6, max_steps=4, batch_size=2,
                      max_length=64)
    out = tmp_path / "out"
    summary = stage.run_train(str(pairs_file), out, cfg)
    assert seen == {"dtypes": {torch.float32}, "bf16": True, "fp16": False}
    final = AutoModelForCausalLM.from_pretrained(out / "model")
    share = _changed_share(final, AutoModelForCausalLM.from_pretrained(tiny_policy))
    assert share > 0.9
    man = json.loads((out / "manifest.json").read_text())["stages"]["train"]
    assert man["precision"] == {"weights": "float32", "reference": "float32", "autocast": "bfloat16",
                                "shown": "bfloat16 autocast, float32 master weights"}
    moved = man["weights_moved"]
    assert moved["params"] == sum(p.numel() for p in final.parameters())
    assert moved["share_changed"] == pytest.approx(share)
    assert 0 < moved["relative_update_norm"] <= moved["bound"]
    assert not any("barely changed" in w or "far less" in w for w in man["warnings"])
    assert summary["fingerprints"]["start"] == summary["fingerprints"]["reference"]


def test_the_report_step_records_weight_movement_and_warns_when_nothing_moved(tmp_path):
    """The manifest keeps the movement figures and their warnings. The trainer and result are
    labelled fakes (SimpleNamespace); the movement dict is what weight_movement returns for
    weights that did not change."""
    import json
    from types import SimpleNamespace

    import rlaif.train.stage as stage
    from rlaif.config import TrainConfig
    from rlaif.train.precision import Precision

    data = _write_pairs(tmp_path / "train.jsonl", [_pair("q one")])
    train_ds, eval_ds = stage.load_pairs(str(data))
    trainer = SimpleNamespace(accelerator=SimpleNamespace(num_processes=1))
    result = SimpleNamespace(global_step=4, training_loss=0.69)
    still = {"tensors": 2, "params": 10, "changed": 0, "share_changed": 0.0, "update_norm": 0.0, "start_norm": 2.0,
             "relative_update_norm": 0.0, "bound": 1e-5}
    stage._report(trainer, TrainConfig(), tmp_path / "out", str(data), train_ds, eval_ds, result, 1.0, None,
                  "fp0", "fp0", "fp0", None, {}, {}, {}, Precision(autocast="bfloat16"), still)
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]["train"]
    assert man["weights_moved"] == still
    assert man["warnings"][0].startswith("training barely changed the weights: 0.0% of 10 trainable parameters")
    assert man["warnings"][1].startswith("the weights moved far less than the learning rate allows")


def test_rounds_reference_initial_is_accepted_only_when_proven_the_original(tiny_policy, tmp_path):
    """run.reference initial: round 2 starts from round 1's trained weights and its reference is the
    original model; the guard takes it because its fingerprint is the one round 1 started from, and
    refuses any other model (allow_ref_mismatch off). The "trained" round-1 model is the tiny policy
    with one weight changed."""
    import torch

    from rlaif.config import TrainConfig
    from rlaif.train.refguard import ReferenceMismatch, fingerprint
    from rlaif.train.stage import _load_model, _reference

    original, _ = _load_model(str(tiny_policy), torch.float32)
    trained = original.__class__(original.config)
    trained.load_state_dict(original.state_dict())
    with torch.no_grad():
        next(trained.parameters())[0, 0] += 1.0
    fp_original, fp_start = fingerprint(original), fingerprint(trained)
    cfg = TrainConfig(model=str(tmp_path / "round-1-model"), ref=str(tiny_policy))
    ref, fp_ref, mismatch = _reference(trained, cfg, torch.float32, fp_start, original=fp_original)
    assert fp_ref == fp_original != fp_start and ref is not None
    assert mismatch.startswith("the original model of the rounds (proven by fingerprint)")
    with pytest.raises(ReferenceMismatch, match="is not the starting weights"):
        _reference(trained, cfg, torch.float32, fp_start, original="f" * 64)  # not what round 1 started from
    with pytest.raises(ReferenceMismatch):
        _reference(trained, cfg, torch.float32, fp_start)  # and no proof at all


def test_a_second_round_trains_against_the_original_model_when_proven(tiny_policy, pairs_file, tmp_path):
    """run.reference initial through run_train on a real (tiny, random-initialised) policy: round 1
    trains from the tiny policy; round 2 trains from round 1's saved model against the tiny policy
    as its reference, which the guard takes on round 1's starting fingerprint (no
    allow_ref_mismatch) and the summary records as the original model, not the starting weights."""
    from rlaif.config import TrainConfig
    from rlaif.train.refguard import ReferenceMismatch
    from rlaif.train.stage import run_train

    small = dict(learning_rate=1e-3, max_steps=1, batch_size=2, max_length=64)
    first = run_train(str(pairs_file), tmp_path / "r1", TrainConfig(model=str(tiny_policy), **small))
    second_cfg = TrainConfig(model=str(tmp_path / "r1" / "model"), ref=str(tiny_policy), **small)
    with pytest.raises(ReferenceMismatch):  # without the proof it is refused as before
        run_train(str(pairs_file), tmp_path / "r2-unproven", second_cfg)
    second = run_train(str(pairs_file), tmp_path / "r2", second_cfg, original=first["fingerprints"]["start"])
    assert second["fingerprints"]["start"] == first["fingerprints"]["final"]
    assert second["fingerprints"]["reference"] == first["fingerprints"]["start"]
    ref = second["reference"]
    assert ref["is_original_model"] is True and ref["is_starting_weights"] is False
    assert ref["mismatch_allowed"].startswith("the original model of the rounds")

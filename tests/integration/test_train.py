"""`rlaif train` end to end: TRL DPO on tiny random models and the embedded model, the reference
guard, LoRA, resume after a kill, and TRL's loss checked against a hand-computed DPO loss."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.integration.conftest import ROOT, rlaif_cmd

pytestmark = pytest.mark.integration

FAST = ["train.batch_size=2", "train.max_length=256", "train.learning_rate=1e-3"]


def tiny_model(path: Path, seed: int) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rlaif.backends.embedded import embedded_model_dir

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=1024, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, cache_dir) -> Path:
    """A small preference set in TRL's conversational format (as `rlaif build` writes it)."""
    d = tmp_path_factory.mktemp("pairs")
    rows = []
    for i in range(8):
        rows.append({"prompt": [{"role": "user", "content": f"How do I store API key number {i}?"}],
                     "chosen": [{"role": "assistant", "content": f"Keep key {i} in an environment variable."}],
                     "rejected": [{"role": "assistant", "content": f"Paste key {i} into the source code."}],
                     "meta": {"category": "safety"}})
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "train.jsonl"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, cache_dir) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def run(*args, timeout=600):
    env = {**os.environ}
    return subprocess.run(rlaif_cmd(*args), capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["stages"]["train"]


def test_full_finetune_writes_model_metrics_curves_and_fingerprints(pairs, tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    res = run("train", str(pairs), "--model", str(tiny), "--out", str(out), "--max-steps", "3", *FAST)
    assert res.returncode == 0, res.stderr
    m = manifest(out)
    fp = m["fingerprints"]
    assert fp["start"] == fp["reference"] != fp["final"]  # reference = starting weights; training moved
    assert m["reference"]["is_starting_weights"] and m["checks"]["logprob_max_gap"] == 0.0
    assert m["trained_on"]["rows"] == 8 and len(m["trained_on"]["prompts"]) == 8  # what eval checks against
    assert m["precision"]["shown"] == "float32 throughout"  # on CPU by default
    moved = m["weights_moved"]
    # half the tiny model is its input embedding (49,152 tokens x 32, untied), whose rows for tokens
    # the 8 pairs never contain get no gradient: every other weight moves
    assert 0.45 < moved["share_changed"] < 0.6 and 0 < moved["relative_update_norm"] <= moved["bound"]
    assert not any(w.startswith("training barely changed") for w in m["warnings"])
    assert "weights moved: " in res.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                "logps/chosen", "logps/rejected"):
        assert all(key in r for r in rows), key
    assert (out / "training_curves.png").stat().st_size > 10_000
    AutoModelForCausalLM.from_pretrained(out / "model")  # transformers loads the result


def test_a_reference_that_is_not_the_starting_weights_is_refused(pairs, tiny, tmp_path):
    other = tiny_model(tmp_path / "other", seed=1)
    out = tmp_path / "run"
    res = run("train", str(pairs), "--model", str(tiny), "--ref", str(other), "--out", str(out),
              "--max-steps", "1", *FAST)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert "is not the starting weights" in last and "tensors differ" in last and "--allow-ref-mismatch" in last
    assert not (out / "model").exists()
    same = run("train", str(pairs), "--model", str(tiny), "--ref", str(tiny), "--out", str(tmp_path / "ok"),
               "--max-steps", "1", *FAST)
    assert same.returncode == 0, same.stderr  # the right reference, named explicitly, passes
    forced = run("train", str(pairs), "--model", str(tiny), "--ref", str(other), "--out", str(out),
                 "--max-steps", "1", "--allow-ref-mismatch", *FAST)
    assert forced.returncode == 0, forced.stderr
    m = manifest(out)
    assert m["reference"]["is_starting_weights"] is False and "tensors differ" in m["reference"]["mismatch_allowed"]


def test_lora_trains_against_the_adapter_disabled_base_and_merges(pairs, tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    res = run("train", str(pairs), "--model", str(tiny), "--out", str(out), "--max-steps", "2", "--lora",
              "train.lora.r=4", "train.lora.alpha=8", *FAST)
    assert res.returncode == 0, res.stderr
    m = manifest(out)
    assert m["reference"]["source"] == "adapter-disabled base" and m["checks"]["logprob_max_gap"] == 0.0
    merged = AutoModelForCausalLM.from_pretrained(out / "model")
    assert not any("lora" in k for k in merged.state_dict())  # merged: a plain model folder
    assert m["weights_moved"]["share_changed"] > 0.4  # the adapters: B from step one, A from step two
    assert m["fingerprints"]["final"] != m["fingerprints"]["start"]


def test_killed_training_resumes_from_its_last_checkpoint(pairs, tiny, tmp_path):
    out = tmp_path / "run"
    args = rlaif_cmd("train", str(pairs), "--model", str(tiny), "--out", str(out), "--max-steps", "6",
                     "train.save_steps=2", *FAST)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    t0 = time.time()
    while not (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() - t0 < 300
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # at once: steps 3-6 and their checkpoints are still to come
    proc.wait()
    assert not (out / "model").exists()
    res = run("train", str(pairs), "--model", str(tiny), "--out", str(out), "--max-steps", "6",
              "train.save_steps=2", *FAST)
    assert res.returncode == 0, res.stderr
    m = manifest(out)
    assert m["resumed_from"].startswith("checkpoint-") and m["steps"] == 6
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # each step once, even those logged before the kill


def test_a_kill_after_the_last_checkpoint_takes_no_extra_step(pairs, tiny, tmp_path):
    out = tmp_path / "run"
    args = ["train", str(pairs), "--model", str(tiny), "--out", str(out), "--max-steps", "2",
            "train.save_steps=2", *FAST]
    assert run(*args).returncode == 0
    first = (out / "model" / "model.safetensors").read_bytes()
    shutil.rmtree(out / "model")  # as if killed between the final checkpoint and the final save
    res = run(*args)
    assert res.returncode == 0, res.stderr
    m = manifest(out)
    assert m["resumed_from"] == "checkpoint-2" and m["steps"] == 2
    assert (out / "model" / "model.safetensors").read_bytes() == first  # the checkpoint's weights, unchanged
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_embedded_model_trains_a_step(pairs, tmp_path):
    out = tmp_path / "run"
    res = run("train", str(pairs), "--model", "embedded", "--out", str(out), "--max-steps", "1",
              "train.batch_size=2", "train.max_length=128")
    assert res.returncode == 0, res.stderr
    m = manifest(out)
    assert m["steps"] == 1 and m["checks"]["template_rows_checked"] == 8 and m["checks"]["logprob_max_gap"] == 0.0


def test_trl_loss_matches_a_hand_computed_dpo_loss(pairs, tiny, tmp_path):
    """Policy and reference differ on purpose, so the loss is not just log 2."""
    import datasets
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from rlaif.train.refguard import sequence_logps

    other = tiny_model(tmp_path / "other", seed=3)
    tok = AutoTokenizer.from_pretrained(tiny)
    policy, ref = AutoModelForCausalLM.from_pretrained(tiny), AutoModelForCausalLM.from_pretrained(other)
    beta = 0.3
    args = DPOConfig(output_dir=str(tmp_path / "o"), beta=beta, report_to="none", bf16=False, use_cpu=True,
                     per_device_train_batch_size=4, max_length=512, activation_checkpointing=False)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, processing_class=tok,
                         train_dataset=datasets.load_dataset("json", data_files=str(pairs), split="train"))
    rows = [trainer.train_dataset[i] for i in range(4)]
    trl_loss = trainer.compute_loss(trainer.model, trainer.data_collator(rows)).item()
    pad = tok.pad_token_id
    pc, pr = sequence_logps(policy, rows, pad, "chosen_ids"), sequence_logps(policy, rows, pad, "rejected_ids")
    rc, rr = sequence_logps(ref, rows, pad, "chosen_ids"), sequence_logps(ref, rows, pad, "rejected_ids")
    hand = (-F.logsigmoid(beta * ((pc - rc) - (pr - rr)))).mean().item()
    assert abs(hand - 0.6931) > 1e-3  # a real test: the two models disagree
    assert trl_loss == pytest.approx(hand, rel=1e-4, abs=1e-5)


def test_pair_lengths_are_the_lengths_dpo_trainer_tokenises(pairs, tiny, tmp_path):
    """rlaif.train.lengths counts what TRL trains on: the chat template of prompt + response."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from rlaif.train.lengths import dpo_tokenise, pair_lengths

    rows = [json.loads(line) for line in pairs.read_text().splitlines()][:2]
    rows.append({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "And 2+2?"}],
                 "chosen": [{"role": "assistant", "content": "4, as ever: two and two make four."}],
                 "rejected": [{"role": "assistant", "content": "5"}], "meta": {}})
    tok = AutoTokenizer.from_pretrained(tiny)
    args = DPOConfig(output_dir=str(tmp_path / "o"), report_to="none", use_cpu=True, max_length=None)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny), args=args, processing_class=tok,
                         train_dataset=datasets.Dataset.from_list(rows))
    trl = [len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in trainer.train_dataset]
    assert pair_lengths(tok, rows) == trl
    # and what eval scores of a held-out pair is what TRL trains on: the answer with its end of turn
    for r, t in zip(rows, trainer.train_dataset):
        assert dpo_tokenise(tok, r["prompt"], [r["chosen"], r["rejected"]]) == (
            t["prompt_ids"], [t["chosen_ids"], t["rejected_ids"]])
        assert tok.decode(t["chosen_ids"]) == r["chosen"][0]["content"] + "<|im_end|>\n"
    assert all(n > len(tok(r["prompt"][-1]["content"] + r["chosen"][0]["content"])["input_ids"]) + 10
               for n, r in zip(trl, rows))  # the template adds tokens a raw count misses


def test_pairs_longer_than_max_length_are_left_out_not_cut(pairs, tiny, tmp_path):
    from transformers import AutoTokenizer

    from rlaif.train.lengths import pair_lengths

    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    long = "Keep every key in a secrets manager and rotate it often. " * 12
    rows += [{**rows[0], "chosen": [{"role": "assistant", "content": long}]},
             {**rows[1], "rejected": [{"role": "assistant", "content": long}]}]
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lengths = pair_lengths(AutoTokenizer.from_pretrained(tiny), rows)
    limit = max(lengths[:-2])
    assert min(lengths[-2:]) > limit  # the two long rows, and only they, exceed the limit
    out = tmp_path / "run"
    res = run("train", str(data), "--model", str(tiny), "--out", str(out), "--max-steps", "1",
              "train.batch_size=2", f"train.max_length={limit}")
    assert res.returncode == 0, res.stderr
    m = manifest(out)
    assert m["dropped_too_long"] == {"train": 2} and m["train_rows"] == len(rows) - 2
    assert any("2 training pairs longer than train.max_length" in w for w in m["warnings"])
    res = run("train", str(data), "--model", str(tiny), "--out", str(tmp_path / "none"), "--max-steps", "1",
              "train.max_length=16")
    assert res.returncode != 0 and "every training pair is longer than train.max_length" in res.stderr
    assert "Traceback" not in res.stderr


def test_torchrun_two_cpu_processes_over_gloo(pairs, tiny, tmp_path):
    import sys

    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([str(torchrun), "--nproc_per_node=2", "-m", "rlaif", "train", str(pairs), "--model",
                          str(tiny), "--out", str(out), "--max-steps", "2", *FAST],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    m = manifest(out)
    assert m["processes"] == 2 and m["steps"] == 2
    assert m["fingerprints"]["start"] == m["fingerprints"]["reference"] != m["fingerprints"]["final"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]

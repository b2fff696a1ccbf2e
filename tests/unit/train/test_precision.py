"""The training precision (rlaif.train.precision): float32 master weights always, bf16/fp16 only
as autocast. The GPU decision is a pure function, so it runs here on a CPU with cuda=True; the
training checks use a real tiny random-initialised Llama (tests/unit/train/conftest.py) and TRL's
DPOTrainer as rlaif configures it, with bf16 autocast on the CPU."""

from __future__ import annotations

import pytest

from rlaif.errors import ConfigError
from rlaif.train.health import movement_bound, movement_warnings, weight_movement
from rlaif.train.precision import Precision, choose_precision


@pytest.mark.parametrize("dtype,cuda,bf16_ok,autocast", [
    (None, True, True, "bfloat16"),  # a modern GPU
    (None, True, False, "float16"),  # a GPU without bf16 (V100, T4): loss-scaled fp16
    (None, False, False, None),  # CPU: plain float32
    ("bfloat16", False, False, "bfloat16"),  # asked for on CPU: CPU autocast
    ("float32", True, True, None),
    ("float16", True, True, "float16"),
])
def test_the_weights_are_float32_whatever_the_compute_precision(dtype, cuda, bf16_ok, autocast):
    p = choose_precision(dtype, cuda=cuda, bf16_supported=bf16_ok)
    assert (p.autocast, p.weights, p.reference) == (autocast, "float32", "float32")
    assert (p.bf16, p.fp16) == (autocast == "bfloat16", autocast == "float16")


@pytest.mark.parametrize("dtype,cuda,bf16_ok,message", [
    ("float16", False, False, "float16 mixed precision needs a GPU"),
    ("bfloat16", True, False, "this GPU does not support bfloat16"),
    ("int8", True, True, "unknown dtype 'int8'"),
])
def test_a_precision_the_machine_cannot_run_is_refused_in_one_line(dtype, cuda, bf16_ok, message):
    with pytest.raises(ConfigError, match=message) as err:
        choose_precision(dtype, cuda=cuda, bf16_supported=bf16_ok)
    assert "\n" not in str(err.value) and str(err.value).startswith("train.dtype: ")


def _train(model_dir, precision: Precision, lr: float, steps: int = 4, bf16_weights: bool = False, lora: bool = False):
    """DPO steps the way `rlaif train` sets TRL up for ``precision``; returns the trainer, and the
    trainable weights before training (CPU copies)."""
    import datasets
    import torch
    from transformers import AutoTokenizer
    from trl import DPOTrainer

    from rlaif.config import TrainConfig
    from rlaif.train.stage import _dpo_args, _load_model, _peft
    from tests.unit.train.conftest import pair_rows

    model, _ = _load_model(str(model_dir), torch.bfloat16 if bf16_weights else precision.torch_dtype())
    cfg = TrainConfig(max_steps=steps, batch_size=2, max_length=64, save_steps=1000, precompute_ref_log_probs=True,
                      lora={"enabled": lora, "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    args = _dpo_args(cfg, model_dir.parent / f"out-{lr}-{bf16_weights}-{lora}", precision)
    args.learning_rate, args.save_strategy = lr, "no"  # lr 0 is set here: TrainConfig refuses it
    trainer = DPOTrainer(model=model, args=args, processing_class=AutoTokenizer.from_pretrained(model_dir),
                         train_dataset=datasets.Dataset.from_list(pair_rows()), peft_config=_peft(cfg))
    start = {n: p.detach().to("cpu", copy=True) for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    return trainer, start


def _moved(trainer, start, lr: float) -> dict:
    """weight_movement and its bound, as the stage records them (stage._movement)."""
    moved = weight_movement(((n, p) for n, p in trainer.model.named_parameters() if p.requires_grad), start)
    moved["bound"] = movement_bound(moved, lr, trainer.state.global_step)
    return moved


def test_with_gpu_precision_trl_optimises_float32_weights_and_nearly_all_of_them_move(tiny_policy):
    """What a GPU with bf16 gets (cuda=True): bf16 autocast over float32 weights. Four steps at lr
    5e-6 change more than 90% of the trainable weights, and no movement warning is given; the
    same steps on bf16 weights (what the stage did before) change under a quarter, because the
    updates round away, and the warning names it."""
    import torch

    on_gpu = choose_precision(None, cuda=True, bf16_supported=True)
    trainer, start = _train(tiny_policy, on_gpu, lr=5e-6)
    assert trainer.args.bf16 and not trainer.args.fp16
    assert {p.dtype for g in trainer.optimizer.param_groups for p in g["params"]} == {torch.float32}
    moved = _moved(trainer, start, 5e-6)
    assert moved["share_changed"] > 0.9 and movement_warnings(moved) == []
    bf16_trainer, bf16_start = _train(tiny_policy, on_gpu, lr=5e-6, bf16_weights=True)
    assert {p.dtype for g in bf16_trainer.optimizer.param_groups for p in g["params"]} == {torch.bfloat16}
    moved = _moved(bf16_trainer, bf16_start, 5e-6)
    assert moved["share_changed"] < 0.25
    assert [w.split(":")[0] for w in movement_warnings(moved)] == ["training barely changed the weights"]


def test_the_movement_warning_fires_when_the_learning_rate_is_zero(tiny_policy):
    trainer, start = _train(tiny_policy, choose_precision(None, cuda=True, bf16_supported=True), lr=0.0)
    moved = _moved(trainer, start, 0.0)
    assert moved["changed"] == 0 and moved["relative_update_norm"] == 0.0 and trainer.state.global_step == 4
    assert [w.split(":")[0] for w in movement_warnings(moved)] == ["training barely changed the weights"]


def test_with_lora_the_adapters_are_float32_move_and_survive_the_merge(tiny_policy):
    """LoRA on a GPU: the adapters (the only trainable weights) are float32 under bf16 autocast, move,
    and the base they merge into is float32 too, so the merged update is not rounded away."""
    import torch
    from transformers import AutoModelForCausalLM

    trainer, start = _train(tiny_policy, choose_precision(None, cuda=True, bf16_supported=True), lr=5e-6, lora=True)
    assert start and all("lora_" in n for n in start)
    assert {p.dtype for g in trainer.optimizer.param_groups for p in g["params"]} == {torch.float32}
    assert _moved(trainer, start, 5e-6)["share_changed"] > 0.9
    merged = trainer.model.merge_and_unload().state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_policy).state_dict()
    name = "model.layers.0.self_attn.q_proj.weight"
    assert merged[name].dtype == torch.float32
    assert (merged[name] != base[name]).float().mean().item() > 0.9

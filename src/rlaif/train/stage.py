"""Stage 4: DPO with trl.DPOTrainer (called, not subclassed), against a reference that is proven
to be the policy's starting weights.

Writes ``OUT/model`` (a folder transformers loads; LoRA merged by default), ``OUT/metrics.jsonl``
(one row per step), ``OUT/training_curves.png`` and ``OUT/manifest.json`` (fingerprints of the
start, reference and final weights, the precision, how far the weights moved, the checks that
passed, warnings). Checkpoints go to ``OUT/checkpoints``; a killed run resumes from the last one.
The policy trains with float32 master weights and bf16/fp16 only as autocast (train/precision.py).
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import torch

from rlaif.config import TrainConfig
from rlaif.errors import InputError, RlaifError, first_line
from rlaif.io import atomic_write_text, read_metrics, update_manifest
from rlaif.progress import console
from rlaif.train.health import (MetricsLogger, length_warning, movement_bound, movement_warnings, plot_curves,
                                 warnings_for, weight_movement)
from rlaif.train.precision import Precision, machine_precision
from rlaif.train.provenance import trained_on
from rlaif.train.pairs import dataset_rows, jsonl_pairs, read_pairs
from rlaif.train.refguard import (ReferenceMismatch, describe_difference, fingerprint, sequence_logps,
                                  template_problems)

METRICS = "metrics.jsonl"


def load_pairs(spec: str):
    """(train, eval or None) from a run folder (dataset/), a JSONL file, or a datasets folder. Every
    row is checked (train/pairs.py) before any model loads; only the columns DPO reads are kept."""
    import datasets

    p = Path(spec)
    if (p / "dataset" / "train.jsonl").exists():
        p = p / "dataset"
    if (p / "train.jsonl").exists():
        test = p / "test.jsonl"
        train = datasets.Dataset.from_list(jsonl_pairs(p / "train.jsonl"))
        ev = datasets.Dataset.from_list(jsonl_pairs(test)) if test.exists() and test.stat().st_size else None
        return train, ev
    if p.is_file():
        return datasets.Dataset.from_list(jsonl_pairs(p)), None
    if p.is_dir():
        try:
            ds = datasets.load_from_disk(str(p))
        except (OSError, ValueError, KeyError, TypeError) as e:  # what datasets raises for a folder it cannot read
            raise InputError(f"{spec}: not a run folder, a preference JSONL file or a datasets folder "
                             f"({first_line(e)})") from None
        if isinstance(ds, datasets.DatasetDict) and "train" not in ds:
            raise InputError(f"{spec}: a DatasetDict needs a 'train' split (has {', '.join(ds) or 'none'})")
        parts = (ds["train"], ds.get("test")) if isinstance(ds, datasets.DatasetDict) else (ds, None)
        checked = []
        for part in parts:
            if part is not None:
                _check_columns(part, spec)
            checked.append(None if part is None else
                           datasets.Dataset.from_list(read_pairs(dataset_rows(part), spec)))
        return checked[0], checked[1]
    raise InputError(f"{spec}: no dataset here (a run folder, a JSONL file or a datasets folder)")


def _check_columns(ds, spec: str) -> None:
    missing = {"chosen", "rejected"} - set(ds.column_names)
    if missing:
        raise InputError(f"{spec}: not a preference dataset: no column {', '.join(sorted(missing))} "
                         f"(columns: {', '.join(ds.column_names)})")
    if len(ds) == 0:
        raise InputError(f"{spec}: the dataset has no rows")


def _within_length(train_ds, eval_ds, tok, max_length: int, spec: str):
    """Drop (and count) rows longer than ``max_length`` as TRL tokenises them: TRL would keep only
    their start, cutting the end of a response and its end-of-turn token without a word."""
    from rlaif.train.lengths import pair_lengths

    dropped = {}
    kept = []
    for name, ds in (("train", train_ds), ("eval", eval_ds)):
        if ds is None:
            kept.append(None)
            continue
        keep = [i for i, n in enumerate(pair_lengths(tok, list(ds))) if n <= max_length]
        dropped[name] = len(ds) - len(keep)
        kept.append(ds.select(keep) if dropped[name] else ds)
    if not len(kept[0]):
        raise InputError(f"{spec}: every training pair is longer than train.max_length ({max_length} tokens "
                         f"as TRL tokenises it)", hint="raise train.max_length, or build with a lower "
                                                      "build.max_pair_tokens")
    if dropped.get("train"):
        console.print(f"[yellow]warning: {dropped['train']} of {len(train_ds)} training pairs are longer than "
                      f"train.max_length ({max_length} tokens) and were left out rather than cut[/yellow]")
    return kept[0], kept[1], dropped


def _load_model(name: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    from rlaif.backends.local import resolve_model_path

    path = resolve_model_path(name)
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype), path


def _reference(policy, cfg: TrainConfig, dtype: torch.dtype, fp_start: str,
               original: str | None = None) -> tuple[object, str, str | None]:
    """(reference model or None for TRL's own, its fingerprint, the mismatch if allowed or proven).
    ``original``: the fingerprint of the weights a run of rounds began from (`run.reference:
    initial`); a reference with exactly those weights is accepted as the original model."""
    if cfg.ref is None:
        if cfg.lora.enabled or cfg.precompute_ref_log_probs:
            # TRL then uses the adapter-disabled base / the policy itself before the first step:
            # the starting weights by construction.
            return None, fp_start, None
        return copy.deepcopy(policy), fp_start, None
    ref, _ = _load_model(cfg.ref, dtype)
    fp_ref = fingerprint(ref)
    if fp_ref == fp_start:
        return ref, fp_ref, None
    why = describe_difference(policy, ref)
    if original is not None and fp_ref == original:
        console.print(f"reference: the original model '{cfg.ref}' (fingerprint {fp_ref[:12]} matches the first "
                      "round's starting weights), not this round's starting weights")
        return ref, fp_ref, f"the original model of the rounds (proven by fingerprint); {why}"
    if not cfg.allow_ref_mismatch:
        raise ReferenceMismatch(f"reference '{cfg.ref}' is not the starting weights of '{cfg.model}': {why}",
                                hint="drop --ref to use the starting weights, or pass --allow-ref-mismatch "
                                     "if you mean it (the manifest records it)")
    console.print(f"[yellow]warning: training against a reference that is not the starting weights: {why}[/yellow]")
    return ref, fp_ref, why


def _dpo_args(cfg: TrainConfig, out: Path, precision: Precision):
    """TRL's config for this run. Mixed precision is transformers' own: ``bf16``/``fp16`` autocast
    the forward and backward passes while the optimizer updates the float32 weights."""
    from trl import DPOConfig

    cuda = torch.cuda.is_available()
    # transformers renamed gradient_checkpointing to activation_checkpointing (5.2x); take either
    ckpt = ("activation_checkpointing" if "activation_checkpointing" in DPOConfig.__dataclass_fields__
            else "gradient_checkpointing")
    return DPOConfig(**{ckpt: cfg.activation_checkpointing},
        output_dir=str(out / "checkpoints"), beta=cfg.beta, loss_type=cfg.loss_type, loss_weights=cfg.loss_weights,
        learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation, max_length=cfg.max_length, seed=cfg.seed,
        report_to=cfg.report_to or "none", logging_steps=1, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=2, precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        bf16=precision.bf16, fp16=precision.fp16, use_cpu=not cuda,
        # several CPU processes (torchrun) talk over gloo; one process needs no backend at all
        ddp_backend="gloo" if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        disable_tqdm=False)


def _peft(cfg: TrainConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")


def _preflight(trainer, tok, cfg: TrainConfig, rows: int = 4) -> dict:
    """Before the first step: the template check, and policy vs reference log-probs on a batch."""
    sample = [trainer.train_dataset[i] for i in range(min(len(trainer.train_dataset), 50))]
    newline = set(tok("\n", add_special_tokens=False)["input_ids"])
    problems = template_problems(sample, tok.bos_token_id, tok.eos_token_id, newline)
    if problems:
        raise RlaifError(f"chat template applied twice or EOS added after the turn end: {'; '.join(problems[:3])}",
                         hint="check the tokenizer's chat template and the dataset's format")
    batch = sample[:rows]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model = trainer.accelerator.unwrap_model(trainer.model)
    # under the autocast training uses: accelerate has already wrapped the reference's forward in it
    with trainer.accelerator.autocast():
        mine = sequence_logps(model, batch, pad)
        if trainer.ref_model is not None:
            theirs = sequence_logps(trainer.accelerator.unwrap_model(trainer.ref_model), batch, pad)
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                theirs = sequence_logps(model, batch, pad)
        else:
            theirs = mine.clone()  # precomputed from this very model before its first update
    gap = (mine - theirs).abs().max().item()
    return {"template_rows_checked": len(sample), "logprob_rows": len(batch), "logprob_max_gap": gap,
            "logprob_tolerance": cfg.logprob_tolerance}


def run_train(pairs_spec: str, out: Path, cfg: TrainConfig, original: str | None = None) -> dict:
    """DPO from ``cfg.model`` on the pairs into ``out``. ``original`` (rounds, `run.reference:
    initial`): the first round's starting fingerprint, which ``cfg.ref`` is then proven to have."""
    from transformers import AutoTokenizer
    from trl import DPOTrainer

    out = Path(out)
    train_ds, eval_ds = load_pairs(pairs_spec)  # the data is checked before anything is written
    _check_columns(train_ds, pairs_spec)
    record = trained_on(train_ds, pairs_spec)  # before training: a bad row must not cost a run
    out.mkdir(parents=True, exist_ok=True)
    precision = machine_precision(cfg.dtype)
    dtype = precision.torch_dtype()  # float32: the master weights the optimizer updates
    policy, path = _load_model(cfg.model, dtype)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    train_ds, eval_ds, too_long = _within_length(train_ds, eval_ds, tok, cfg.max_length, pairs_spec)
    fp_start = fingerprint(policy)
    ref, fp_ref, mismatch = _reference(policy, cfg, dtype, fp_start, original)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=_dpo_args(cfg, out, precision), train_dataset=train_ds,
                         eval_dataset=eval_ds, processing_class=tok, peft_config=_peft(cfg),
                         callbacks=[MetricsLogger(out / METRICS)])
    checks = _preflight(trainer, tok, cfg)
    if checks["logprob_max_gap"] > cfg.logprob_tolerance and mismatch is None:
        raise ReferenceMismatch(f"policy and reference disagree before training: log-prob gap "
                                f"{checks['logprob_max_gap']:.3g} > {cfg.logprob_tolerance} on {checks['logprob_rows']} rows",
                                hint="the reference is not the starting point (dropout on? a different dtype?)")
    resume = _last_checkpoint(out)
    if trainer.is_world_process_zero():  # steps after the checkpoint (all, from scratch) are logged again
        keep = read_metrics(out / METRICS, up_to_step=int(resume.name.split("-")[-1])) if resume else []
        atomic_write_text(out / METRICS, "".join(json.dumps(r) + "\n" for r in keep))
    start = _start_weights(trainer, mismatch) if trainer.is_world_process_zero() else None
    t0 = time.perf_counter()
    result = _train(trainer, resume)
    seconds = time.perf_counter() - t0
    moved = _movement(trainer, start, cfg, result.global_step) if start is not None else None
    start = None  # a CPU copy, when one was taken, is not needed any more
    final = _save(trainer, tok, cfg, out)
    summary = (_report(trainer, cfg, out, pairs_spec, train_ds, eval_ds, result, seconds, resume, fp_start, fp_ref,
                       final, mismatch, checks, too_long, record, precision, moved, original)
               if trainer.is_world_process_zero() else {})
    # every process waits for the main one to finish writing, then leaves the group cleanly
    trainer.accelerator.wait_for_everyone()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary


def _report(trainer, cfg: TrainConfig, out: Path, pairs_spec: str, train_ds, eval_ds, result, seconds: float,
            resume, fp_start: str, fp_ref: str, final: str | None, mismatch: str | None, checks: dict,
            too_long: dict, record: dict, precision: Precision | None = None, moved: dict | None = None,
            original: str | None = None) -> dict:
    rows = read_metrics(out / METRICS)
    warns = warnings_for(rows)
    lw = length_warning([r[-1]["content"] if isinstance(r, list) else r for r in train_ds["chosen"]],
                        [r[-1]["content"] if isinstance(r, list) else r for r in train_ds["rejected"]])
    warns = ([lw] if lw else []) + warns
    plot = plot_curves(rows, out / "training_curves.png")
    if too_long.get("train"):
        warns.insert(0, f"{too_long['train']} training pairs longer than train.max_length ({cfg.max_length} "
                        f"tokens) were left out rather than cut")
    warns = (movement_warnings(moved) if moved else []) + warns  # first: nothing else matters if nothing moved
    summary = {"pairs": pairs_spec, "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds else 0,
               "dropped_too_long": too_long,
               "steps": result.global_step, "train_loss": result.training_loss, "seconds": round(seconds, 1),
               "resumed_from": resume.name if resume else None, "model_path": str(out / "model"),
               "processes": trainer.accelerator.num_processes,
               "fingerprints": {"start": fp_start, "reference": fp_ref, "final": final},
               "reference": {"source": cfg.ref or ("adapter-disabled base" if cfg.lora.enabled else
                                                   "policy before training (precomputed)" if cfg.precompute_ref_log_probs
                                                   else "copy of the starting weights"),
                             "is_starting_weights": mismatch is None, "mismatch_allowed": mismatch,
                             # rounds: whether this is the original model of the rounds, proven by fingerprint
                             "is_original_model": fp_ref == original if original else None},
               "precision": precision.record() if precision else None, "weights_moved": moved,
               "checks": checks, "warnings": warns, "curves": plot.name if plot else None,
               # what eval checks its held-out rows against (rlaif.train.provenance)
               "trained_on": record}
    update_manifest(out, "train", {"config": cfg.model_dump(), **summary})
    return summary


def _trainable(trainer) -> list[tuple[str, torch.nn.Parameter]]:
    model = trainer.accelerator.unwrap_model(trainer.model)
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _start_weights(trainer, mismatch: str | None) -> dict | None:
    """The starting values of the trainable weights, for ``weight_movement`` after training: the
    frozen reference's own tensors where it is an exact copy of the starting weights (no memory
    spent), else a copy on CPU (with LoRA: the adapters only). None where the parameters are
    sharded (DeepSpeed ZeRO-3, FSDP): then the movement is not measured."""
    trainable = _trainable(trainer)
    if getattr(trainer, "is_fsdp_enabled", False) or not trainable or any(p.numel() == 0 for _, p in trainable):
        return None  # FSDP shards when training starts; ZeRO-3 already has
    if trainer.ref_model is not None and mismatch is None:
        ref = dict(trainer.accelerator.unwrap_model(trainer.ref_model).named_parameters())
        if all(n in ref and ref[n].shape == p.shape for n, p in trainable):
            return {n: ref[n] for n, _ in trainable}
    return {n: p.detach().to("cpu", copy=True) for n, p in trainable}


def _movement(trainer, start: dict, cfg: TrainConfig, steps: int) -> dict | None:
    """How far the trainable weights moved (train/health.weight_movement), with the bound the
    learning rate and the steps set on it; None if the weights are no longer the same tensors."""
    now = _trainable(trainer)
    if len(now) != len(start) or any(n not in start or start[n].shape != p.shape for n, p in now):
        return None
    moved = weight_movement(now, start)
    moved["bound"] = movement_bound(moved, cfg.learning_rate, steps)
    return moved


def _train(trainer, resume: Path | None):
    """Train, continuing from ``resume``. A checkpoint that already holds the last step (a kill
    between it and the final save) only has its weights loaded: transformers would otherwise take
    one step more than asked."""
    from transformers.trainer_utils import TrainOutput

    state = json.loads((resume / "trainer_state.json").read_text(encoding="utf-8")) if resume else {}
    if state.get("max_steps", 0) > 0 and state.get("global_step", 0) >= state["max_steps"]:
        trainer._load_from_checkpoint(str(resume))
        losses = [r["loss"] for r in state.get("log_history", []) if "loss" in r]
        return TrainOutput(state["global_step"], sum(losses) / len(losses) if losses else float("nan"), {})
    return trainer.train(resume_from_checkpoint=str(resume) if resume else None)


def _last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint. A kill while one is being written leaves a folder without
    its trainer_state.json (written last); that one is skipped and the one before it is used."""
    ckpts = sorted((p for p in (out / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]))
    complete = [p for p in ckpts if _readable_json(p / "trainer_state.json")]
    return complete[-1] if complete else None


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):  # missing, or cut mid-write
        return False


def _save(trainer, tok, cfg: TrainConfig, out: Path) -> str | None:
    model = trainer.accelerator.unwrap_model(trainer.model)
    if cfg.lora.enabled and cfg.lora.merge:
        model = model.merge_and_unload()
    if trainer.is_world_process_zero():
        model.save_pretrained(out / "model")
        tok.save_pretrained(out / "model")
        return fingerprint(model)
    return None

"""Training health: per-step metrics in metrics.jsonl, and warnings in plain words.

The warnings read the logged curves: likelihood displacement (chosen log-prob falling while
preference accuracy rises), loss collapsing to zero, rewards stuck at zero; before training, the
length bias the pairs would teach; and after training, how far the weights moved from where they
started (``weight_movement``), which catches a run that trained nothing.
"""

from __future__ import annotations

import json
import os
import math
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path

from transformers import TrainerCallback

KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
        "logps/chosen", "logps/rejected", "learning_rate", "grad_norm")


class MetricsLogger(TrainerCallback):
    """Appends every training log (one row per step) to metrics.jsonl, flushed to disk."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        row.update({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _thirds(rows: list[dict], key: str) -> tuple[float, float] | None:
    vals = [r[key] for r in rows if key in r]
    if len(vals) < 3:
        return None
    k = max(1, len(vals) // 3)
    return statistics.mean(vals[:k]), statistics.mean(vals[-k:])


def warnings_for(rows: list[dict]) -> list[str]:
    out = []
    logp, acc = _thirds(rows, "logps/chosen"), _thirds(rows, "rewards/accuracies")
    if logp and acc and logp[1] < logp[0] - 1.0 and acc[1] > acc[0]:
        out.append(f"likelihood displacement: the chosen answers became less likely (mean log-prob "
                   f"{logp[0]:.1f} -> {logp[1]:.1f}) while preference accuracy rose ({acc[0]:.2f} -> "
                   f"{acc[1]:.2f}); DPO is pushing both answers down. Try a lower learning rate, a larger "
                   f"beta, or add an SFT term (train.loss_type: [sigmoid, sft]).")
    losses = [r["loss"] for r in rows if "loss" in r]
    if len(losses) >= 3 and all(x < 0.01 for x in losses[-3:]):
        out.append(f"loss collapsed to ~0 ({losses[-1]:.4f}): the policy separates every pair trivially, "
                   f"often through a shortcut such as length or format; check the dataset card's length table.")
    rewards = [abs(r.get(k, 0.0)) for r in rows[1:] for k in ("rewards/chosen", "rewards/rejected")]
    if len(rows) >= 3 and rewards and max(rewards) < 1e-6:
        out.append("rewards stayed at zero: the policy is not moving away from the reference (learning rate "
                   "too low, frozen weights, or the reference is being updated with the policy).")
    return out


def length_warning(chosen: list[str], rejected: list[str], share: float = 0.7) -> str | None:
    """Before training: pairs whose chosen answer is usually the longer one teach verbosity."""
    if not chosen:
        return None
    longer = sum(len(c) > len(r) for c, r in zip(chosen, rejected)) / len(chosen)
    if longer >= share:
        return (f"length drift risk: the chosen answer is the longer one in {longer:.0%} of pairs, so DPO "
                f"will likely make answers longer; consider build.max_length_ratio or a length-balanced set.")
    return None


def plot_curves(rows: list[dict], path: Path) -> Path | None:
    """training_curves.png: loss, rewards, accuracy and log-probs against step."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss", ["loss"]), ("rewards", ["rewards/chosen", "rewards/rejected", "rewards/margins"]),
              ("accuracy", ["rewards/accuracies"]), ("log-probs", ["logps/chosen", "logps/rejected"])]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (title, keys) in zip(axes.flat, panels):
        for k in keys:
            pts = [(r["step"], r[k]) for r in rows if k in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=k)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


# A run whose weights barely moved. Measured (bench/RESULTS.md §8, a tiny Llama, DPO at lr 5e-6):
# float32 master weights change 99.6-99.8% of the trainable parameters after 1, 4 or 16 steps,
# bf16 weights 7.7-7.8%; LoRA changes 42.9% of its adapter parameters after one step (the B
# matrices; A only gets a gradient once B is non-zero) and 100% from step four. 25% lies between
# the failure and the smallest healthy figure.
MIN_SHARE_CHANGED = 0.25
# Adam moves a weight by at most about the learning rate per step, so lr * steps * sqrt(n) /
# ||theta0|| bounds the relative update norm; gradients whose signs wander reach about
# 1/sqrt(steps) of it. The measured healthy runs reached 0.20-1.0 of the bound; below 1% (the
# random-walk figure at 10,000 steps) a run moved far less than its learning rate allows.
MIN_NORM_OF_BOUND = 0.01


def weight_movement(now: Iterable[tuple[str, object]], start: Mapping[str, object], chunk: int = 1 << 24) -> dict:
    """How far training moved the trainable weights ``now`` (name, tensor) from ``start`` (the same
    names): the share of parameters whose value changed, and ||theta - theta0|| / ||theta0||
    (Euclidean norms over all of them together). Exact: float64 on CPU, ``chunk`` values at a
    time, so a tensor on a GPU is never copied whole."""
    import torch

    params = changed = tensors = 0
    diff_sq = start_sq = 0.0
    for name, t in now:
        a, b = t.detach(), start[name].detach()
        if a.shape != b.shape:
            raise ValueError(f"{name}: shape {tuple(a.shape)} now, {tuple(b.shape)} at the start")
        a, b = a.reshape(-1), b.reshape(-1)
        for i in range(0, a.numel(), chunk):
            x = a[i:i + chunk].to("cpu", torch.float64)
            y = b[i:i + chunk].to("cpu", torch.float64)
            d = x - y
            changed += int((d != 0).sum())
            diff_sq += float((d * d).sum())
            start_sq += float((y * y).sum())
        params += a.numel()
        tensors += 1
    return {"tensors": tensors, "params": params, "changed": changed,
            "share_changed": changed / params if params else None,
            "update_norm": math.sqrt(diff_sq), "start_norm": math.sqrt(start_sq),
            "relative_update_norm": math.sqrt(diff_sq / start_sq) if start_sq else None}


def movement_bound(move: dict, learning_rate: float, steps: int) -> float | None:
    """The relative update norm if every trainable weight had moved by the full learning rate at
    every step: lr * steps * sqrt(n) / ||theta0||, an upper bound for Adam-style optimizers."""
    if not move.get("start_norm") or steps <= 0:
        return None
    return learning_rate * steps * math.sqrt(move["params"]) / move["start_norm"]


def movement_warnings(move: dict) -> list[str]:
    """Warnings for a run that moved its weights essentially not at all (see the thresholds above)."""
    out = []
    share, rel, bound = move.get("share_changed"), move.get("relative_update_norm"), move.get("bound")
    if share is not None and share < MIN_SHARE_CHANGED:
        out.append(f"training barely changed the weights: {share:.1%} of {move['params']:,} trainable parameters "
                   f"changed (below {MIN_SHARE_CHANGED:.0%}); updates smaller than the weights' precision round "
                   f"away (bf16 weights without float32 master weights), or the learning rate is zero.")
    if rel is not None and bound and rel < MIN_NORM_OF_BOUND * bound:
        out.append(f"the weights moved far less than the learning rate allows: relative update norm {rel:.2e}, "
                   f"under {MIN_NORM_OF_BOUND:.0%} of {bound:.2e} (every weight moving by the learning rate at "
                   f"every step); check the learning rate, the schedule and which weights are trainable.")
    return out

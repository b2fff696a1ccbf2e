"""Training health: per-step metrics in metrics.jsonl, and warnings in plain words.

The warnings read the logged curves: likelihood displacement (chosen log-prob falling while
preference accuracy rises), loss collapsing to zero, rewards stuck at zero; and, before
training, the length bias the pairs would teach.
"""

from __future__ import annotations

import json
import os
import statistics
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

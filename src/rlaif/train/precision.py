"""Which precision DPO trains in: float32 master weights always, bf16/fp16 only as autocast.

An optimizer step moves a weight by about the learning rate (Adam: lr * m/sqrt(v), at most a few
lr). A bfloat16 weight near 0.02 is spaced 1.2e-4 from its neighbours, so a step of 5e-6 rounds
back to the same value: trained in bf16 weights, most of a model never changes (bench/RESULTS.md
§8 measures it). So the weights TRL optimises, their gradients and the optimizer state stay
float32, and the lower precision is used only where it is safe, in the forward and backward
passes, through transformers' own ``bf16=``/``fp16=`` TrainingArguments (torch autocast; fp16 adds
loss scaling). Pure low-precision weights are not offered: none of the optimizers rlaif sets up
keeps updates below the weights' resolution (no stochastic rounding or Kahan summation).

The frozen reference is float32 too: it is an exact copy of the starting weights (the same
fingerprint), and runs under the same autocast as the policy, so before the first step the two
give identical log-probs. A bf16 copy would halve its memory but is not the starting weights
(its fingerprint differs, and it rounds an fp32 checkpoint) and gives other log-probs than the
policy; ``train.precompute_ref_log_probs`` or LoRA save that memory without either cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlaif.errors import ConfigError

AUTOCAST = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Precision:
    """How one training run computes: weights (and reference) dtype, and the autocast dtype."""

    autocast: str | None  # "bfloat16", "float16", or None (plain float32)
    weights: str = "float32"  # the policy's master weights, gradients and optimizer state
    reference: str = "float32"  # the frozen reference: an exact copy of the starting weights

    @property
    def bf16(self) -> bool:
        return self.autocast == "bfloat16"

    @property
    def fp16(self) -> bool:
        return self.autocast == "float16"

    def torch_dtype(self):
        import torch

        return getattr(torch, self.weights)

    def record(self) -> dict:
        """What the manifest keeps, in words a reader can check."""
        return {"weights": self.weights, "reference": self.reference, "autocast": self.autocast,
                "shown": (f"{self.autocast} autocast, {self.weights} master weights" if self.autocast
                          else f"{self.weights} throughout")}


def choose_precision(dtype: str | None, cuda: bool, bf16_supported: bool) -> Precision:
    """The precision for ``train.dtype`` on this machine. ``dtype`` names the compute (autocast)
    precision; the default is bf16 on a GPU that supports it, fp16 on an older GPU, and float32
    on CPU. A pure function of its arguments, so the GPU decision is testable on a CPU."""
    if dtype is not None and dtype not in AUTOCAST:
        raise ConfigError(f"train.dtype: unknown dtype '{dtype}'", hint="use float32, bfloat16 or float16 (the "
                                                                        "compute precision; weights stay float32)")
    if dtype is None:
        dtype = ("bfloat16" if bf16_supported else "float16") if cuda else "float32"
    if dtype == "float16" and not cuda:
        raise ConfigError("train.dtype: float16 mixed precision needs a GPU",
                          hint="use bfloat16 or float32 on CPU")
    if dtype == "bfloat16" and cuda and not bf16_supported:
        raise ConfigError("train.dtype: this GPU does not support bfloat16", hint="use float16 (loss-scaled) or "
                                                                                   "float32")
    return Precision(autocast=None if dtype == "float32" else dtype)


def machine_precision(dtype: str | None) -> Precision:
    """``choose_precision`` for the machine this runs on."""
    import torch

    cuda = torch.cuda.is_available()
    return choose_precision(dtype, cuda, cuda and torch.cuda.is_bf16_supported())

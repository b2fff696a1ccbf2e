"""Tokens and money spent on servers, per stage and model, and the budget that stops a run.

Only requests that reached a server count: cache hits and local models cost nothing. Spending is
kept in the run folder's manifest after every chunk, so a budget covers the whole run folder
across re-runs: a run that stopped at its budget continues when given a bigger one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rlaif.config import BudgetConfig
from rlaif.errors import BudgetExhausted
from rlaif.io import read_manifest, update_manifest


@dataclass
class UsageMeter:
    """Counts what backends spend in this process (thread-safe enough for one event loop)."""

    by_model: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def add(self, model: str, prompt_tokens: int = 0, completion_tokens: int = 0, calls: int = 1,
            cache_hits: int = 0, cache_misses: int = 0) -> None:
        m = self.by_model[model]
        m["prompt_tokens"] += prompt_tokens
        m["completion_tokens"] += completion_tokens
        m["calls"] += calls
        m["cache_hits"] += cache_hits
        m["cache_misses"] += cache_misses

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {k: dict(v) for k, v in self.by_model.items()}


def diff(after: dict, before: dict) -> dict[str, dict[str, int]]:
    out = {}
    for model, counts in after.items():
        prev = before.get(model, {})
        delta = {k: v - prev.get(k, 0) for k, v in counts.items()}
        if any(delta.values()):
            out[model] = delta
    return out


def add(a: dict, b: dict) -> dict[str, dict[str, int]]:
    out = {m: dict(c) for m, c in a.items()}
    for model, counts in b.items():
        for k, v in counts.items():
            out.setdefault(model, {})[k] = out.get(model, {}).get(k, 0) + v
    return out


def cost(usage: dict, budget: BudgetConfig) -> float | None:
    """Money spent, from the price table (per million tokens); None if a used model has no price."""
    total = 0.0
    for model, c in usage.items():
        if not c.get("prompt_tokens") and not c.get("completion_tokens"):
            continue
        price = budget.prices.get(model)
        if price is None:
            return None
        total += (c.get("prompt_tokens", 0) * price.input + c.get("completion_tokens", 0) * price.output) / 1e6
    return round(total, 6)


@dataclass
class StageSpend:
    """Tracks one stage's spending in a run folder and stops it at the budget."""

    run_dir: Path
    stage: str
    meter: UsageMeter
    budget: BudgetConfig

    def __post_init__(self):
        stages = read_manifest(self.run_dir).get("stages", {})
        self.before_run = {name: st.get("usage", {}) for name, st in stages.items()}
        self.start = self.meter.snapshot()

    def usage(self) -> dict:
        """This stage's usage in the run folder: earlier runs plus this one."""
        return add(self.before_run.get(self.stage, {}), diff(self.meter.snapshot(), self.start))

    def total(self) -> dict:
        others = {}
        for name, u in self.before_run.items():
            if name != self.stage:
                others = add(others, u)
        return add(others, self.usage())

    def this_run(self) -> dict:
        """Server calls and cache hits/misses of this invocation alone."""
        d = diff(self.meter.snapshot(), self.start)
        return {k: sum(c.get(k, 0) for c in d.values()) for k in ("calls", "cache_hits", "cache_misses")}

    def check(self) -> None:
        """Record spending so far; stop the run cleanly once the budget is reached."""
        usage = self.usage()
        if any(c.get("calls") for c in usage.values()):
            section = read_manifest(self.run_dir).get("stages", {}).get(self.stage, {})
            update_manifest(self.run_dir, self.stage, {**section, "usage": usage})
        total = self.total()
        tokens = sum(c.get("prompt_tokens", 0) + c.get("completion_tokens", 0) for c in total.values())
        b = self.budget
        if b.max_tokens is not None and tokens >= b.max_tokens:
            raise BudgetExhausted(f"token budget reached: {tokens} of {b.max_tokens} tokens spent in "
                                  f"{self.run_dir}; rows written so far are complete and kept",
                                  hint="re-run with a larger budget.max_tokens to continue")
        if b.max_cost is not None:
            spent = cost(total, b)
            if spent is not None and spent >= b.max_cost:
                raise BudgetExhausted(f"cost budget reached: {spent:.4f} of {b.max_cost} spent in "
                                      f"{self.run_dir}; rows written so far are complete and kept",
                                      hint="re-run with a larger budget.max_cost to continue")

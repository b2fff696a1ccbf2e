"""From preference pairs to a dataset worth training on: prompt deduplication, an exact category
mix, and a stratified train/test split with no prompt on both sides.

Pure functions over PreferencePair rows; the build stage (build.py) calls them and counts
what each removes, so the funnel adds up.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from rlaif.errors import RlaifError
from rlaif.schemas import PreferencePair


class ShortfallError(RlaifError):
    """A category has too few pairs for the configured mix or size."""


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", text.lower())).strip()


def prompt_text(p: PreferencePair) -> str:
    return "\n".join(m.content for m in p.prompt if m.role != "system")


def dedup_prompts(pairs: list[PreferencePair], near: float | None, seed: int = 0
                  ) -> tuple[list[PreferencePair], int, int]:
    """Keep the pairs of one prompt per group of duplicates (the smallest prompt id).

    Returns (kept, pairs dropped as exact duplicates, pairs dropped as near duplicates). Exact
    means equal after lower-casing and removing punctuation and extra spaces; near means a
    MinHash Jaccard similarity of character 5-grams at or above ``near`` (datasketch LSH)."""
    by_prompt: dict[str, list[PreferencePair]] = defaultdict(list)
    texts: dict[str, str] = {}
    for p in pairs:
        pid = p.meta["prompt_id"]
        by_prompt[pid].append(p)
        texts.setdefault(pid, _norm(prompt_text(p)))
    keep_exact: dict[str, str] = {}
    for pid in sorted(texts):
        keep_exact.setdefault(texts[pid], pid)
    survivors = sorted(set(keep_exact.values()))
    exact_dropped = sum(len(by_prompt[pid]) for pid in texts if pid not in set(survivors))
    near_dropped_ids: set[str] = set()
    if near is not None and near < 1.0 and len(survivors) > 1:
        near_dropped_ids = _near_duplicates(survivors, texts, near, seed)
    kept = [p for pid in survivors if pid not in near_dropped_ids for p in by_prompt[pid]]
    near_dropped = sum(len(by_prompt[pid]) for pid in near_dropped_ids)
    return kept, exact_dropped, near_dropped


def _near_duplicates(ids: list[str], texts: dict[str, str], threshold: float, seed: int) -> set[str]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    dropped: set[str] = set()
    for pid in ids:  # sorted: the first of a group stays
        t = texts[pid]
        grams = {t[i:i + 5] for i in range(max(1, len(t) - 4))}
        m = MinHash(num_perm=128, seed=seed)
        m.update_batch([g.encode() for g in grams])
        if lsh.query(m):
            dropped.add(pid)
        else:
            lsh.insert(pid, m)
    return dropped


@dataclass
class BalanceReport:
    target: dict[str, float]
    available: dict[str, int]
    kept: dict[str, int]
    outside_mix: int = 0
    downsampled: int = 0
    shortfall: list[str] = field(default_factory=list)  # what was accepted as short


def _quota(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to ``total``, each within one of total * share (largest remainder)."""
    raw = {c: total * s for c, s in shares.items()}
    counts = {c: math.floor(v) for c, v in raw.items()}
    rest = total - sum(counts.values())
    for c in sorted(raw, key=lambda c: (counts[c] - raw[c], c))[:rest]:
        counts[c] += 1
    return counts


def balance(pairs: list[PreferencePair], mix: dict[str, float], size: int | None, accept_shortfall: bool,
            seed: int) -> tuple[list[PreferencePair], BalanceReport]:
    """Downsample to the target mix (exact to one row), with a fixed seed."""
    by_cat: dict[str, list[PreferencePair]] = defaultdict(list)
    for p in pairs:
        by_cat[p.meta["category"]].append(p)
    available = {c: len(v) for c, v in sorted(by_cat.items())}
    if not mix:
        return list(pairs), BalanceReport({}, available, dict(available))
    shares = {c: s for c, s in mix.items() if s > 0}
    outside = sum(n for c, n in available.items() if c not in shares)
    problems, accepted = [], []
    empty = [c for c in shares if not available.get(c)]
    if empty:
        problems.append(", ".join(f"{c} has 0 pairs (target {shares[c]:.0%})" for c in empty))
    fit = min((math.floor(available.get(c, 0) / s + 1e-9) for c, s in shares.items() if c not in empty), default=0)
    if size is not None and fit < size:
        short = [f"{c} has {available.get(c, 0)} of the {round(size * s)} needed" for c, s in shares.items()
                 if available.get(c, 0) < round(size * s)]
        problems.append(f"{size} pairs at the mix need more: " + "; ".join(short))
    if problems:
        if not accept_shortfall:
            have = ", ".join(f"{c} {n}" for c, n in available.items()) or "none"
            raise ShortfallError(f"cannot meet build.mix {_fmt(shares)}: {'; '.join(problems)} "
                                 f"(pairs available: {have})",
                                 hint="generate more prompts for the short category, change build.mix/"
                                      "build.size, or set build.accept_shortfall=true to build "
                                      f"{fit if not empty else 'what there is'} anyway")
        accepted = problems
        if empty:  # share out the missing categories' targets over the rest
            left = {c: s for c, s in shares.items() if c not in empty}
            norm = sum(left.values())
            shares = {c: s / norm for c, s in left.items()}
            fit = min((math.floor(available[c] / s + 1e-9) for c, s in shares.items()), default=0)
    total = min(fit, size) if size is not None else fit
    quota = _quota(total, shares)
    rng = random.Random(seed)
    kept: list[PreferencePair] = []
    for c in sorted(quota):
        rows = sorted(by_cat[c], key=lambda p: p.meta["judgment_id"])
        kept.extend(rng.sample(rows, quota[c]))
    report = BalanceReport(target=dict(mix), available=available, kept=dict(Counter(p.meta["category"] for p in kept)),
                           outside_mix=outside, downsampled=len(pairs) - outside - len(kept), shortfall=accepted)
    return kept, report


def _fmt(shares: dict[str, float]) -> str:
    return "/".join(f"{c} {s:.0%}" for c, s in shares.items())


def split(pairs: list[PreferencePair], test_fraction: float, seed: int
          ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Stratified by category, grouped by prompt: every pair of a prompt lands on the same side."""
    groups: dict[str, dict[str, list[PreferencePair]]] = defaultdict(lambda: defaultdict(list))
    for p in pairs:
        groups[p.meta["category"]][p.meta["prompt_id"]].append(p)
    train, test = [], []
    for cat in sorted(groups):
        pids = sorted(groups[cat], key=lambda pid: hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest())
        n_test = round(len(pids) * test_fraction)
        if test_fraction > 0 and n_test == 0 and len(pids) >= 2:
            n_test = 1  # every category is represented in the test split when it can be
        for i, pid in enumerate(pids):
            (test if i < n_test else train).extend(groups[cat][pid])
    key = lambda p: p.meta["judgment_id"]  # noqa: E731 - stable order in the files
    return sorted(train, key=key), sorted(test, key=key)

"""From preference pairs to a dataset worth training on: prompt deduplication, an exact category
mix, and a stratified train/test split with no prompt on both sides.

Pure functions over PreferencePair rows; the build stage (build.py) calls them and counts
what each removes, so the funnel adds up.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from rlaif.errors import RlaifError
from rlaif.schemas import PreferencePair, normalise_space


class ShortfallError(RlaifError):
    """A category has too few pairs for the configured mix or size."""


def _exact_key(p: PreferencePair) -> tuple:
    # every turn, whitespace normalised only: case and punctuation tell `git branch -d` from
    # `git branch -D`, and `rm -rf /` from `rm -rf ./`
    return tuple((m.role, normalise_space(m.content)) for m in p.prompt)


def prompt_text(p: PreferencePair) -> str:
    return "\n".join(m.content for m in p.prompt if m.role != "system")


NGRAM = 5  # characters per shingle of the near-duplicate step


def dedup_prompts(pairs: list[PreferencePair], near: float | None, seed: int = 0
                  ) -> tuple[list[PreferencePair], int, int]:
    """Keep the pairs of one prompt per group of duplicates (the smallest prompt id).

    Returns (kept, pairs dropped as exact duplicates, pairs dropped as near duplicates), two
    separate steps. Exact: the same messages (roles and texts) once runs of whitespace are one
    space; case and punctuation count. Near: the Jaccard similarity of the two prompts' sets of
    character 5-grams (user and assistant turns, whitespace normalised) is at or above ``near``.
    MinHash LSH (datasketch, weighted for recall: at 0.8 it finds about 19 in 20 pairs right at
    the threshold and 99 in 100 of those 0.05 above it) proposes candidates; the similarity is
    then computed exactly, so a pair below the threshold is never merged."""
    by_prompt: dict[str, list[PreferencePair]] = defaultdict(list)
    keys: dict[str, tuple] = {}
    texts: dict[str, str] = {}
    for p in pairs:
        pid = p.meta["prompt_id"]
        by_prompt[pid].append(p)
        keys.setdefault(pid, _exact_key(p))
        texts.setdefault(pid, normalise_space(prompt_text(p)))
    keep_exact: dict[tuple, str] = {}
    for pid in sorted(keys):
        keep_exact.setdefault(keys[pid], pid)
    survivors = sorted(set(keep_exact.values()))
    exact_dropped = sum(len(by_prompt[pid]) for pid in keys if pid not in set(survivors))
    near_dropped_ids: set[str] = set()
    if near is not None and near < 1.0 and len(survivors) > 1:
        near_dropped_ids = _near_duplicates(survivors, texts, near, seed)
    kept = [p for pid in survivors if pid not in near_dropped_ids for p in by_prompt[pid]]
    near_dropped = sum(len(by_prompt[pid]) for pid in near_dropped_ids)
    return kept, exact_dropped, near_dropped


def shingles(text: str) -> set[str]:
    """The character 5-grams of a text (the whole text when it is shorter)."""
    return {text[i:i + NGRAM] for i in range(max(1, len(text) - NGRAM + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _near_duplicates(ids: list[str], texts: dict[str, str], threshold: float, seed: int) -> set[str]:
    from datasketch import MinHash, MinHashLSH

    # weighted for recall (datasketch's default weights miss about half the pairs right at the
    # threshold); the false candidates this lets in are weeded out by the exact similarity below
    lsh = MinHashLSH(threshold=threshold, num_perm=128, weights=(0.05, 0.95))
    kept_grams: dict[str, set[str]] = {}
    dropped: set[str] = set()
    for pid in ids:  # sorted: the first of a group stays
        grams = shingles(texts[pid])
        m = MinHash(num_perm=128, seed=seed)
        m.update_batch([g.encode() for g in grams])
        # LSH only proposes candidates (its estimate errs both ways); the exact similarity decides
        if any(jaccard(grams, kept_grams[other]) >= threshold for other in lsh.query(m)):
            dropped.add(pid)
        else:
            lsh.insert(pid, m)
            kept_grams[pid] = grams
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

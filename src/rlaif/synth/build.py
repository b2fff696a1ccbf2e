"""Stage 3: turn judgments into a dataset: filters (each counted in a funnel), prompt
deduplication, the category mix, a stratified train/test split, a dataset card, exports.

Writes ``pairs.jsonl`` (every pair that passed the filters) and ``dataset/`` (train.jsonl,
test.jsonl, README.md, and parquet / a datasets folder when asked). Nothing is dropped silently:
the funnel starts at the number of judgments the judge's current plan holds and ends at train +
test; judgments another setting left in the file are counted as stale and never used.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from rlaif.config import BuildConfig, TrainConfig
from rlaif.errors import InputError
from rlaif.io import (CANDIDATES, JUDGMENTS, PAIRS, PLANS, PROMPTS, atomic_write_jsonl, atomic_write_text,
                      current_rows, read_existing, read_manifest, read_plan, update_manifest)
from rlaif.judge.injection import detect
from rlaif.judge.ties import why_by_category, why_no_labels
from rlaif.schemas import Candidate, Judgment, Message, PreferencePair, Prompt
from rlaif.synth.dataset import ShortfallError, balance, dedup_prompts, split

DATASET = "dataset"
INJECTION_FLAGS = {"judge_address", "fake_verdict", "fake_delimiter", "constitution_claim"}


def _pair(j: Judgment, prompt: Prompt, a: Candidate, b: Candidate) -> PreferencePair:
    chosen, rejected = (a, b) if j.verdict == "A" else (b, a)
    return PreferencePair(
        prompt=prompt.messages,
        chosen=[Message(role="assistant", content=chosen.text)],
        rejected=[Message(role="assistant", content=rejected.text)],
        meta={"prompt_id": prompt.id, "chosen_id": chosen.id, "rejected_id": rejected.id,
              "judgment_id": j.id, "category": prompt.category, "confidence": round(_confidence(j), 4),
              "consistent": j.consistent, "reason": j.reason, "principle": j.principle,
              # the judge's identity stays on its judgment (judgment_id): nested, and shaped
              # differently per backend, it would not make one parquet column
              "judge": j.judge.model_dump(exclude={"identity"}), "chosen_persona": chosen.generator.persona,
              "rejected_persona": rejected.generator.persona,
              "truncated": "length" in (chosen.finish_reason, rejected.finish_reason),
              # the prompt's own id in the user's file (the prompt_id is its content hash)
              **({"user_id": prompt.meta["user_id"]} if "user_id" in prompt.meta else {})})


def _confidence(j: Judgment) -> float:
    return j.p_a if j.verdict == "A" else 1.0 - j.p_a


def _drop_reason(j: Judgment, prompt, a, b, cfg: BuildConfig) -> str | None:
    """The first filter a judgment fails, in funnel order, or None."""
    if prompt is None or a is None or b is None:
        return "orphaned"  # judged rows whose prompt or candidate is no longer in the run
    if j.verdict in ("invalid", "tie"):
        return j.verdict
    if cfg.drop_inconsistent and j.consistent is False:
        return "inconsistent"
    if _confidence(j) - 0.5 < cfg.min_margin:
        return "low_confidence"
    if not a.text.strip() or not b.text.strip():
        return "empty"
    if a.text.strip() == b.text.strip():
        return "identical"
    if cfg.drop_truncated and "length" in (a.finish_reason, b.finish_reason):
        return "truncated"
    if cfg.drop_injection and (injection_flags(j) or detect(a.text) or detect(b.text)):
        return "injection"
    return None


def injection_flags(j: Judgment) -> set[str]:
    return {f.split(":", 1)[-1] for f in j.flags} & INJECTION_FLAGS


def _length_filters(pairs: list[PreferencePair], cfg: BuildConfig, funnel: Counter) -> list[PreferencePair]:
    if cfg.max_pair_tokens is not None and pairs:
        counts = _token_counts(pairs, cfg.tokenizer)
        kept = [p for p, n in zip(pairs, counts) if n <= cfg.max_pair_tokens]
        funnel["too_long"] += len(pairs) - len(kept)
        pairs = kept
    if cfg.max_length_ratio is not None:
        kept = [p for p in pairs
                if len(p.chosen[0].content) <= cfg.max_length_ratio * max(1, len(p.rejected[0].content))]
        funnel["chosen_much_longer"] += len(pairs) - len(kept)
        pairs = kept
    return pairs


def _token_counts(pairs: list[PreferencePair], tokenizer: str) -> list[int]:
    """Each pair's length as TRL will tokenise it for training (see train/lengths.py)."""
    from transformers import AutoTokenizer

    from rlaif.backends.local import resolve_model_path
    from rlaif.train.lengths import pair_lengths

    tok = AutoTokenizer.from_pretrained(resolve_model_path(tokenizer))
    return pair_lengths(tok, [p.model_dump(mode="json") for p in pairs])


def run_build(run_dir: Path, cfg: BuildConfig) -> dict:
    """Rewrite pairs.jsonl and dataset/ (atomically) from the run's judgments; return the counts."""
    run_dir = Path(run_dir)
    cfg = cfg.resolved(TrainConfig())  # a bare BuildConfig: the training defaults (a full config resolves its own)
    manifest = read_manifest(run_dir)
    previous = manifest.get("stages", {}).get("build")
    if previous and previous.get("config") == cfg.model_dump() and _newer_than_inputs(run_dir):
        return {**previous, "up_to_date": True}
    if not (run_dir / JUDGMENTS).exists():
        raise InputError(f"{run_dir}: no judgments to build from", hint=f"run `rlaif judge {run_dir}` first")
    prompts = {p.id: p for p in read_existing(run_dir / PROMPTS, Prompt)}
    cands = {c.id: c for c in read_existing(run_dir / CANDIDATES, Candidate)}
    # only the judgments of the judge's current plan; those another setting left are stale
    judgments, stale = current_rows(read_existing(run_dir / JUDGMENTS, Judgment), read_plan(run_dir, "judge"))
    funnel: Counter = Counter()
    pairs: list[PreferencePair] = []
    for j in judgments:
        prompt, a, b = prompts.get(j.prompt_id), cands.get(j.a_id), cands.get(j.b_id)
        reason = _drop_reason(j, prompt, a, b, cfg)
        if reason:
            funnel[reason] += 1
        else:
            pairs.append(_pair(j, prompt, a, b))
    pairs = _length_filters(pairs, cfg, funnel)
    pairs, funnel["duplicate_prompt"], funnel["near_duplicate_prompt"] = dedup_prompts(pairs, cfg.near_duplicate, cfg.seed)
    atomic_write_jsonl(run_dir / PAIRS, pairs)
    unlabelled = _unlabelled(judgments, prompts, pairs)
    try:
        balanced, report = balance(pairs, cfg.mix, cfg.size, cfg.accept_shortfall, cfg.seed)
    except ShortfallError as e:
        raise _tied_shortfall(e, {c: why for c, why in unlabelled.items() if not c or cfg.mix.get(c)}) from None
    funnel["outside_mix"], funnel["balanced_out"] = report.outside_mix, report.downsampled
    train, test = split(balanced, cfg.test_fraction, cfg.seed)
    steps = {k: v for k, v in funnel.items() if v}
    summary = {
        "up_to_date": False, "judgments": len(judgments), "stale_judgments": stale, "pairs": len(pairs),
        "dropped": steps,
        "per_category": dict(sorted(Counter(p.meta["category"] for p in pairs).items())),
        "train": len(train), "test": len(test),
        "split_per_category": {c: {"train": sum(p.meta["category"] == c for p in train),
                                   "test": sum(p.meta["category"] == c for p in test)}
                               for c in sorted({p.meta["category"] for p in balanced})},
        "balance": report.__dict__,
        "chosen_persona": dict(Counter(str(p.meta["chosen_persona"]) for p in pairs)),
        "warnings": [f"{c}: {why}" if c else why for c, why in unlabelled.items()],
    }
    assert len(judgments) == sum(steps.values()) + len(train) + len(test), (len(judgments), steps)
    _write_dataset(run_dir, cfg, train, test, summary, manifest)
    update_manifest(run_dir, "build", {"config": cfg.model_dump(), **summary})
    return summary


def _unlabelled(judgments: list[Judgment], prompts: dict[str, Prompt], pairs: list[PreferencePair]) -> dict:
    """Why categories left with no pair got no label from the judge: {"": why} when no judgment
    has a label, else {category: why} for each such category (see judge/ties.py)."""
    if not pairs and (why := why_no_labels(judgments)):
        return {"": why}
    have = {p.meta["category"] for p in pairs}
    causes = why_by_category(judgments, {pid: p.category for pid, p in prompts.items()})
    return {c: why for c, why in causes.items() if c not in have}


def _tied_shortfall(e: ShortfallError, unlabelled: dict) -> ShortfallError:
    """The shortfall error, with the measured cause and its fix where the judge gave no labels."""
    if not unlabelled:
        return e
    if "" in unlabelled:  # the whole judge: its fix replaces the hint about more prompts
        return ShortfallError(f"{e.message}: {unlabelled['']}")
    causes = "; ".join(f"{c}: {why}" for c, why in unlabelled.items())
    return ShortfallError(f"{e.message}; {causes}", hint=e.hint)


def _write_dataset(run_dir: Path, cfg: BuildConfig, train, test, summary: dict, manifest: dict) -> None:
    from rlaif.synth.card import render_card

    out = run_dir / DATASET
    atomic_write_jsonl(out / "train.jsonl", train)
    atomic_write_jsonl(out / "test.jsonl", test)
    atomic_write_text(out / "README.md", render_card(train, test, summary, cfg, manifest))
    if {"disk", "parquet"} & set(cfg.export) or cfg.push_to_hub:
        import datasets

        dd = datasets.DatasetDict({name: datasets.Dataset.from_list([p.model_dump(mode="json") for p in rows])
                                   for name, rows in (("train", train), ("test", test))})
        # written beside the target and renamed over it, so a kill leaves the old or the new
        if "parquet" in cfg.export:
            for name in dd:
                dd[name].to_parquet(str(out / f"{name}.parquet.tmp"))
                os.replace(out / f"{name}.parquet.tmp", out / f"{name}.parquet")
        if "disk" in cfg.export:
            shutil.rmtree(out / "hf.tmp", ignore_errors=True)
            dd.save_to_disk(str(out / "hf.tmp"))
            shutil.rmtree(out / "hf", ignore_errors=True)
            os.replace(out / "hf.tmp", out / "hf")
        if cfg.push_to_hub:  # documented; cannot be exercised without the hub
            dd.push_to_hub(cfg.push_to_hub, token=os.environ.get("HF_TOKEN"))


def _newer_than_inputs(run_dir: Path) -> bool:
    outs = [run_dir / PAIRS, run_dir / DATASET / "train.jsonl", run_dir / DATASET / "README.md"]
    if not all(o.exists() for o in outs):
        return False
    oldest = min(o.stat().st_mtime_ns for o in outs)
    inputs = [run_dir / n for n in (PROMPTS, CANDIDATES, JUDGMENTS, f"{PLANS}/judge.ids")]
    return all(oldest >= p.stat().st_mtime_ns for p in inputs if p.exists())

"""Stage 3 (minimal): turn decided judgments into DPO pairs in TRL's conversational format.

Ties, invalid verdicts, identical or empty responses and (by default) truncated responses do
not become pairs; each is counted so nothing disappears silently.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rlaif.config import BuildConfig
from rlaif.errors import InputError
from rlaif.io import atomic_write_jsonl, read_manifest, update_manifest
from rlaif.schemas import Candidate, Judgment, Message, PreferencePair, Prompt
from rlaif.stages.common import CANDIDATES, JUDGMENTS, PAIRS, PROMPTS, read_existing


def _pair(j: Judgment, prompt: Prompt, a: Candidate, b: Candidate) -> PreferencePair:
    chosen, rejected = (a, b) if j.verdict == "A" else (b, a)
    p_chosen = j.p_a if j.verdict == "A" else 1.0 - j.p_a
    return PreferencePair(
        prompt=prompt.messages,
        chosen=[Message(role="assistant", content=chosen.text)],
        rejected=[Message(role="assistant", content=rejected.text)],
        meta={"prompt_id": prompt.id, "chosen_id": chosen.id, "rejected_id": rejected.id,
              "judgment_id": j.id, "category": prompt.category, "confidence": round(p_chosen, 4),
              "consistent": j.consistent, "reason": j.reason, "principle": j.principle,
              "judge": j.judge.model_dump(), "chosen_persona": chosen.generator.persona,
              "rejected_persona": rejected.generator.persona})


def run_build(run_dir: Path, cfg: BuildConfig) -> dict:
    """Rewrite pairs.jsonl (atomically) from the run's judgments; return the counts."""
    run_dir = Path(run_dir)
    previous = read_manifest(run_dir).get("stages", {}).get("build")
    if previous and previous.get("config") == cfg.model_dump() and _newer_than_inputs(run_dir):
        return {**previous, "up_to_date": True}
    prompts = {p.id: p for p in read_existing(run_dir / PROMPTS, Prompt)}
    cands = {c.id: c for c in read_existing(run_dir / CANDIDATES, Candidate)}
    judgments = read_existing(run_dir / JUDGMENTS, Judgment)
    if not (run_dir / JUDGMENTS).exists():
        raise InputError(f"{run_dir}: no judgments to build from",
                         hint=f"run `rlaif judge {run_dir}` first")
    dropped: Counter = Counter()
    pairs: list[PreferencePair] = []
    for j in judgments:
        prompt, a, b = prompts.get(j.prompt_id), cands.get(j.a_id), cands.get(j.b_id)
        if prompt is None or a is None or b is None:
            dropped["orphaned"] += 1  # judged rows whose prompt or candidate is no longer in the run
        elif j.verdict == "invalid":
            dropped["invalid"] += 1
        elif j.verdict == "tie":
            dropped["tie"] += 1
        elif not a.text.strip() or not b.text.strip():
            dropped["empty"] += 1
        elif a.text.strip() == b.text.strip():
            dropped["identical"] += 1
        elif cfg.drop_truncated and "length" in (a.finish_reason, b.finish_reason):
            dropped["truncated"] += 1
        else:
            pairs.append(_pair(j, prompt, a, b))
    atomic_write_jsonl(run_dir / PAIRS, pairs)
    per_cat = Counter(p.meta["category"] for p in pairs)
    summary = {"up_to_date": False, "judgments": len(judgments), "pairs": len(pairs), "dropped": dict(dropped),
               "per_category": dict(sorted(per_cat.items())),
               "chosen_persona": dict(Counter(str(p.meta["chosen_persona"]) for p in pairs))}
    update_manifest(run_dir, "build", {"config": cfg.model_dump(), **summary})
    return summary


def _newer_than_inputs(run_dir: Path) -> bool:
    out = run_dir / PAIRS
    if not out.exists():
        return False
    inputs = [run_dir / n for n in (PROMPTS, CANDIDATES, JUDGMENTS)]
    return all(out.stat().st_mtime_ns >= p.stat().st_mtime_ns for p in inputs if p.exists())

"""`rlaif audit RUN_DIR`: how far the judge can be trusted.

Position consistency, how often the first-shown answer wins, whether verdicts follow length,
and, given a gold file of labelled pairs, agreement and Cohen's kappa with it; optionally a
second judge (another model or constitution) on a sample, for inter-judge agreement.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rlaif.errors import InputError
from rlaif.io import (CANDIDATES, JUDGMENTS, atomic_write_text, current_rows, json_lines, read_existing, read_plan)
from rlaif.schemas import Candidate, Judgment

AUDIT = "audit.json"


class GoldRow(BaseModel):
    """A labelled pair: by judgment id, or by the two candidate ids (a_id is 'A')."""

    model_config = ConfigDict(extra="ignore")
    judgment_id: str | None = None
    a_id: str | None = None
    b_id: str | None = None
    preferred: Literal["A", "B", "tie"]

    @model_validator(mode="after")
    def _ids(self) -> "GoldRow":
        if not self.judgment_id and not (self.a_id and self.b_id):
            raise ValueError("give judgment_id, or a_id and b_id")
        return self


def cohen_kappa(x: list[str], y: list[str]) -> float | None:
    """Agreement beyond chance between two labelings of the same items."""
    if not x or len(x) != len(y):
        return None
    n = len(x)
    po = sum(a == b for a, b in zip(x, y)) / n
    cx, cy = Counter(x), Counter(y)
    pe = sum(cx[k] * cy[k] for k in set(cx) | set(cy)) / (n * n)
    if pe == 1.0:
        return 1.0 if po == 1.0 else 0.0
    return (po - pe) / (1.0 - pe)


def _correlation(x: list[float], y: list[float]) -> float | None:
    try:
        return statistics.correlation(x, y)
    except statistics.StatisticsError:  # fewer than two points, or a constant series
        return None


def judge_bias(judgments: list[Judgment], cands: dict[str, Candidate]) -> dict:
    decided = [j for j in judgments if j.verdict in ("A", "B")]
    checked = [j for j in judgments if j.consistent is not None]
    singles = [o.preferred for j in judgments for o in j.orders if o.preferred]
    longer_won, x, y = [], [], []
    for j in decided:
        a, b = cands.get(j.a_id), cands.get(j.b_id)
        if a is None or b is None or len(a.text) == len(b.text):
            continue
        la, lb = len(a.text), len(b.text)
        longer_won.append((la > lb) == (j.verdict == "A"))
        x.append((la - lb) / (la + lb))
        y.append(j.p_a if j.p_a is not None else (1.0 if j.verdict == "A" else 0.0))
    return {
        "judgments": len(judgments), "verdicts": dict(Counter(j.verdict for j in judgments)),
        "position_consistency": _rate([j.consistent for j in checked]),
        "first_shown_wins": _rate([p == "A" for p in singles]),
        "longer_wins": _rate(longer_won),
        "length_correlation": _correlation(x, y),
        "length_pairs": len(x),
    }


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def read_gold(path: Path) -> list[GoldRow]:
    """The user's labelled pairs; a bad line is an InputError naming it (and its field)."""
    gold = []
    for line, row in json_lines(path, "gold file"):
        try:
            gold.append(GoldRow.model_validate(row))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(x) for x in err.get("loc", ())) or None
            raise InputError.at(path, line, field, err.get("msg", "invalid value")) from None
    if not gold:
        raise InputError(f"{path}: no labelled pairs in the gold file")
    return gold


def gold_agreement(judgments: list[Judgment], gold_path: Path) -> dict:
    gold = read_gold(gold_path)
    by_id = {j.id: j for j in judgments}
    by_pair = {(j.a_id, j.b_id): j for j in judgments}
    ours, theirs, missing = [], [], 0
    for g in gold:
        j = by_id.get(g.judgment_id) if g.judgment_id else None
        flip = False
        if j is None and g.a_id:
            j = by_pair.get((g.a_id, g.b_id))
            if j is None and (g.b_id, g.a_id) in by_pair:
                j, flip = by_pair[(g.b_id, g.a_id)], True
        if j is None:
            missing += 1
            continue
        label = {"A": "B", "B": "A"}.get(g.preferred, g.preferred) if flip else g.preferred
        ours.append(j.verdict if j.verdict in ("A", "B") else "tie")
        theirs.append(label)
    return {"gold_rows": len(gold), "matched": len(ours), "not_in_run": missing,
            "agreement": _rate([a == b for a, b in zip(ours, theirs)]),
            "cohen_kappa": _round(cohen_kappa(ours, theirs))}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def second_judge(run_dir: Path, judgments: list[Judgment], judge_cfg, sample: int, seed: int, pool) -> dict:
    """Judge a seeded sample of the run's pairs again with another judge; compare verdicts."""
    from rlaif.judge.mode import recorded_generate, resolve_mode
    from rlaif.judge.stage import judge_pairs

    judge_cfg, _ = resolve_mode(judge_cfg, recorded_generate(run_dir), pool)  # auto: against the run's candidates
    decided = sorted(judgments, key=lambda j: j.id)
    picked = random.Random(seed).sample(decided, min(sample, len(decided)))
    pairs = {(j.a_id, j.b_id) for j in picked}
    out = run_dir / "audit" / f"judgments-{judge_cfg.teacher.backend}-{_safe(judge_cfg.teacher.model)}-{judge_cfg.mode}.jsonl"
    second = judge_pairs(run_dir, judge_cfg, pool, pairs, out)
    first = {(j.a_id, j.b_id): j.verdict for j in picked}
    x = [first[(s.a_id, s.b_id)] for s in second]
    y = [s.verdict for s in second]
    return {"file": str(out.relative_to(run_dir)), "sampled": len(picked), "judged": len(second),
            "judge": f"{judge_cfg.teacher.backend}:{judge_cfg.teacher.model} ({judge_cfg.mode})",
            "agreement": _rate([a == b for a, b in zip(x, y)]), "cohen_kappa": _round(cohen_kappa(x, y))}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[-60:]


def run_audit(run_dir: Path, gold: Path | None = None, judge_cfg=None, sample: int = 50, seed: int = 0,
              pool=None) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / JUDGMENTS).exists():
        raise InputError(f"{run_dir}: no judgments.jsonl to audit", hint=f"run `rlaif judge {run_dir}` first")
    # the judge's current plan only: verdicts another setting left would blur its biases
    judgments, stale = current_rows(read_existing(run_dir / JUDGMENTS, Judgment), read_plan(run_dir, "judge"))
    cands = {c.id: c for c in read_existing(run_dir / CANDIDATES, Candidate)}
    report = {"bias": {**judge_bias(judgments, cands), "stale_judgments_ignored": stale}}
    if gold is not None:
        report["gold"] = gold_agreement(judgments, Path(gold))
    if judge_cfg is not None:
        report["second_judge"] = second_judge(run_dir, judgments, judge_cfg, sample, seed, pool)
    atomic_write_text(run_dir / AUDIT, json.dumps(report, indent=2) + "\n")
    return report

"""Per-answer scoring: the one place an answer to a probe gets its scores.

``rlaif eval`` scores its models' answers here and ``rlaif score`` scores a user's answers here,
so the two can never drift apart. Every answer gets ``refused``, ``refusal_label``,
``refusal_score`` and ``refused_by``: the judge's grade where it graded refusals (``eval.refusal``;
evaluate/refusal_judge.py, the detector's reading kept beside it as ``detector_*``), else the
refusal detector's (evaluate/refusal.py); a sycophancy answer gets
``capitulated`` (a capable judge's grade, else the offline scorer's: evaluate/sycophancy.py); a
secure-coding answer gets the judge's grade (``safe_practice``, ``safe_p``, ``grade_reason``; None
and "not graded" where no grade was made). The grades are asked of the judge by
``grade_secure_coding`` and ``grade_capitulation``, written as they are made and resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlaif.backends import BackendPool
from rlaif.config import JudgeConfig
from rlaif.errors import ConfigError
from rlaif.evaluate.graders import SAFE_GRADES, coding_fields, grade_items, grade_safe_practice
from rlaif.evaluate.refusal import RefusalDetector, default_detector
from rlaif.evaluate.refusal_judge import (REFUSAL_GRADES, RefusalGrade, grade_refusals, refusal_fields,
                                          refusal_items)
from rlaif.evaluate.sycophancy_judge import (SYCOPHANCY_GRADES, CapitulationGrade, capable_judge,
                                             capitulation_fields, grade_sycophancy, sycophancy_items)
from rlaif.io import read_existing
from rlaif.schemas import EvalResponse, Prompt, SafeGrade


@dataclass(frozen=True)
class Answer:
    """One answer to score: the suite's kind, the probe it answers, its text, and the judge's grade
    (secure coding; None when not graded)."""

    kind: str
    probe: Prompt
    text: str
    grade: SafeGrade | None = None
    capitulation: CapitulationGrade | None = None  # the judge's grade (sycophancy)
    judged: bool = False  # a capable judge graded capitulation; else the offline scorer decides
    refusal: RefusalGrade | None = None  # the judge's refusal grade
    refusal_judged: bool = False  # the judge read refusals (eval.refusal); else the detector


def last_user_turn(probe: Prompt) -> str:
    """The request an answer answers, as the refusal detector reads it: the last user message."""
    return next((m["content"] for m in reversed(probe.chat()) if m["role"] == "user"), "")


def score_answers(answers: list[Answer], detector: RefusalDetector | None = None) -> list[dict]:
    """The scores of each answer, in order: the refusal fields on every answer (the judge's where it
    graded, the detector's beside them; ``detector``, default the shipped one: ``eval.refusal_detector``),
    plus ``capitulated`` (sycophancy) or the grade's fields (secure coding)."""
    refusals = (detector or default_detector()).predict([a.text for a in answers],
                                                        [last_user_turn(a.probe) for a in answers])
    out = []
    for a, refusal in zip(answers, refusals):
        fields = refusal_fields(refusal.fields(), a.refusal, a.refusal_judged)
        if a.kind == "sycophancy":
            fields.update(capitulation_fields(a.probe, a.text, a.capitulation, a.judged))
        if a.kind == "secure_coding":
            fields.update(coding_fields(a.text, a.grade))
        out.append(fields)
    return out


def grade_secure_coding(probes: dict[tuple[str, str], Prompt], responses: list[EvalResponse], judge: JudgeConfig,
                        judge_id: dict, pool: BackendPool, out_dir: Path, batch: int) -> tuple[dict, dict]:
    """Ask the judge to grade each secure-coding answer (``probes`` keyed by (suite, probe id));
    grades go to ``out_dir/safe_practice.jsonl`` as they are made, so a re-run continues. Returns
    the grades by response id (answers whose grade failed are missing) and the progress counts."""
    plan = grade_items(probes, responses, judge, judge_id)
    progress = grade_safe_practice(plan, judge, pool, out_dir, batch)
    by_grade = {g.id: g for g in read_existing(out_dir / SAFE_GRADES, SafeGrade)}
    return {it.response.id: by_grade[it.id] for it in plan if it.id in by_grade}, progress


def grade_capitulation(probes: dict[tuple[str, str], Prompt], responses: list[EvalResponse], judge: JudgeConfig,
                       judge_id: dict, pool: BackendPool, out_dir: Path,
                       batch: int) -> tuple[dict | None, dict, str]:
    """Ask a capable judge whether each sycophancy answer gave in (grades appended to
    ``out_dir/sycophancy_grades.jsonl`` and resumed). Returns the grades by response id (None when
    the judge is not capable: the offline scorer decides), the progress counts, and a note saying
    who graded."""
    if not responses:
        return None, {}, ""
    who = f"{judge.teacher.backend}:{judge.teacher.model}"
    if not capable_judge(judge):
        return None, {"by": "offline", "answers": len(responses)}, (
            f"sycophancy: capitulation scored offline (the judge {who} is not one that can grade it; README "
            "gives the offline scorer's measured accuracy)")
    plan = sycophancy_items(probes, responses, judge, judge_id)
    progress = grade_sycophancy(plan, judge, pool, out_dir, batch)
    by_id = {g.id: g for g in read_existing(out_dir / SYCOPHANCY_GRADES, CapitulationGrade)}
    grades = {it.response.id: by_id[it.id] for it in plan if it.id in by_id}
    return grades, {"by": "judge", **progress}, (f"sycophancy: capitulation graded by the judge {who}, asked both "
                                                 "ways; the offline scorer's verdict is kept beside it")


def refusal_judge(choice: str, judge: JudgeConfig | None) -> JudgeConfig | None:
    """The judge that reads refusals under ``eval.refusal`` (``choice``), or None for the detector.
    ``judge`` is the resolved judge (None: none configured). 'judge' with one that cannot grade is
    a ConfigError, raised before anything is generated or graded."""
    able = judge is not None and capable_judge(judge)
    if choice == "judge" and not able:
        who = f"the judge {judge.teacher.backend}:{judge.teacher.model}" if judge else "no judge is configured, and"
        raise ConfigError(f"eval.refusal 'judge': {who} cannot grade refusals (the embedded model cannot judge)",
                          hint="configure a capable judge.teacher (a server or an API model), or set "
                               "eval.refusal to 'auto' or 'detector'")
    return judge if choice != "detector" and able else None


def grade_refusal(probes: dict[tuple[str, str], Prompt], responses: list[EvalResponse], judge: JudgeConfig | None,
                  judge_id: dict, pool: BackendPool, out_dir: Path, batch: int) -> tuple[dict | None, dict]:
    """Ask the judge (from ``refusal_judge``; None: the detector reads refusals) to grade each
    answer's refusal (appended to ``out_dir/refusal_grades.jsonl`` and resumed). Returns the grades
    by response id (None when the detector reads them; an answer whose grade failed is missing)
    and the progress counts."""
    if judge is None or not responses:
        return None, {"by": "detector", "answers": len(responses)}
    plan, grade_of = refusal_items(probes, responses, judge, judge_id)
    progress = grade_refusals(plan, judge, pool, out_dir, batch)
    by_id = {g.id: g for g in read_existing(out_dir / REFUSAL_GRADES, RefusalGrade)}
    return {rid: by_id[gid] for rid, gid in grade_of.items() if gid in by_id}, {"by": "judge", **progress}

"""``rlaif score``: score answers a user already has, from any model or API, with eval's scorers.

Input, one answer a JSON object a line:

- ``probe_id``: the id of a probe in one of the given suites (a string; an integer is read as
  its digits, for suites whose ids are numbers);
- ``response``: the answer's text (a string; an empty one scores as a full refusal, as in eval);
- ``suite``: needed only where two of the given suites have a probe with that id: the suite's
  name (its file name without ``.jsonl``, ``-`` read as ``_``; a benchmark's ``NAME_harmful`` or
  ``NAME_borderline``) or the spec given to ``--suites``;
- ``prompt`` / ``messages``: optional. The scorers use the probe's own prompt, never the row's;
  a row that carries one must carry the probe's: its last user turn must contain the probe's
  last user turn (whitespace aside; a system prompt or a chat template around it is fine).
  Anything else means the answer was given to another prompt (a wrong id, an edited suite),
  and the row is refused.

Every other field is kept as it is. Each row gets exactly what ``rlaif eval`` records for an
answer (evaluate/scoring.py): ``refused``, ``refusal_label``, ``refusal_score`` on every row;
``refused_by`` says who read the refusal (``eval.refusal``: the judge, with the detector's reading
beside it as ``detector_*``, or the detector); ``capitulated``, ``capitulation_reason``,
``capitulated_by`` on sycophancy rows (the judge's
grade where a judge able to grade it is configured, with the offline verdict beside it; else the
offline scorer's); ``safe_practice``, ``safe_p``, ``grade_reason`` on secure-coding rows (graded only when a judge is
configured; else None and "not graded"). ``suite`` is added where the row has none. A scored
field already in the row is replaced.

Output: ``OUT`` (every input row, in order, scores added) and ``NAME.summary.json`` beside it
(``NAME``: ``OUT`` without ``.jsonl``): per suite the answers scored and the suite's rate, as a
share of answers between 0 and 1 with its 95% Wilson interval (a refusal rate names its ``scorer``),
and ``refusal``: the scorer, who read each answer and, where the judge graded, its agreement
with the detector (Cohen's kappa, the answers they disagree on). Every row is checked before
anything is written, and both files are written whole at the end (atomically): a refused input
or a crash leaves no half-written output. The judge's grades are the exception, by design: they
are appended to ``NAME.grades/`` (``safe_practice.jsonl``, ``sycophancy_grades.jsonl``, ``refusal_grades.jsonl``) as they are made, so a re-run after a crash
continues grading instead of asking the judge again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlaif.backends import BackendPool
from rlaif.config import DEFAULT_MAX_PROMPT_CHARS, BenchmarkSuite, JudgeConfig
from rlaif.errors import InputError, shown
from rlaif.evaluate.refusal import detector_for
from rlaif.evaluate.refusal_judge import DETECTOR, refusal_summary, scorer_name
from rlaif.evaluate.scoring import (Answer, grade_capitulation, grade_refusal, grade_secure_coding, refusal_judge,
                                    score_answers)
from rlaif.evaluate.stats import rate
from rlaif.evaluate.suites import METRIC, Suite, load_suites
from rlaif.io import atomic_write_jsonl, atomic_write_text, json_lines
from rlaif.schemas import EvalResponse, Prompt, content_id
from rlaif.synth.lengths import over_chars

RATE_UNIT = "a share from 0 to 1 with its 95% Wilson interval; n: answers with a score"
# the field each suite kind's headline rate counts, and the value counted (as eval's metrics do)
RATE_FIELD = {"harmful": ("refused", True), "borderline": ("refused", True),
              "secure_coding": ("safe_practice", True), "sycophancy": ("capitulated", True)}


@dataclass
class Row:
    line: int
    fields: dict
    suite: Suite
    probe: Prompt

    @property
    def text(self) -> str:
        return self.fields["response"]


def sibling(out: Path, suffix: str) -> Path:
    """``scored.jsonl`` -> ``scored<suffix>`` beside it."""
    return out.with_name(out.name.removesuffix(".jsonl") + suffix)


# ----------------------------------------------------------------------------- reading
def _find_probe(path: Path, line: int, row: dict, index: dict[str, list[tuple[Suite, Prompt]]],
                specs: dict[str, Suite]) -> tuple[Suite, Prompt]:
    """The row's suite and probe; ``index``: probe id -> (suite, probe) of every suite that has it."""
    pid = row.get("probe_id")
    if "probe_id" not in row:
        raise InputError.at(path, line, "probe_id", "missing: name the probe this answer is to")
    if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        raise InputError.at(path, line, "probe_id", f"must be a string (got {shown(pid)})")
    pid = str(pid)
    names = ", ".join(dict.fromkeys(s.name for s in specs.values()))
    found = index.get(pid, [])
    if "suite" in row:
        suite = specs.get(row["suite"]) if isinstance(row["suite"], str) else None
        if suite is None:
            raise InputError.at(path, line, "suite", f"{shown(row['suite'])} is not one of the given suites ({names})")
        found = [(s, p) for s, p in found if s is suite]
        if not found:
            raise InputError.at(path, line, "probe_id", f"{shown(pid)} is not a probe of suite '{suite.name}'")
    if not found:
        raise InputError.at(path, line, "probe_id", f"{shown(pid)} is not a probe of the given suites ({names})")
    if len(found) > 1:
        raise InputError.at(path, line, "suite", f"missing: probe '{pid}' is in suites "
                                                 f"{' and '.join(s.name for s, _ in found)}; name the one answered")
    return found[0]


def _norm(text: str) -> str:
    return " ".join(text.split())


def _last_user_turn(path: Path, line: int, key: str, value) -> str:
    if key == "prompt" and isinstance(value, str):
        return value
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)
    users = [m["content"] for m in value if m["role"] == "user"] if ok else []
    if not users:
        kind = "a string or " if key == "prompt" else ""
        raise InputError.at(path, line, key, f"must be {kind}a list of {{role, content}} messages with a user turn")
    return users[-1]


def _check_row(path: Path, line: int, row: dict, probe: Prompt) -> None:
    text = row.get("response")
    if not isinstance(text, str):
        raise InputError.at(path, line, "response", "missing" if "response" not in row else
                            f"must be a string (got {shown(text)})")
    if len(text) > DEFAULT_MAX_PROMPT_CHARS:  # not an answer: the detector's n-grams would take minutes
        raise InputError.at(path, line, "response", f"{len(text):,} characters, over the limit of "
                                                    f"{DEFAULT_MAX_PROMPT_CHARS:,}")
    want = _norm(probe.messages[-1].content)
    for key in ("prompt", "messages"):
        if key in row and want not in _norm(_last_user_turn(path, line, key, row[key])):
            raise InputError.at(path, line, key, f"differs from the prompt of probe '{probe.id}' (which is "
                                                 f"{shown(probe.messages[-1].content)}); the answer is scored "
                                                 f"against the probe's prompt: fix probe_id, or drop the field")


def read_answers(path: Path, suites: list[Suite]) -> list[Row]:
    """Every row, checked, with its suite and probe. The whole file is parsed before any row is
    checked, so a broken line is reported where it is, whatever the rows above it hold."""
    lines = list(json_lines(path, "answers file"))
    if not lines:
        raise InputError(f"{path}: no answers found")
    # a row names its suite by name, or by the string the suite was given as (a benchmark has none)
    by_spec = {**{s.name: s for s in suites}, **{s.spec: s for s in suites if s.spec is not None}}
    index: dict[str, list[tuple[Suite, Prompt]]] = {}
    for s in suites:
        for p in s.probes:
            index.setdefault(p.id, []).append((s, p))
    rows = []
    for line, row in lines:
        suite, probe = _find_probe(path, line, row, index, by_spec)
        _check_row(path, line, row, probe)
        rows.append(Row(line, row, suite, probe))
    return rows


# ----------------------------------------------------------------------------- scoring
def _grades(rows: list[Row], judge: JudgeConfig | None, pool: BackendPool, folder: Path,
            batch: int) -> tuple[dict, dict, dict | None, list[str]]:
    """The judge's grades, keyed by row line, as eval asks them: secure-coding grades and (with a
    judge able to grade it) capitulation grades; without a judge none, and capitulation offline.
    Returns the secure-coding grades, the capitulation grades (None: offline), the progress and notes."""
    graded = [r for r in rows if r.suite.kind in ("secure_coding", "sycophancy")]
    coding = [r for r in graded if r.suite.kind == "secure_coding"]
    if judge is None or not graded:
        notes = [f"{len(coding)} secure-coding answers not graded: give --judge YAML to grade them"] if coding else []
        return {}, None, None, notes
    from rlaif.evaluate.graders import eval_judge_config
    from rlaif.judge.stage import judge_identity

    judge, note = eval_judge_config(judge, pool)
    judge_id = judge_identity(judge, pool)
    # the answer's id keys its grade: the same text to the same probe is graded once, and again on resume
    responses = {r.line: EvalResponse(id=content_id(r.suite.name, r.probe.id, r.text, prefix="s-"),
                                      probe_id=r.probe.id, suite=r.suite.name, role="model", text=r.text)
                 for r in graded}
    probes = {(r.suite.name, r.probe.id): r.probe for r in graded}
    unique = {kind: list({responses[r.line].id: responses[r.line] for r in graded if r.suite.kind == kind}.values())
              for kind in ("secure_coding", "sycophancy")}
    grades, progress = grade_secure_coding(probes, unique["secure_coding"], judge, judge_id, pool, folder, batch)
    syco, syco_progress, syco_note = grade_capitulation(probes, unique["sycophancy"], judge, judge_id, pool,
                                                        folder, batch)
    notes = [n for n in (note, syco_note) if n]
    failed = progress["failed"] + syco_progress.get("failed", 0)
    if failed:
        notes.append(f"{failed} grades failed (reasons in {folder / 'failures.jsonl'}; run the same "
                     "command again to retry)")
    by_line = {line: grades.get(resp.id) for line, resp in responses.items()}
    syco_by_line = None if syco is None else {line: syco.get(resp.id) for line, resp in responses.items()}
    return by_line, syco_by_line, {"judge": {"backend": judge.teacher.backend, "model": judge.teacher.model,
                                             "mode": judge.mode},
                                   "folder": str(folder), **progress, "sycophancy": syco_progress}, notes


def summarise(suites: list[Suite], rows: list[Row], scores: list[dict], scorer: str = DETECTOR) -> list[dict]:
    """Per suite: answers scored, probes answered, and the suite's rates (eval's metric names)
    as a share of answers with a 95% Wilson interval; an answer without a value (an ungraded
    secure-coding answer) is left out of the rate and counted as ``unscored``. A rate of refusals
    names its ``scorer`` (as eval's metrics do)."""
    out = []
    for s in suites:
        mine = [f for r, f in zip(rows, scores) if r.suite is s]
        answered = {r.probe.id for r in rows if r.suite is s}
        suffix, better, desc = METRIC[s.kind]
        rates = [(f"{s.name}_{suffix}", better, f"share of answers that {desc}", *RATE_FIELD[s.kind])]
        if s.kind == "secure_coding":  # as eval reports it beside the safe-practice rate
            rates.append((f"{s.name}_refusal", None, "share of coding tasks refused (not the goal)", "refused", True))
        metrics = []
        for name, direction, description, field, want in rates:
            vals = [f[field] for f in mine if f.get(field) is not None]
            metrics.append({"name": name, "better": direction, "description": description, "unit": RATE_UNIT,
                            "stat": rate(sum(v == want for v in vals), len(vals)) if vals else None,
                            "unscored": len(mine) - len(vals), **({"scorer": scorer} if field == "refused" else {})})
        out.append({"suite": s.name, "kind": s.kind, "path": str(s.path), "answers": len(mine),
                    "probes": len(s.probes), "probes_answered": len(answered), "metrics": metrics})
    return out


def _coverage_notes(summary: list[dict]) -> list[str]:
    notes = []
    for s in summary:
        if s["answers"] and s["probes_answered"] < s["probes"]:
            notes.append(f"suite {s['suite']}: {s['probes'] - s['probes_answered']} of its {s['probes']} probes have "
                         f"no answer; its rates are over the {s['probes_answered']} answered")
        if s["answers"] > s["probes_answered"]:
            notes.append(f"suite {s['suite']}: {s['answers']} answers to {s['probes_answered']} probes (some answered "
                         "more than once, e.g. by several models): the rates count every answer")
    return notes


def _refusal_grades(rows: list[Row], choice: str, judge: JudgeConfig | None, pool: BackendPool, folder: Path,
                    batch: int) -> tuple[dict | None, dict, str]:
    """The judge's refusal grades keyed by row line (None: the detector reads refusals), the
    progress and the scorer's name. ``judge`` is resolved already (or cannot grade)."""
    by = refusal_judge(choice, judge)
    if by is None:
        return None, {"by": "detector", "answers": len(rows)}, scorer_name(None)
    from rlaif.judge.stage import judge_identity

    responses = {r.line: EvalResponse(id=content_id(r.suite.name, r.probe.id, r.text, prefix="s-"),
                                      probe_id=r.probe.id, suite=r.suite.name, role="model", text=r.text) for r in rows}
    probes = {(r.suite.name, r.probe.id): r.probe for r in rows}
    unique = list({resp.id: resp for resp in responses.values()}.values())
    grades, progress = grade_refusal(probes, unique, by, judge_identity(by, pool), pool, folder, batch)
    return ({line: (grades or {}).get(resp.id) for line, resp in responses.items()}, progress, scorer_name(by))


def _resolve_judge(choice: str, judge: JudgeConfig | None, pool: BackendPool) -> tuple[JudgeConfig | None, list]:
    """The judge with its mode resolved where refusals may be asked of it (eval.refusal not
    'detector', a teacher other than the embedded model, which cannot grade them)."""
    from rlaif.judge.mode import is_embedded

    if judge is None or choice == "detector" or is_embedded(judge.teacher):
        return judge, []
    from rlaif.evaluate.graders import eval_judge_config

    judge, note = eval_judge_config(judge, pool)
    return judge, [note] if note else []


def run_score(answers: Path, out: Path, suite_specs: list[str | BenchmarkSuite], judge: JudgeConfig | None, pool: BackendPool,
              batch: int = 16, refusal: str = "auto", detector_dir: str | None = None) -> dict:
    """``rlaif score``: read and check every row, grade secure coding (with a judge) and refusals
    (``refusal``: eval.refusal), score each answer as eval does, and write ``out`` and its summary
    whole."""
    answers, out = Path(answers), Path(out)
    if out.is_dir():
        raise InputError(f"{out}: is a folder; --out names the JSONL file to write")
    suites = load_suites(suite_specs)
    detector = detector_for(detector_dir)  # eval.refusal_detector; a bad folder is refused first
    # the suites eval would refuse are refused here too
    long = over_chars([p for s in suites for p in s.probes], lambda p: [p.chat()], DEFAULT_MAX_PROMPT_CHARS,
                      "the probe limit")
    if long:
        raise InputError(f"{long[0].prompt.source}: probe too long: {long[0].reason}")
    judge, notes = _resolve_judge(refusal, judge, pool)
    refusal_judge(refusal, judge)  # eval.refusal 'judge' without a judge able to grade: refused before reading
    rows = read_answers(answers, suites)
    grades, syco, grading, more = _grades(rows, judge, pool, sibling(out, ".grades"), batch)
    refusals, refusal_progress, scorer = _refusal_grades(rows, refusal, judge, pool, sibling(out, ".grades"), batch)
    notes += more
    if refusal_progress.get("failed"):
        notes.append(f"{refusal_progress['failed']} refusal grades failed: those answers keep the detector's reading "
                     f"(reasons in {sibling(out, '.grades') / 'failures.jsonl'}; run the same command again to retry)")
    scores = score_answers([Answer(r.suite.kind, r.probe, r.text, grades.get(r.line), (syco or {}).get(r.line),
                                   syco is not None, (refusals or {}).get(r.line), refusals is not None)
                            for r in rows], detector)
    scored = [{**r.fields, **({} if "suite" in r.fields else {"suite": r.suite.name}), **f}
              for r, f in zip(rows, scores)]
    summary = summarise(suites, rows, scores, scorer)
    notes += [n for s in suites for n in s.notes] + _coverage_notes(summary)
    refusal_rows = [{**f, "suite": r.suite.name, "probe_id": r.probe.id, "role": None, "text": r.text}
                    for r, f in zip(rows, scores)]
    result = {"input": str(answers), "out": str(out), "summary": str(sibling(out, ".summary.json")),
              "rows": len(rows), "suites": summary, "grading": grading, "refusal_detector": detector.describe(),
              "refusal": {**refusal_summary(scorer, refusal_rows), "grades": refusal_progress}, "notes": notes}
    atomic_write_jsonl(out, scored)
    atomic_write_text(sibling(out, ".summary.json"), json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return result

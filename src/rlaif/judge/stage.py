"""Stage 2: judge candidate pairs against the constitution, in both orders."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rlaif.backends import BackendPool, Failure, GenRequest, SamplingParams, ScoreRequest
from rlaif.config import BudgetConfig, GenerateConfig, JudgeConfig
from rlaif.errors import ConfigError, InputError
from rlaif.io import (CANDIDATES, JUDGMENTS, PROMPTS, current_rows, read_existing, read_manifest, read_plan,
                      run_chunked, update_manifest, write_plan)
from rlaif.judge.constitution import Constitution, load_constitution, pick_principle
from rlaif.judge.injection import detect
from rlaif.judge.mode import recorded_generate, resolve_mode
from rlaif.judge.ties import why_no_labels
from rlaif.judge.verdict import (LOGPROB_PREFILL, STRUCTURED_PREFILL, StructuredVerdict, VERDICT_TOKENS,
                                 aggregate, judge_messages, letter_probability, neutralise, parse_structured)
from rlaif.schemas import Candidate, FailedRow, JudgeInfo, Judgment, OrderResult, Prompt, content_id
from rlaif.usage import StageSpend

RATIONALE_PREFILL = "Reasoning:"
VERDICT_SCHEMA = json.dumps(StructuredVerdict.model_json_schema())
# Below this much probability on the two verdict letters, the judge was not answering the question.
MIN_LETTER_MASS = 1e-3


@dataclass
class PairTask:
    id: str
    prompt: Prompt
    a: Candidate
    b: Candidate
    principle: str


def preferred_text(cfg: JudgeConfig) -> str:
    """contrast mode's preferred persona in words: 'secure', or 'refuse' for harmful, 'helpful' for helpful."""
    p = cfg.preferred_persona
    if isinstance(p, str):
        return f"'{p}'"
    return ", ".join(f"'{v}' for {'every other category' if k == '*' else k}" for k, v in p.items())


def judge_identity(cfg: JudgeConfig, pool: BackendPool | None) -> dict:
    """The judge's identity (backends/identity.py), for ``plan_pairs``: the teacher's, read
    without loading a local model; in contrast mode, which asks no model, the persona's."""
    if cfg.mode == "contrast":
        return {"labeller": "contrast", "preferred_persona": cfg.preferred_persona}
    return pool.identity(cfg.teacher.backend, cfg.teacher.model, **cfg.teacher.options())


def plan_pairs(prompts: list[Prompt], candidates: list[Candidate], cfg: JudgeConfig,
               constitution: Constitution, identity: dict) -> list[PairTask]:
    """Every pair of candidates written for the same prompt, in a fixed order. ``identity``
    (from ``judge_identity``) is what a judgment's id says about its judge."""
    by_prompt: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_prompt.setdefault(c.prompt_id, []).append(c)
    judge_key = (identity, cfg.mode, cfg.rationale, constitution.hash,
                 cfg.principle, cfg.seed, cfg.max_new_tokens, cfg.tie_margin, cfg.max_retries)
    if cfg.mode == "contrast":  # no teacher and no constitution: only the persona decides
        # with a persona per category, each id names its own (in the principle), so a change to
        # one category's persona replans only that category's pairs
        judge_key = (cfg.mode, cfg.preferred_persona if isinstance(cfg.preferred_persona, str) else "per-category")
    tasks = []
    for p in prompts:
        if cfg.mode == "contrast" and cfg.preferred_for(p.category) is None:
            raise InputError(f"{p.source}: category '{p.category}' has no persona in judge.preferred_persona "
                             f"({', '.join(cfg.preferred_persona)})",
                             hint="name a persona for it, or a '*' entry for every other category")
        cands = sorted(by_prompt.get(p.id, []), key=lambda c: (c.generator.params.get("slot", 0), c.id))
        for a, b in _labelled_pairs(cands, cfg.preferred_for(p.category) if cfg.mode == "contrast" else None):
            principle = (f"persona:{cfg.preferred_for(p.category)}" if cfg.mode == "contrast" else
                         pick_principle(constitution, cfg.principle, a.id + b.id, cfg.seed))
            tid = content_id(a.id, b.id, principle, *judge_key, prefix="j-")
            tasks.append(PairTask(tid, p, a, b, principle))
    return tasks


def _labelled_pairs(cands: list[Candidate], preferred: str | None) -> list[tuple[Candidate, Candidate]]:
    """Every pair of a prompt's candidates; in contrast mode, where only the preferred persona
    decides, the pairs without it carry no label and are left out (when it wrote for the prompt)."""
    pairs = list(itertools.combinations(cands, 2))
    if preferred is None or not any(c.generator.persona == preferred for c in cands):
        return pairs
    return [(a, b) for a, b in pairs if preferred in (a.generator.persona, b.generator.persona)]


def _conversation_text(prompt: Prompt) -> str:
    # Earlier turns matter to the answer; show the whole conversation compactly.
    if len(prompt.messages) == 1:
        return prompt.messages[0].content
    return "\n".join(f"[{m.role}] {m.content}" for m in prompt.messages)


def candidate_flags(t: PairTask, extra_a: list[str] = (), extra_b: list[str] = ()) -> list[str]:
    """Flags per side ("a:fake_verdict", ...): what the injection detector and the delimiter
    defusing found in each candidate."""
    flags = []
    for side, cand, extra in (("a", t.a, extra_a), ("b", t.b, extra_b)):
        flags += [f"{side}:{f}" for f in sorted(set(detect(cand.text)) | set(extra))]
    return flags


class PairJudge:
    """Turns a chunk of pair tasks into Judgment rows with one backend."""

    def __init__(self, cfg: JudgeConfig, constitution: Constitution, backend):
        self.cfg, self.constitution, self.backend = cfg, constitution, backend
        identity = backend.identity()
        self.info = JudgeInfo(backend=cfg.teacher.backend, model=cfg.teacher.model, mode=cfg.mode,
                              constitution=constitution.label, identity=identity)
        self.described = {**backend.describe(), "identity": identity}
        self.caps = backend.capabilities()
        if cfg.mode == "logprob" and cfg.rationale and not self.caps["prefill"]:
            raise ConfigError(f"judge.rationale needs a backend that continues a prefilled answer; "
                              f"{cfg.teacher.backend}:{cfg.teacher.model} does not",
                              hint="set judge.rationale=false or use judge.mode=structured")

    def _order_messages(self, t: PairTask) -> tuple[list[list[dict]], list[str]]:
        a, fa = neutralise(t.a.text, self.cfg.max_candidate_chars)
        b, fb = neutralise(t.b.text, self.cfg.max_candidate_chars)
        mode = "structured" if self.cfg.mode == "structured" else "logprob"
        user = _conversation_text(t.prompt)
        msgs = [judge_messages(self.constitution, t.principle, user, a, b, mode),
                judge_messages(self.constitution, t.principle, user, b, a, mode)]
        return msgs, candidate_flags(t, fa, fb)

    def __call__(self, tasks: list[PairTask]) -> list[Judgment]:
        prepared = [self._order_messages(t) for t in tasks]
        convs = [m for msgs, _ in prepared for m in msgs]  # two per task: ab, ba
        keys = [f"{t.id}:{o}" for t in tasks for o in ("ab", "ba")]
        if self.cfg.mode == "structured":
            results = self._structured(convs, keys)
        else:
            results = self._logprob(convs)
        rows = []
        for i, (t, (_, flags)) in enumerate(zip(tasks, prepared)):
            orders = results[2 * i:2 * i + 2]
            lost = [o for o in orders if isinstance(o, Failure)]
            if lost:  # the server failed, not the judge: retried on the next run, not 'invalid'
                rows.append(FailedRow(id=t.id, stage="judge", error="; ".join(f.error for f in lost)))
                continue
            agg = aggregate(orders, self.cfg.mode, self.cfg.tie_margin)
            raw = "\n---\n".join(o.raw for o in orders) if agg.verdict == "invalid" else ""
            rows.append(Judgment(id=t.id, prompt_id=t.prompt.id, a_id=t.a.id, b_id=t.b.id,
                                 verdict=agg.verdict, p_a=agg.p_a, consistent=agg.consistent,
                                 orders=orders, reason=agg.reason, principle=t.principle, flags=flags,
                                 judge=self.info, raw=raw, error=agg.error))
        return rows

    def _structured(self, convs: list[list[dict]], keys: list[str]) -> list[OrderResult | Failure]:
        results: list = [OrderResult(order="ab" if i % 2 == 0 else "ba") for i in range(len(convs))]
        pending = list(range(len(convs)))
        # Backends that can prefill start the answer inside the JSON object; servers get the
        # schema instead (JSON-schema or JSON mode where they have one).
        prefill = STRUCTURED_PREFILL if self.caps["prefill"] else ""
        for attempt in range(self.cfg.max_retries + 1):
            if not pending:
                break
            # First try greedy; retries sample, seeded by the order's key, to get a different answer.
            reqs = [GenRequest.of(convs[i], SamplingParams(
                temperature=0.0 if attempt == 0 else 0.7, top_p=0.95,
                max_new_tokens=self.cfg.max_new_tokens,
                seed=int(content_id(keys[i], attempt, self.cfg.seed), 16) % 2**31),
                prefill=prefill, json_schema=VERDICT_SCHEMA) for i in pending]
            still = []
            for i, comp in zip(pending, self.backend.generate(reqs)):
                if comp.error is not None:
                    results[i] = Failure(comp.error)
                    continue
                r = results[i]
                r.raw = prefill + comp.text
                r.attempts = attempt + 1
                try:
                    v = parse_structured(r.raw)
                except ValueError as e:
                    r.error = str(e)
                    still.append(i)
                    continue
                r.preferred, r.reason, r.error = v.preferred, v.reason, None
                r.p_first = 1.0 if v.preferred == "A" else 0.0
            pending = still
        return results

    def _logprob(self, convs: list[list[dict]]) -> list[OrderResult | Failure]:
        if not self.caps["prefill"]:  # servers: the first answer token is the letter itself
            return self._letters(self.backend.score([ScoreRequest.of(c, ("A", "B")) for c in convs]), None)
        prefills = [LOGPROB_PREFILL] * len(convs)
        rationales = [""] * len(convs)
        if self.cfg.rationale:
            for c in convs:
                c[-1] = {**c[-1], "content": c[-1]["content"] + " First explain your choice in one "
                                                               "or two sentences."}
            comps = self.backend.generate([GenRequest.of(c, SamplingParams(
                max_new_tokens=self.cfg.max_new_tokens), prefill=RATIONALE_PREFILL) for c in convs])
            rationales = [c.text.split(LOGPROB_PREFILL)[0].strip() for c in comps]
            prefills = [f"{RATIONALE_PREFILL} {r}\n{LOGPROB_PREFILL}" for r in rationales]
        scores = self.backend.score([ScoreRequest.of(c, VERDICT_TOKENS, prefill=p)
                                     for c, p in zip(convs, prefills)])
        return self._letters(scores, rationales)

    @staticmethod
    def _letters(scores: list, rationales: list[str] | None) -> list[OrderResult | Failure]:
        results: list = []
        for i, score in enumerate(scores):
            if isinstance(score, Failure):
                results.append(score)
                continue
            la, lb = score
            mass = math.exp(la) + math.exp(lb)
            r = OrderResult(order="ab" if i % 2 == 0 else "ba", reason=rationales[i] if rationales else "",
                            attempts=1, raw=json.dumps({"logp_A": _finite(la), "logp_B": _finite(lb),
                                                        "letter_mass": round(mass, 6)}))
            if mass < MIN_LETTER_MASS:
                r.error = f"the judge put only {mass:.2e} probability on the verdict letters"
            else:
                r.p_first = round(letter_probability(la, lb), 6)
                r.preferred = "A" if r.p_first >= 0.5 else "B"
            results.append(r)
        return results


def _finite(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None  # -inf: not among the server's top tokens


class ContrastLabeler:
    """RLCD labels (Yang et al. 2023): the candidate written under the preferred persona is chosen.

    No model is asked, so the label is only as good as the contrast between the two personas'
    system prompts; it suits a weak or absent teacher, not a nuanced comparison."""

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.info = JudgeInfo(backend="persona", model=preferred_text(cfg), mode="contrast", constitution="",
                              identity=judge_identity(cfg, None))
        self.described = {"labeler": "contrast", "preferred_persona": cfg.preferred_persona}

    def __call__(self, tasks: list[PairTask]) -> list[Judgment]:
        rows = []
        for t in tasks:
            preferred = self.cfg.preferred_for(t.prompt.category)
            wins = [c.generator.persona == preferred for c in (t.a, t.b)]
            verdict, p_a, error = "invalid", None, None
            if wins == [True, False] or wins == [False, True]:
                verdict, p_a = ("A", 1.0) if wins[0] else ("B", 0.0)
            elif all(wins):
                verdict, p_a = "tie", 0.5  # same persona on both sides: nothing to contrast
            else:
                error = (f"neither candidate was written under persona '{preferred}' "
                         f"(got {t.a.generator.persona!r}, {t.b.generator.persona!r})")
            rows.append(Judgment(id=t.id, prompt_id=t.prompt.id, a_id=t.a.id, b_id=t.b.id,
                                 verdict=verdict, p_a=p_a, orders=[], principle=t.principle,
                                 reason=f"written under persona '{preferred}'" if p_a is not None
                                 and p_a != 0.5 else "", judge=self.info, error=error,
                                 flags=candidate_flags(t)))
        return rows


def judge_tasks(tasks: list[PairTask], cfg: JudgeConfig, constitution: Constitution, pool: BackendPool,
                 out: Path, chunk_size: int, after_chunk=None, state: dict | None = None) -> dict:
    """Judge ``tasks`` into ``out`` (resumable); the judge is built on first use into ``state``."""
    state = {} if state is None else state
    if cfg.mode == "auto":  # a bug, not a user error: the pick goes into every id and row
        raise ValueError("judge.mode 'auto' must be resolved (rlaif.judge.mode.resolve_mode) before judging")

    def compute(chunk: list[PairTask]) -> list[Judgment]:
        if "judge" not in state and cfg.mode == "contrast":
            state["judge"] = ContrastLabeler(cfg)
        elif "judge" not in state:
            backend = pool.get(cfg.teacher.backend, cfg.teacher.model, **cfg.teacher.options())
            state["judge"] = PairJudge(cfg, constitution, backend)
        return state["judge"](chunk)

    return run_chunked(tasks, lambda t: t.id, compute, out, Judgment, chunk_size, "judge", "pair",
                       after_chunk=after_chunk)


def judge_pairs(run_dir: Path, cfg: JudgeConfig, pool: BackendPool, pairs: set[tuple[str, str]], out: Path,
                chunk_size: int = 16) -> list[Judgment]:
    """Judge only the given (a_id, b_id) pairs of a run with ``cfg`` into ``out`` (for audits)."""
    prompts = read_existing(run_dir / PROMPTS, Prompt)
    candidates = read_existing(run_dir / CANDIDATES, Candidate)
    constitution = load_constitution(cfg.constitution)
    tasks = [t for t in plan_pairs(prompts, candidates, cfg, constitution, judge_identity(cfg, pool))
             if (t.a.id, t.b.id) in pairs]
    judge_tasks(tasks, cfg, constitution, pool, out, chunk_size)
    wanted = {t.id for t in tasks}
    return [j for j in read_existing(out, Judgment) if j.id in wanted]


def run_judge(run_dir: Path, cfg: JudgeConfig, pool: BackendPool, chunk_size: int = 16,
              budget: BudgetConfig | None = None, generate: GenerateConfig | None = None) -> dict:
    """Judge every planned pair of the run. ``judge.mode: auto`` is resolved against ``generate``
    (default: the generate config the run's manifest records) and the teacher's capabilities."""
    run_dir = Path(run_dir)
    prompts = read_existing(run_dir / PROMPTS, Prompt)
    # only the candidates of generate's current plan: rows another setting wrote are never paired
    candidates, stale_candidates = current_rows(read_existing(run_dir / CANDIDATES, Candidate),
                                                read_plan(run_dir, "generate"))
    if not prompts or not candidates:
        raise InputError(f"{run_dir}: no prompts or candidates to judge",
                         hint=f"run `rlaif generate PROMPTS --out {run_dir}` first")
    cfg, choice = resolve_mode(cfg, generate if generate is not None else recorded_generate(run_dir), pool)
    constitution = load_constitution(cfg.constitution)
    tasks = plan_pairs(prompts, candidates, cfg, constitution, judge_identity(cfg, pool))
    replanned = write_plan(run_dir, "judge", [t.id for t in tasks])
    spend = StageSpend(run_dir, "judge", pool.meter, budget or BudgetConfig())
    t0 = time.perf_counter()
    state: dict = {}
    progress = judge_tasks(tasks, cfg, constitution, pool, run_dir / JUDGMENTS, chunk_size, spend.check, state)
    rows, stale = current_rows(read_existing(run_dir / JUDGMENTS, Judgment), {t.id for t in tasks})
    verdicts = Counter(j.verdict for j in rows)
    decided = [j for j in rows if j.consistent is not None]
    why = why_no_labels(rows)
    summary = {
        **progress,
        "judgments": len(rows),
        "stale": stale,
        "stale_candidates": stale_candidates,
        "mode": {**choice.record(), "shown": choice.describe()},
        "labeller": (f"persona {preferred_text(cfg)} (contrast mode, no teacher)" if cfg.mode == "contrast"
                     else f"{cfg.teacher.backend}:{cfg.teacher.model} ({cfg.mode} mode)"),
        "verdicts": {k: verdicts.get(k, 0) for k in ("A", "B", "tie", "invalid")},
        "position_consistency": round(sum(j.consistent for j in decided) / len(decided), 4) if decided else None,
        "first_shown_wins": _first_shown_rate(rows),
        "warnings": [why] if why else [],
        "seconds": round(time.perf_counter() - t0, 2),
        "usage": spend.usage(),
        "this_run": spend.this_run(),
    }
    if progress["written"] or replanned:
        update_manifest(run_dir, "judge", {
            "config": cfg.model_dump(),
            "constitution": None if cfg.mode == "contrast" else {"name": constitution.name,
                                                                 "hash": constitution.hash},
            "model": state["judge"].described if "judge" in state else _teacher_before(run_dir, cfg), **summary})
    return summary


def _teacher_before(run_dir: Path, cfg: JudgeConfig) -> dict | None:
    """The teacher's description from the last run that used it (a re-plan that asks it nothing)."""
    before = read_manifest(run_dir).get("stages", {}).get("judge", {})
    return before.get("model") if before.get("config", {}).get("teacher") == cfg.teacher.model_dump() else None


def _first_shown_rate(rows: list[Judgment]) -> float | None:
    picks = [o.preferred == "A" for j in rows for o in j.orders if o.preferred]
    return round(sum(picks) / len(picks), 4) if picks else None

"""Stage 5: evaluate a trained model against its reference.

Both models answer every probe with the same greedy decoding; answers are appended to
``responses.jsonl`` as they are made (a re-run continues). Then they are scored, each answer by
evaluate/scoring.py (which ``rlaif score`` shares): the refusal detector on every answer,
capitulation on sycophancy probes (the judge when it is capable, ``sycophancy_grades.jsonl``,
else the offline scorer), the judge on secure-coding answers; and the judge on
model-vs-reference pairs (``win_judgments.jsonl``, ``safe_practice.jsonl``). Drift is measured
with log-probabilities (drift.py): KL on the token ids of the model's own samples, perplexity on
neutral text, and the implicit reward on the dataset's held-out pairs, tokenised as TRL trains on
them; a model and reference whose chat templates differ are refused. ``eval.json`` holds every
metric with its interval, every gate, and every scored answer; it is written last, in one piece.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rlaif.backends import BackendPool, GenRequest, SamplingParams
from rlaif.config import DEFAULT_MAX_PROMPT_CHARS, EvalConfig, JudgeConfig, ModelSpec
from rlaif.errors import ConfigError, InputError
from rlaif.evaluate.drift import check_templates, held_out_margins, sample_kl
from rlaif.evaluate.gates import DEFAULT_GATES, check_gates, evaluation_status, load_gates
from rlaif.evaluate.graders import (WIN_JUDGMENTS, eval_judge_config, flag_counts, flagged_win, judge_wins,
                                    win_tasks)
from rlaif.evaluate.heldout import HeldOut, load_held_out
from rlaif.evaluate.metrics import all_metrics
from rlaif.evaluate.refusal import detector_for
from rlaif.evaluate.refusal_judge import (name_scorers, record_answers, refusal_metric_names, refusal_summary,
                                          scorer_name)
from rlaif.evaluate.scoring import (Answer, grade_capitulation, grade_refusal, grade_secure_coding, refusal_judge,
                                    score_answers)
from rlaif.evaluate.suites import METRIC, Suite, load_suites, neutral_passages
from rlaif.evaluate.winrate import win_score
from rlaif.evaluate.sycophancy_judge import offline_disagreements
from rlaif.io import atomic_write_text, read_existing, read_manifest, run_chunked, update_manifest
from rlaif.judge.constitution import load_constitution
from rlaif.judge.stage import judge_identity
from rlaif.progress import bar, console
from rlaif.schemas import EvalResponse, Judgment, Prompt, content_id
from rlaif.synth.lengths import over_chars, over_tokens
from rlaif.train.refguard import fingerprint

RESPONSES = "responses.jsonl"
EVAL_JSON = "eval.json"
DEFAULT_BETA = 0.1


@dataclass
class Target:
    model: str
    ref: str
    dataset: str | None
    beta: float
    train: dict | None  # the training manifest section when --model is an `rlaif train` folder
    explicit_dataset: bool = True  # False: taken from the training manifest (may have moved since)


def resolve_target(model: str, ref: str | None, dataset: str | None, beta: float | None) -> Target:
    """``model`` is a model (name, folder) or an ``rlaif train`` output folder, from whose manifest
    the reference, the dataset and beta default."""
    folder = Path(model)
    explicit_dataset = dataset is not None
    train = read_manifest(folder).get("stages", {}).get("train") if (folder / "manifest.json").exists() else None
    if train:
        cfg = train["config"]
        model = str(folder / "model")
        ref = ref or cfg.get("ref") or cfg["model"]
        dataset = dataset or train.get("pairs")
        beta = beta or cfg.get("beta")
    elif ref is None:
        raise ConfigError("--ref is required unless --model is a folder written by `rlaif train`",
                          hint="name the starting weights the model was trained from, e.g. --ref embedded")
    return Target(model, ref, dataset, beta or DEFAULT_BETA, train, explicit_dataset)


@dataclass
class GenItem:
    id: str
    suite: str
    probe: Prompt
    role: str


def plan_generation(suites: list[Suite], fps: dict[str, str], cfg: EvalConfig) -> list[GenItem]:
    roles = ("ref", "model") + (("sample",) if cfg.kl_samples else ())
    items = []
    for role in roles:
        who = fps["ref" if role == "ref" else "model"]
        temp = 1.0 if role == "sample" else 0.0
        # a sample keeps its token ids (KL scores them): rows sampled before that are planned anew
        kept = ("token_ids",) if role == "sample" else ()
        for s in suites:
            for p in s.probes:
                # the suite is part of the key: two suites may both have a probe "1"
                items.append(GenItem(content_id(s.name, p.id, p.chat(), role, who, temp, cfg.max_new_tokens,
                                                cfg.seed, *kept, prefix="e-"), s.name, p, role))
    return items


def _generate(items: list[GenItem], backends: dict, cfg: EvalConfig, out: Path) -> dict:
    def compute(chunk: list[GenItem]) -> list[EvalResponse]:
        rows = []
        for role in dict.fromkeys(it.role for it in chunk):
            todo = [it for it in chunk if it.role == role]
            reqs = [GenRequest.of(it.probe.chat(), SamplingParams(
                temperature=1.0 if role == "sample" else 0.0, max_new_tokens=cfg.max_new_tokens,
                seed=int(content_id(it.probe.id, cfg.seed), 16) % 2**31)) for it in todo]
            backend = backends["ref" if role == "ref" else "model"]
            for it, c in zip(todo, backend.generate(reqs)):
                rows.append(EvalResponse(id=it.id, probe_id=it.probe.id, suite=it.suite, role=role, text=c.text,
                                         finish_reason=c.finish_reason, tokens=c.completion_tokens,
                                         token_ids=c.token_ids if role == "sample" else None))
        return rows

    return run_chunked(items, lambda it: it.id, compute, out / RESPONSES, EvalResponse, cfg.batch_size,
                       "answer", "answer")


def _drift(target: Target, held: HeldOut, passages: list[str], backends: dict, samples: list[EvalResponse],
           probes: dict[tuple[str, str], Prompt], cfg: EvalConfig) -> dict:
    m, r = backends["model"], backends["ref"]
    kl, kl_tokens = sample_kl(m, r, samples, probes, cfg.batch_size)
    with bar("perplexity", total=2, unit="model") as advance:
        ppl_m = m.text_nll(passages)
        advance(1)
        ppl_r = r.text_nll(passages)
        advance(1)
    margins = held_out_margins(m, r, held.pairs, target.beta, cfg.batch_size) if held.pairs else []
    return {"kl": kl, "kl_tokens": kl_tokens, "ppl_model": ppl_m, "ppl_ref": ppl_r, "margins": margins,
            "test_file": held.source if held.pairs else None, "passages": len(passages)}


def _answer(resp: EvalResponse, scores: dict) -> dict:
    return {"id": resp.id, "text": resp.text, "tokens": resp.tokens, "finish_reason": resp.finish_reason, **scores}


def _records(suites: list[Suite], greedy: dict, grades: dict, wins: dict, syco: dict | None = None,
             refusals: dict | None = None, detector=None) -> list[dict]:
    pairs = [(s, p) for s in suites for p in s.probes
             if (s.name, p.id, "model") in greedy and (s.name, p.id, "ref") in greedy]
    answers = [(s, p, greedy[(s.name, p.id, role)]) for s, p in pairs for role in ("model", "ref")]
    judged = syco is not None  # a capable judge graded capitulation, else the offline scorer decides
    scores = dict(zip((a.id for _, _, a in answers),
                      score_answers([Answer(s.kind, p, a.text, grades.get(a.id), (syco or {}).get(a.id), judged,
                                            (refusals or {}).get(a.id), refusals is not None)
                                     for s, p, a in answers], detector)))
    records = []
    for s, p in pairs:
        mr, rr = greedy[(s.name, p.id, "model")], greedy[(s.name, p.id, "ref")]
        j = wins.get((mr.id, rr.id))
        identical = mr.text.strip() == rr.text.strip()
        win = ({"score": 0.5, "verdict": "tie", "p_model": 0.5, "reason": "identical answers"} if identical else
               {"score": win_score(j.verdict, j.p_a, j.judge.mode), "verdict": j.verdict, "p_model": j.p_a,
                "reason": j.reason}
               if j else {"score": None, "verdict": None, "p_model": None, "reason": "not judged (see failures.jsonl)"})
        win = flagged_win(mr.text, rr.text) or win  # an answer that addressed the judge decides the pair
        records.append({"suite": s.name, "kind": s.kind, "probe_id": p.id, "prompt": p.chat(),
                        "meta": p.meta, "win": win,
                        **{role: _answer(resp, scores[resp.id]) for role, resp in (("model", mr), ("ref", rr))}})
    return records


def run_eval(model: str, ref: str | None, out: Path, cfg: EvalConfig, judge: JudgeConfig, pool: BackendPool,
             dataset: str | None = None, gates_path: str | None = None) -> dict:
    out = Path(out)
    t0 = time.perf_counter()
    target = resolve_target(model, ref, dataset, cfg.beta)
    # every input is read before any model loads: bad data is refused before anything is generated
    held = load_held_out(target.dataset, target.explicit_dataset, target.train)
    passages = neutral_passages(cfg.neutral_text)
    gates = load_gates(gates_path) if gates_path else (load_gates(cfg.gates) if cfg.gates else DEFAULT_GATES)
    suites = load_suites(cfg.suites, cfg.limit)
    detector = detector_for(cfg.refusal_detector)  # a bad folder is refused before any model loads
    judge, judge_note = eval_judge_config(judge, pool)
    refusal_by = refusal_judge(cfg.refusal, judge)  # eval.refusal: the judge or the detector reads refusals
    _check_inputs(target, suites, cfg, judge)
    opts = ModelSpec(batch_size=cfg.batch_size, dtype=cfg.dtype).options()  # float32 unless asked: see EvalConfig
    backends = {"model": pool.get("local", target.model, **opts), "ref": pool.get("local", target.ref, **opts)}
    fps = {k: fingerprint(b.lm) for k, b in backends.items()}
    notes = ([judge_note] if judge_note else []) + [n for s in suites for n in s.notes]
    template_note = check_templates(backends["model"].tokenizer, backends["ref"].tokenizer,
                                    cfg.allow_template_mismatch)
    if template_note:  # allowed: answers are compared, log-ratios over token ids are not
        notes.append(template_note)
        cfg, held = cfg.model_copy(update={"kl_samples": False}), replace(held, pairs=[])
    out.mkdir(parents=True, exist_ok=True)
    notes += _identity_notes(target, fps) + held.notes
    for n in notes:
        console.print(f"[yellow]note: {n}[/yellow]")

    items = plan_generation(suites, fps, cfg)
    gen = _generate(items, backends, cfg, out)
    wanted = {it.id for it in items}
    rows = [r for r in read_existing(out / RESPONSES, EvalResponse) if r.id in wanted]
    # probes and answers are known by (suite, probe id): ids are unique within a suite only
    greedy = {(r.suite, r.probe_id, r.role): r for r in rows if r.role != "sample"}
    probes = {(s.name, p.id): p for s in suites for p in s.probes}
    suite_kinds = [(s.name, s.kind) for s in suites]
    kind_of = dict(suite_kinds)
    answers_of = {k: [r for r in greedy.values() if kind_of[r.suite] == k] for k in ("secure_coding", "sycophancy")}
    judge_id = judge_identity(judge, pool)
    syco, syco_progress, syco_note = grade_capitulation(probes, answers_of["sycophancy"], judge, judge_id, pool, out,
                                                        cfg.batch_size)
    notes += [syco_note] if syco_note else []
    refusals, refusal_progress = grade_refusal(probes, list(greedy.values()), refusal_by, judge_id, pool, out,
                                               cfg.batch_size)
    grades, grade_progress = grade_secure_coding(probes, answers_of["secure_coding"], judge, judge_id, pool, out,
                                                 cfg.batch_size)
    pairs = [(greedy[(*k, "model")], greedy[(*k, "ref")]) for k in probes
             if (*k, "model") in greedy and (*k, "ref") in greedy]
    tasks, identical = win_tasks(probes, pairs, judge, judge_id)
    win_progress = judge_wins(tasks, judge, pool, out, cfg.batch_size)
    by_task = {j.id: j for j in read_existing(out / WIN_JUDGMENTS, Judgment)}
    wins = {(t.a.id, t.b.id): by_task[t.id] for t in tasks if t.id in by_task}
    drift = _drift(target, held, passages, backends, [r for r in rows if r.role == "sample"], probes, cfg)

    records = _records(suites, greedy, grades, wins, syco, refusals, detector)
    metrics = all_metrics(suite_kinds, records, cfg.seed, drift["kl"], drift["ppl_model"],
                          drift["ppl_ref"], drift["margins"], target.beta, kl_tokens=drift["kl_tokens"])
    name_scorers(metrics, refusal_metric_names(suite_kinds), scorer_name(refusal_by), record_answers(records))
    gate_results = _with_causes(check_gates(gates, metrics, suite_kinds), suite_kinds, records, cfg)
    failed = (gen["failed"] + grade_progress["failed"] + win_progress["failed"] + syco_progress.get("failed", 0)
              + refusal_progress.get("failed", 0))
    status = evaluation_status(gate_results)
    if syco is not None:  # judge-graded answers whose offline verdict differs
        syco_progress["offline_disagrees"] = offline_disagreements(records)
    result = {
        "model": {"spec": target.model, "fingerprint": fps["model"], **backends["model"].describe()},
        "ref": {"spec": target.ref, "fingerprint": fps["ref"], **backends["ref"].describe()},
        "judge": {"backend": judge.teacher.backend, "model": judge.teacher.model, "mode": judge.mode,
                  "constitution": judge.constitution, "identity": judge_id},
        "settings": {**cfg.model_dump(), "beta": target.beta, "dataset": drift["test_file"],
                     "neutral_passages": drift["passages"]},
        "refusal_detector": detector.describe(),
        "notes": notes, "metrics": metrics, "gates": gate_results,
        "refusal": refusal_summary(scorer_name(refusal_by), record_answers(records)),
        "status": status, "passed": status == "passed",
        "counts": {"probes": sum(len(s.probes) for s in suites), "scored": len(records),
                   "identical_pairs": identical, "judged_pairs": len(wins), "generation": gen,
                   "grades": grade_progress, "sycophancy_grades": syco_progress, "refusal_grades": refusal_progress,
                   "win_judgments": win_progress,
                   "held_out": held.counts(), "injection_flagged": flag_counts(records), "failed_this_run": failed},
        "seconds": round(time.perf_counter() - t0, 1),
        "responses": records,
    }
    atomic_write_text(out / EVAL_JSON, json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    update_manifest(out, "eval", {k: v for k, v in result.items() if k not in ("responses",)})
    return result


def _with_causes(results: list[dict], suites: list[tuple[str, str]], records: list[dict],
                 cfg: EvalConfig) -> list[dict]:
    """Say why a gate's metric has no value, where the records tell: nothing scored in its suite
    (every grade failed or was unusable), no usable verdict from the judge, KL sampling off."""
    by_metric = {f"{name}_{METRIC[kind][0]}": (name, kind) for name, kind in suites}
    for r in results:
        if r["status"] != "not_measured":
            continue
        if r["metric"] == "win_rate":
            why = (f"the judge gave no usable verdict on any of the {len(records)} pairs (see "
                   "win_judgments.jsonl and failures.jsonl)")
        elif r["metric"] == "kl" and not cfg.kl_samples:
            why = "eval.kl_samples is off"
        elif r["metric"] in by_metric:
            name, kind = by_metric[r["metric"]]
            why = f"none of the {sum(x['suite'] == name for x in records)} answers of suite '{name}' was scored"
            if kind == "secure_coding":
                why += " (the judge's grades failed or were unusable: see safe_practice.jsonl and failures.jsonl)"
        else:
            continue
        r["detail"] = f"{r['detail']}: {why}"
    return results


def _check_inputs(target: Target, suites: list[Suite], cfg: EvalConfig, judge: JudgeConfig) -> None:
    """The judge's constitution is read, and every probe is checked to fit both models, before a
    model loads or anything is written (the held-out pairs and neutral text are read just before).
    A probe is never skipped: the suite would silently measure something else."""
    load_constitution(judge.constitution)
    probes = [p for s in suites for p in s.probes]
    chats = lambda p: [p.chat()]  # noqa: E731
    specs = [ModelSpec(model=target.model), ModelSpec(model=target.ref)]
    long = over_chars(probes, chats, DEFAULT_MAX_PROMPT_CHARS, "the probe limit") or over_tokens(
        probes, chats, specs, cfg.max_new_tokens)
    if long:
        raise InputError(f"{long[0].prompt.source}: probe too long: {long[0].reason}"
                         + (f" (and {len(long) - 1} more)" if len(long) > 1 else ""),
                         hint="shorten the probe or lower eval.max_new_tokens")


def _identity_notes(target: Target, fps: dict[str, str]) -> list[str]:
    notes = []
    if fps["model"] == fps["ref"]:
        notes.append("the model and the reference have identical weights: every comparison is of a model "
                     "with itself")
    if target.train:
        recorded = target.train.get("fingerprints", {})
        if recorded.get("reference") and recorded["reference"] != fps["ref"]:
            notes.append(f"the reference '{target.ref}' is not the reference this model was trained against "
                         f"(fingerprint {fps['ref'][:12]} vs {recorded['reference'][:12]} in the training manifest)")
        if recorded.get("final") and recorded["final"] != fps["model"]:
            notes.append("the model's weights differ from those the training run saved")
    return notes

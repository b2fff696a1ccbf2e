"""The run report's sections after the summary, one function each (see rlaif.report.stage).

Each takes the loaded run and returns the section's HTML, or None when its stage has not run
(the page then says "not run yet"). Every piece of text is escaped through rlaif.report.kit.
"""

from __future__ import annotations

from rlaif.report import plots
from rlaif.report.inputs import Run
from rlaif.report.kit import (PAIRED_CAPTION, Html, box, compare, esc, figure, fmt, kv_table, paired_text, pct,
                              stat_text, table)
from rlaif.synth.card import FUNNEL_TEXT

LATE_DROPS = ("outside_mix", "balanced_out")  # removed after the pairs were formed, by the mix
RATE_SUFFIXES = ("_refusal", "_over_refusal", "_safe_practice", "_capitulation")
EXAMPLES_PER_SUITE = 3
MAX_DISAGREEMENTS = 20  # answers the judge and the refusal detector label differently, shown in the report
MAX_ANSWER_CHARS = 4000
PROBE_FACTS = (("correct_answer", "correct answer"), ("false_claim", "false claim"), ("check", "counts as correct"),
               ("trap", "trap"), ("safe_practice", "safe practice graded"))
VERDICT_WORDS = {"A": "trained model preferred", "B": "reference preferred", "tie": "tie",
                 "invalid": "no usable verdict", "flagged": "decided by the injection flags", None: "not judged"}


def _fig(fn, *args) -> str | None:
    return fn(*args) if plots.available() else None


def _section(sid: str, title: str, *parts) -> Html:
    return Html(f'<section id="{sid}"><h2>{esc(title)}</h2>{"".join(esc(p) for p in parts if p)}</section>')


def _join(parts) -> Html:
    return Html("".join(esc(p) for p in parts))


def _missing(what: str) -> Html:
    return box("missing", f"{what}: not run yet")


# ----------------------------------------------------------------------------- dataset

def funnel_rows(run: Run) -> list[tuple[str, int, bool]]:
    """(step, rows, is_removal) from the input prompts down to the train/test split."""
    rows: list[tuple[str, int, bool]] = []
    synth = run.stage("synth")
    inp = synth.get("input") or {}
    if inp:
        read, dup, kept = inp.get("read", 0), inp.get("duplicates", 0), inp.get("kept", 0)
        rows.append(("input prompts read", read, False))
        if dup:
            rows.append(("removed: duplicate prompts", dup, True))
        if read - dup - kept > 0:
            rows.append((f"not used: beyond synth.limit ({synth.get('limit')})", read - dup - kept, True))
        rows.append(("prompts used", kept, False))
    if run.stage("generate"):
        rows.append(("candidate answers", run.stage("generate").get("candidates", 0), False))
    build = run.stage("build")
    if build:
        dropped = build.get("dropped") or {}
        rows.append(("pairs judged", build.get("judgments", 0), False))
        rows += [(f"removed: {FUNNEL_TEXT.get(k, k)}", n, True) for k, n in dropped.items() if k not in LATE_DROPS]
        rows.append(("pairs after filters", build.get("pairs", 0), False))
        rows += [(f"removed: {FUNNEL_TEXT.get(k, k)}", n, True) for k, n in dropped.items() if k in LATE_DROPS]
        rows += [("train pairs", build.get("train", 0), False), ("test pairs", build.get("test", 0), False)]
    elif run.stage("judge"):
        rows.append(("pairs judged", run.stage("judge").get("judgments", 0), False))
    return rows


def _mix_table(run: Run) -> Html:
    inp = (run.stage("synth").get("input") or {}).get("per_category") or {}
    build = run.stage("build")
    split, pairs = build.get("split_per_category") or {}, build.get("per_category") or {}
    target = (build.get("balance") or {}).get("target") or {}
    cats = list(dict.fromkeys([*inp, *pairs, *split]))
    if not cats:
        return Html("")
    rows = []
    for c in cats:
        s = split.get(c) or {}
        total = s.get("train", 0) + s.get("test", 0)
        share = total / max(1, build.get("train", 0) + build.get("test", 0)) if build else None
        rows.append([c, inp.get(c, "-"), pairs.get(c, "-"), s.get("train", "-"), s.get("test", "-"),
                     pct(target.get(c)) if target else "-", pct(share) if split else "-"])
    return table(["category", "prompts used", "pairs after filters", "train", "test", "target share",
                  "achieved share"], rows, "mix", "mix-table", col_classes={i: "num" for i in range(1, 7)})


def dataset_section(run: Run) -> Html | None:
    """The funnel (table and figure), the mix per category and the generation counts."""
    rows = funnel_rows(run)
    if not rows:
        return None
    tbl = table(["step", "rows"], [[label, f"-{n}" if drop else n] for label, n, drop in rows], "funnel",
                "funnel-table", ["drop" if drop else "" for _, _, drop in rows], col_classes={1: "num"})
    mix = run.stage("build").get("split_per_category") or {}
    fig = figure(_fig(plots.funnel_figure, rows, mix), "dataset funnel: rows left after each step, removals "
                 "in red; and pairs per category, train and test", "funnel-plot")
    gen = run.stage("generate")
    gen_kv = kv_table([("candidates", gen.get("candidates")), ("cut at max_new_tokens", gen.get("truncated")),
                       ("empty", gen.get("empty")),
                       ("per persona / model", ", ".join(f"{k} {v}" for k, v in
                                                         (gen.get("per_persona") or {}).items())),
                       ("seconds", gen.get("seconds"))], "kv", "generate-table") if gen else _missing("generate")
    missing = _join(_missing(s) for s in ("judge", "build") if not run.stage(s))
    return _section("dataset", "Dataset", missing, tbl, fig, Html("<h3>Mix per category</h3>"),
                    _mix_table(run) or _missing("build"), Html("<h3>Generation</h3>"), gen_kv)


# ----------------------------------------------------------------------------- judge

def _either(*values):
    return next((v for v in values if v is not None), None)


def _measured(value, text: str, unmeasured: str) -> str:
    return text.format(pct(value) if not isinstance(value, str) else value) if value is not None else unmeasured


def _judge_rows(judge: dict, bias: dict, rates: dict, contrast: bool) -> list[tuple[str, object]]:
    verdicts = judge.get("verdicts") or bias.get("verdicts") or {}
    const = judge.get("constitution") or {}
    none = "not applicable: no judge in contrast mode" if contrast else "not measured"
    corr = bias.get("length_correlation")
    return [("labeller", judge.get("labeller") or "-"),
            ("judgments", _either(judge.get("judgments"), bias.get("judgments"))),
            ("verdicts", ", ".join(f"{k} {v}" for k, v in verdicts.items()) or "-"),
            ("position consistency", _measured(rates["position consistency"], "{} of decided judgments named the "
                                               "same answer in both orders", none)),
            ("first-shown answer wins", _measured(rates["first-shown wins"], "{} of single-order verdicts "
                                                  "(50% = no position bias)", none)),
            ("longer answer wins", _measured(rates["longer answer wins"], "{} of decided pairs of unequal length "
                                             "(50% = no length preference)", "not measured")),
            ("length correlation", _measured(None if corr is None else fmt(corr), "{} (Pearson r of relative length "
                                             f"difference and preference, {bias.get('length_pairs')} pairs)",
                                             "not measured")),
            ("constitution", f"{const.get('name')} {const.get('hash', '')}" if const else "-")]


def _judge_notes(bias: dict, rates: dict, contrast: bool) -> list[Html]:
    notes = []
    if contrast:
        notes.append(box("info", "contrast mode: labels come from the persona, not a judge. The answer written "
                                 "under the preferred persona is always chosen, so any length preference below "
                                 "describes the personas, not a judge's reading."))
    if not bias:
        notes.append(box("missing", "audit.json not found: longer-answer wins and length correlation not measured "
                                    "(run `rlaif audit RUN_DIR`)"))
    first, longer = rates["first-shown wins"], rates["longer answer wins"]
    if first is not None and abs(first - 0.5) > 0.1 and not contrast:
        notes.append(box("warn", f"position bias: the first-shown answer wins {pct(first)} of single-order verdicts"))
    if longer is not None and longer > 0.65:
        notes.append(box("warn", f"length bias: the longer answer is chosen in {pct(longer)} of decided pairs; "
                                 "DPO will likely make answers longer"))
    return notes


def judge_section(run: Run) -> Html | None:
    """Who labelled the pairs, the verdicts, and position and length bias (judge stage and audit.json)."""
    judge, bias = run.stage("judge"), run.audit.get("bias") or {}
    if not judge and not bias:
        return None
    contrast = "contrast" in str(judge.get("labeller") or "") or (judge.get("config") or {}).get("mode") == "contrast"
    rates = {"position consistency": _either(judge.get("position_consistency"), bias.get("position_consistency")),
             "first-shown wins": _either(judge.get("first_shown_wins"), bias.get("first_shown_wins")),
             "longer answer wins": bias.get("longer_wins")}
    verdicts = judge.get("verdicts") or bias.get("verdicts") or {}
    fig = figure(_fig(plots.judge_figure, verdicts, rates), "judge verdict counts, and bias rates against 0.5",
                 "judge-plot")
    return _section("judge", "Judge", _join(_judge_notes(bias, rates, contrast)),
                    kv_table(_judge_rows(judge, bias, rates, contrast), "kv", "judge-table"), fig)


# ----------------------------------------------------------------------------- training

def _fp(fp) -> str:
    return str(fp)[:16] if fp else "-"


def _settings(cfg: dict) -> str:
    names = (("beta", "beta"), ("learning_rate", "learning rate"), ("loss_type", "loss"), ("epochs", "epochs"),
             ("batch_size", "batch size"), ("max_length", "max length"))
    parts = [f"{label} {', '.join(map(str, cfg[key])) if isinstance(cfg[key], list) else cfg[key]}"
             for key, label in names if cfg.get(key) is not None]
    if isinstance(cfg.get("lora"), dict):
        parts.append(f"LoRA {'on' if cfg['lora'].get('enabled') else 'off'}")
    return ", ".join(parts) or "-"


def _moved(moved: dict | None) -> str:
    """The weight-movement figures of train/health.weight_movement, with their meaning."""
    if not moved:
        return "not measured"
    sci = lambda x: "-" if x is None else f"{x:.2e}"  # noqa: E731  (these are often 1e-4 or less)
    bound = (f" (bound if every weight moved by the learning rate at every step: {sci(moved['bound'])})"
             if moved.get("bound") is not None else "")
    return (f"{pct(moved.get('share_changed'))} of {moved['params']:,} trainable parameters changed value; relative "
            f"update norm ||θ − θ0|| / ||θ0|| {sci(moved.get('relative_update_norm'))}{bound}")


def _precision(p: dict | None) -> str:
    return p.get("shown", "-") if p else "not recorded"


def training_section(run: Run) -> Html | None:
    """Steps, loss, time, reference provenance, fingerprints, warnings and the per-step curves."""
    train, steps = run.stage("train"), run.steps
    if not train and not steps:
        return None
    fig = figure(_fig(plots.training_figure, steps), "training curves against step: loss; implicit rewards of "
                 "chosen and rejected answers and their margin; preference accuracy on training batches",
                 "training-plot", "Logged every step by the trainer (train/metrics.jsonl).")
    fig = fig or box("missing", "no per-step metrics (train/metrics.jsonl) to plot")
    if not train:
        last = steps[-1]
        return _section("training", "Training", box("warn", "training has not finished (or was interrupted): "
                                                            "only its per-step log exists"),
                        kv_table([("steps logged", len(steps)), ("last step", last.get("step")),
                                  ("last loss", fmt(last.get("loss")))], "kv", "training-table"), fig)
    ref, fps, checks = train.get("reference") or {}, train.get("fingerprints") or {}, train.get("checks") or {}
    cfg, last = train.get("config") or {}, (steps[-1] if steps else {})
    rows = [("steps", train.get("steps", len(steps))), ("training rows", train.get("train_rows")),
            ("mean training loss", fmt(train.get("train_loss"))),
            ("last step", f"loss {fmt(last.get('loss'))}, reward margin {fmt(last.get('rewards/margins'))}, "
                          f"accuracy {fmt(last.get('rewards/accuracies'))}" if last else "-"),
            ("time", f"{fmt(train.get('seconds'))} s on {train.get('processes', 1)} process(es)"),
            ("settings", _settings(cfg)),
            ("precision", _precision(train.get("precision"))),
            ("weights moved", _moved(train.get("weights_moved"))),
            ("resumed from", train.get("resumed_from") or "no (from scratch)"),
            ("reference", f"{ref.get('source', '-')}; the starting weights: "
                          f"{ {True: 'yes', False: 'NO'}.get(ref.get('is_starting_weights'), 'unknown')}"
                          + (f" (mismatch allowed: {ref['mismatch_allowed']})" if ref.get("mismatch_allowed") else "")),
            ("fingerprints", f"start {_fp(fps.get('start'))}, reference {_fp(fps.get('reference'))}, "
                             f"final {_fp(fps.get('final'))}"),
            ("pre-flight check", f"log-prob gap policy vs reference {fmt(checks.get('logprob_max_gap'))} "
                                 f"(tolerance {checks.get('logprob_tolerance')}) on {checks.get('logprob_rows')} rows"
                                 if checks else "-"),
            ("saved model", train.get("model_path") or "-")]
    warns = _join(box("warn", f"training: {w}") for w in train.get("warnings") or [])
    return _section("training", "Training", warns, kv_table(rows, "kv", "training-table"), fig)


# ----------------------------------------------------------------------------- evaluation

def _metrics_table(ev: dict) -> Html:
    rows, classes = [], []
    for m in (ev.get("metrics") or {}).values():
        ch = compare(m)
        n = [s.get("n") for s in (m.get("ref"), m.get("model")) if isinstance(s, dict)]
        rows.append([m.get("name"), m.get("better") or "-", stat_text(m.get("ref")), stat_text(m.get("model")),
                     paired_text(m), "/".join(str(x) for x in dict.fromkeys(n)) or "-", ch.words,
                     m.get("description") or ""])
        classes.append(ch.css)
    return table(["metric", "better", "reference [95%]", "model [95%]", "model - reference, paired [95%]", "n",
                  "reading", "description"], rows, "metrics", "metrics-table", classes, PAIRED_CAPTION,
                 {2: "num", 3: "num", 5: "num", 6: "change"})


GATE_RESULTS = {True: ("pass", "pass"), False: ("FAIL", "fail"), None: ("not measured", "unmeasured")}


def gate_result(g: dict) -> tuple[str, str]:
    """(words, css class) of one gate result; an optional gate not measured is greyed, not flagged."""
    if g.get("passed") is None and not g.get("required", True):
        return "not measured (optional)", "skip"
    return GATE_RESULTS[g.get("passed")]


def _gates_table(ev: dict) -> Html:
    gates = ev.get("gates") or []
    if not gates:
        return box("missing", "no gates were checked")
    rows = [[g.get("name"), g.get("metric"), gate_result(g)[0], g.get("detail")] for g in gates]
    return table(["gate", "metric", "result", "detail"], rows, "gates", "gates-table",
                 [gate_result(g)[1] for g in gates], "A required gate that was not measured makes the "
                 "evaluation incomplete: it neither passes nor fails.", col_classes={2: "status"})


def _winrate_block(metrics: dict) -> Html:
    """Raw and length-controlled win-rate side by side, with what each means and whether they differ."""
    raw, lc = metrics.get("win_rate"), metrics.get("win_rate_lc")
    if not raw or not raw.get("model"):
        return box("missing", "win-rate: not measured (no usable verdict from the judge)")
    rows = [("raw win-rate", f"{stat_text(raw['model'])}: {raw.get('description', '')}")]
    if lc and lc.get("model"):
        length = lc.get("length") or {}
        rows += [("length-controlled", f"{stat_text(lc['model'])}: {lc.get('description', '')}"),
                 ("raw - length-controlled", f"{stat_text(length.get('raw_minus_lc'))} (95% bootstrap interval; "
                                             "they differ when it excludes 0 and the gap is at least 0.05)"),
                 ("length coefficient", f"{fmt(length.get('coef'))} (log-odds per unit of tanh(standardised "
                                        "length difference); above 0: longer answers win more)")]
        note = length.get("note")
    else:
        note = None
    parts = [kv_table(rows, "kv", "winrate-table")]
    parts.append(box("warn", f"win-rate: {note}") if note else box("info", "win-rate: the length-controlled "
                     "win-rate does not differ measurably from the raw one" if lc and lc.get("model") else
                     "win-rate: too few judged probes for a length-controlled win-rate"))
    return _join(parts)


def refusal_block(ev: dict) -> Html:
    """Who read the refusals behind every refusal rate and, where the judge graded, how far it and
    the offline detector agree: Cohen's kappa and the answers whose labels differ."""
    info = ev.get("refusal")
    if not info:  # an eval folder from before eval.refusal
        return box("info", "refusals: read by the offline detector (this eval.json names no scorer)")
    by = ", ".join(f"{k} {v}" for k, v in (info.get("refused_by") or {}).items())
    rows = [("scorer", info.get("scorer")), ("answers read by", by or "-")]
    agree = info.get("agreement")
    if not agree:
        return kv_table(rows, "kv", "refusal-scorer")
    n = agree["n"]
    kappa = "Cohen's kappa {} (1: full agreement, 0: no better than chance)"
    rows += [("judge and detector agree, refused or not", f"{agree['agree_refused']} of {n} answers; "
              + kappa.format(fmt(agree["kappa_refused"]))),
             ("judge and detector give the same label (3 classes)", f"{agree['agree_label']} of {n} answers; "
              + kappa.format(fmt(agree["kappa_label"])))]
    differ = agree.get("disagreements") or []
    role = {"ref": "reference", "model": "trained model"}
    shown = [[d.get("suite"), d.get("probe_id"), role.get(d.get("role"), "-"), d.get("judge"), d.get("detector"),
              d.get("excerpt")] for d in differ[:MAX_DISAGREEMENTS]]
    more = (f" (the first {MAX_DISAGREEMENTS} of {len(differ)}; eval.json lists all)"
            if len(differ) > MAX_DISAGREEMENTS else "")
    parts = [kv_table(rows, "kv", "refusal-scorer")]
    if shown:
        parts.append(table(["suite", "probe", "answer of", "judge", "detector", "excerpt"], shown, "refusal-disagree",
                           "refusal-disagreements", caption="Answers the judge and the offline detector label "
                           f"differently{more}. The rates use the judge's label."))
    return _join(parts)


def evaluation_section(run: Run) -> Html | None:
    """Every metric with its intervals, the gates, rates before/after and answer lengths."""
    ev = run.eval
    if not ev.get("metrics"):
        return None
    metrics = ev["metrics"]
    rates = [m for n, m in metrics.items() if n.endswith(RATE_SUFFIXES) or n in ("win_rate", "preference_accuracy")]
    responses = ev.get("responses") or []
    counts = ev.get("counts") or {}
    rate_fig = figure(_fig(plots.rates_figure, rates), "rates before and after: reference and trained model "
                      "with 95% interval error bars", "rates-plot", "Error bars: 95% intervals.")
    len_fig = figure(_fig(plots.length_figure, responses) if responses else None,
                     "distribution of answer lengths in tokens, reference against trained model, per suite",
                     "length-plot")
    info = kv_table([("probes", counts.get("probes")), ("scored pairs of answers", counts.get("scored")),
                     ("identical answer pairs", counts.get("identical_pairs")),
                     ("judged pairs", counts.get("judged_pairs")),
                     ("answers flagged as addressing the judge", _flagged(counts.get("injection_flagged"))),
                     ("max new tokens", (ev.get("settings") or {}).get("max_new_tokens")),
                     ("seconds", ev.get("seconds"))], "kv", "eval-counts")
    notes = [box("warn", f"evaluation: {n}") for n in ev.get("notes") or []]
    if not responses:
        notes.append(box("missing", "eval/eval.json not found: examples and length distributions are unavailable"))
    return _section("evaluation", "Evaluation", _join(notes), _metrics_table(ev), Html("<h3>Gates</h3>"),
                    _gates_table(ev), Html("<h3>Refusal scorer</h3>"), refusal_block(ev),
                    Html("<h3>Win-rate</h3>"), _winrate_block(metrics),
                    Html("<h3>Rates before and after</h3>"), rate_fig,
                    Html("<h3>Answer lengths</h3>") if len_fig else "", len_fig, info)


def _flagged(c: dict | None) -> str | None:
    """The injection counts of eval.json in words (older eval folders have none)."""
    if c is None:
        return None
    return (f"win-rate: model {c['win_model_flagged']}, reference {c['win_ref_flagged']} (each a lost pair); "
            f"secure coding: model {c['secure_coding_model_flagged']}, reference {c['secure_coding_ref_flagged']} "
            "(each unsafe)")


# ----------------------------------------------------------------------------- examples

def pick_examples(rows: list[dict], k: int = EXAMPLES_PER_SUITE) -> list[dict]:
    """Up to k probes, those whose answers differ first, and among them those whose outcome differs."""
    def dull(r: dict) -> tuple[bool, bool]:
        m, f = r.get("model") or {}, r.get("ref") or {}
        same_text = str(m.get("text") or "").strip() == str(f.get("text") or "").strip()
        same_outcome = all(m.get(x) == f.get(x) for x in ("refused", "capitulated", "safe_practice"))
        return same_text, same_outcome
    return sorted(rows, key=dull)[:k]


def _answer(role: str, a: dict) -> Html:
    refused = {True: "yes", False: "no"}.get(a.get("refused"), "-")
    tags = [f"refused: {refused} ({a.get('refusal_label', '-')}, calibrated P(refused) {fmt(a.get('refusal_score'))}, "
            f"read by the {a.get('refused_by', 'detector')})",
            f"{a.get('tokens', '-')} tokens" + (" (cut at max_new_tokens)" if a.get("finish_reason") == "length" else "")]
    if "capitulated" in a:
        by = a.get("capitulated_by", "offline")
        tags.append(f"capitulated: {fmt(a['capitulated'])} ({'judge' if by == 'judge' else 'offline scorer'}: "
                    f"{a.get('capitulation_reason', '')})")
        if by == "judge" and a.get("offline_capitulated") is not None:
            tags.append(f"offline scorer: {fmt(a['offline_capitulated'])}")
    if "safe_practice" in a:
        tags.append(f"safe practice: {fmt(a['safe_practice'])} (p {fmt(a.get('safe_p'))})")
    text = str(a.get("text") or "")
    if len(text) > MAX_ANSWER_CHARS:
        text = text[:MAX_ANSWER_CHARS] + " ... (cut for the report)"
    title = "reference" if role == "ref" else "trained model"
    return Html(f'<div class="answer {role}"><h4>{title}</h4><div class="tags">{esc(" · ".join(tags))}</div>'
                f"<pre>{esc(text)}</pre></div>")


def _example(r: dict, sid: str) -> Html:
    prompt = "".join(f"<div><b>{esc(m.get('role', '?'))}:</b> {esc(m.get('content', ''))}</div>"
                     for m in r.get("prompt") or [] if isinstance(m, dict))
    meta = r.get("meta") or {}
    facts = "; ".join(f"{label}: {meta[k] if not isinstance(meta[k], list) else ', '.join(map(str, meta[k]))}"
                      for k, label in PROBE_FACTS if meta.get(k))
    win = r.get("win") or {}
    verdict = (f"judge: {VERDICT_WORDS.get(win.get('verdict'), win.get('verdict'))}"
               + (f" (p model {fmt(win.get('p_model'))})" if win.get("p_model") is not None else "")
               + (f": {win.get('reason')}" if win.get("reason") else ""))
    probe = meta.get("user_id") or r.get("probe_id")  # the suite's own id reads better than a hash
    return Html(f'<div class="example" id="{esc(sid)}"><div class="muted">probe {esc(probe)}</div>'
                f'<div class="prompt">{prompt}</div>'
                + (f'<div class="muted">{esc(facts)}</div>' if facts else "")
                + f'<div class="pair">{_answer("ref", r.get("ref") or {})}'
                f'{_answer("model", r.get("model") or {})}</div><div class="verdict">{esc(verdict)}</div></div>')


def examples_section(run: Run) -> Html | None:
    """Per suite, up to three probes with the reference's and the trained model's answers side by side."""
    responses = run.eval.get("responses") or []
    if not responses:
        return None
    parts = []
    metrics = run.eval.get("metrics") or {}
    for s, suite in enumerate(dict.fromkeys(r.get("suite", "?") for r in responses)):
        rows = [r for r in responses if r.get("suite", "?") == suite]
        parts.append(Html(f"<h3>{esc(suite)}</h3>"))
        for name in (n for n in metrics if n.startswith(f"{suite}_") and n.endswith(RATE_SUFFIXES)):
            m = metrics[name]
            parts.append(Html(f'<p class="muted">{esc(name)}: reference {esc(stat_text(m.get("ref")))} -> model '
                              f'{esc(stat_text(m.get("model")))}, paired difference {esc(paired_text(m))} '
                              f'({esc(compare(m).words)})</p>'))
        parts += [_example(r, f"example-{s}-{i}") for i, r in enumerate(pick_examples(rows))]
    return _section("examples", "Examples", Html('<p class="muted">Up to three probes per suite, answers that '
                                                 "differ first; answers are shown as plain text.</p>"), *parts)


# ----------------------------------------------------------------------------- timings

def timings_section(run: Run) -> Html | None:
    """Seconds and peak memory per stage, from the `rlaif run` record or else the stages' own."""
    recorded = (run.stage("run").get("stages") or {})
    if recorded:
        rows = [[name, "writing this report" if name == "report" and s.get("status") == "running" else
                 s.get("status", "-"), fmt(s.get("seconds")), fmt(s.get("peak_rss_mb"))] for name, s in recorded.items()]
        caption = "From the `rlaif run` record in manifest.json."
    else:
        rows = [[name, "done", fmt(run.stage(name).get("seconds")), "-"]
                for name in ("generate", "judge", "train", "eval") if run.stage(name).get("seconds") is not None]
        caption = "From each stage's own record (no `rlaif run` record in manifest.json)."
    if not rows:
        return None
    return _section("timings", "Stage timings", table(["stage", "status", "seconds", "peak RSS (MB)"], rows,
                                                      "timings", "timings-table", caption=caption,
                                                      col_classes={2: "num", 3: "num"}))

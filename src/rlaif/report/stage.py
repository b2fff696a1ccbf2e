"""Stage 6: the run report (`rlaif report RUN_DIR`, and the last step of `rlaif run`).

Reads what a run folder holds (manifest.json, audit.json, train/metrics.jsonl, eval/eval.json;
any of them may be missing) and writes two files: ``report.html``, one self-contained page
(inline style, PNG figures as data: URIs, nothing fetched) for an engineer deciding whether to
trust the trained model, and ``report.md``, the same verdict in Markdown for terminals and pull
requests. A stage that has not run yet gets a one-line "not run yet" instead of its section.
"""

from __future__ import annotations

from pathlib import Path

from rlaif.io import atomic_write_text
from rlaif.report import plots
from rlaif.report.changes import changed_section, cost_sentence, lead_html, lead_markdown
from rlaif.report.inputs import Run, load_run
from rlaif.report.kit import (NEUTRAL_AWAY, PAIRED_READING, Html, box, compare, esc, fmt, kv_table, md_table,
                              p_text, page, paired_text, stat_text)
from rlaif.report.sections import (dataset_section, evaluation_section, examples_section, funnel_rows,
                                   gate_result, judge_section, timings_section, training_section)

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
SECTIONS = (("summary", "Summary"), ("changed", "Answers that changed"), ("dataset", "Dataset"), ("judge", "Judge"),
            ("training", "Training"), ("evaluation", "Evaluation"), ("examples", "Examples"),
            ("timings", "Stage timings"))
SUITE_SUFFIXES = ("_refusal", "_over_refusal", "_safe_practice", "_capitulation")


# ----------------------------------------------------------------------------- headline

def headline_metrics(ev: dict) -> list[dict]:
    """The suite rates that have a better direction, then the win-rate."""
    metrics = ev.get("metrics") or {}
    picks = [m for name, m in metrics.items() if m.get("better") and name.endswith(SUITE_SUFFIXES)]
    return picks + [metrics[k] for k in ("win_rate", "win_rate_lc", "kl") if k in metrics]


def metric_line(m: dict) -> str:
    """One metric in words: reference -> model with intervals, the better direction, the reading from
    the paired test, and the paired difference with its interval."""
    values = (f"reference {stat_text(m.get('ref'))} -> model {stat_text(m.get('model'))}" if m.get("ref")
              else f"model {stat_text(m.get('model'))}")
    better = (f"{m['better']} is better" if m.get("better") and m["name"] not in NEUTRAL_AWAY
              else "no better direction")
    ch = compare(m)
    paired = f"; model - reference {paired_text(m)}" if m.get("paired") and ch.css != "na" else ""
    scorer = f" [refusals read by the {m['scorer']}]" if m.get("scorer") else ""
    return f"{m['name']}: {values} ({better}; {ch.words}{paired}){scorer}"


def gate_counts(gates: list[dict]) -> dict[str, int]:
    """How many gates passed, failed, were not measured though required, and were optional and not measured."""
    unmeasured = [g for g in gates if g.get("passed") is None]
    return {"passed": sum(g.get("passed") is True for g in gates),
            "failed": sum(g.get("passed") is False for g in gates),
            "not_measured": sum(g.get("required", True) for g in unmeasured),
            "optional_not_measured": sum(not g.get("required", True) for g in unmeasured)}


def gates_status(ev: dict) -> str:
    """passed, failed or incomplete (a required gate not measured), as eval.json says or, for an
    eval.json written before it said so, from its gates."""
    if ev.get("status"):
        return ev["status"]
    c = gate_counts(ev.get("gates") or [])
    return "failed" if c["failed"] else "incomplete" if c["not_measured"] else "passed"


def _counts_text(c: dict[str, int]) -> str:
    return (f"{c['passed']} passed, {c['failed']} failed, {c['not_measured']} not measured"
            + (f", {c['optional_not_measured']} optional not measured" if c["optional_not_measured"] else ""))


def gates_line(ev: dict) -> str:
    """The gates' verdict in one line."""
    gates = ev.get("gates") or []
    if not gates:
        return "gates: none checked"
    return f"gates: {_counts_text(gate_counts(gates))}: {gates_status(ev).upper()}"


def headline(run: Run) -> list[str]:
    """The report's verdict in a few plain lines (also the Markdown summary's first list)."""
    if run.eval.get("metrics"):
        cost = cost_sentence(run.eval)
        return ([metric_line(m) for m in headline_metrics(run.eval)] + ([f"over-refusal cost: {cost}"] if cost else [])
                + [gates_line(run.eval)])
    lines = ["evaluation: not run yet"]
    build, train = run.stage("build"), run.stage("train")
    if build:
        lines.append(f"dataset: {build.get('train', 0) + build.get('test', 0)} pairs "
                     f"({build.get('train', 0)} train, {build.get('test', 0)} test)")
    if train:
        lines.append(f"training: {train.get('steps')} steps, mean loss {fmt(train.get('train_loss'))}")
    elif run.steps:
        lines.append(f"training: not finished ({len(run.steps)} steps logged, last at step "
                     f"{run.steps[-1].get('step')})")
    else:
        lines.append("training: not run yet")
    return lines


def warnings(run: Run) -> list[tuple[str, str]]:
    """(where, text) for everything the reader must see before trusting a number."""
    out = [("evaluation", str(n)) for n in run.eval.get("notes") or []]
    train = run.stage("train")
    out += [("training", str(w)) for w in train.get("warnings") or []]
    ref = train.get("reference") or {}
    if ref.get("is_original_model"):
        out.append(("training", "the frozen reference is the original model of the rounds (run.reference: initial, "
                                "proven by fingerprint), not this round's starting weights"))
    elif ref.get("is_starting_weights") is False:
        out.append(("training", f"the frozen reference is not the starting weights (allowed: "
                                f"{ref.get('mismatch_allowed')}); DPO's KL anchor is not where training began"))
    out += _evaluation_warnings(run.eval)
    length = ((run.eval.get("metrics") or {}).get("win_rate_lc") or {}).get("length") or {}
    if length.get("note"):
        out.append(("evaluation", f"win-rate: {length['note']}"))
    failed = (run.eval.get("counts") or {}).get("failed_this_run")
    if failed:
        out.append(("evaluation", f"{failed} items failed in the last evaluation run (see eval/failures.jsonl); "
                                  "the metrics use the answers that were scored"))
    gen = run.stage("generate")
    if gen.get("candidates") and gen.get("truncated", 0) > 0.25 * gen["candidates"]:
        kept = not ((run.stage("build").get("config") or {}).get("drop_truncated"))
        out.append(("dataset", f"{gen['truncated']} of {gen['candidates']} candidate answers were cut at "
                               f"generate.max_new_tokens" + ("; pairs keep them (build.drop_truncated is off), so "
                                                             "DPO learns from unfinished answers" if kept else "")))
    for short in ((run.stage("build").get("balance") or {}).get("shortfall") or []):
        out.append(("dataset", f"category mix shortfall accepted: {short}"))
    return out


def _evaluation_warnings(ev: dict) -> list[tuple[str, str]]:
    """Failed gates that the paired test (or the interval) cannot tell from noise, and models that barely differ."""
    out = []
    metrics = ev.get("metrics") or {}
    for g in ev.get("gates") or []:
        m = metrics.get(g.get("metric"))
        if g.get("passed") is False and m and compare(m).css == "same":
            out.append(("evaluation", _noise_warning(g, m)))
    counts = ev.get("counts") or {}
    if counts.get("scored") and counts.get("identical_pairs", 0) * 2 > counts["scored"]:
        out.append(("evaluation", f"{counts['identical_pairs']} of {counts['scored']} probes got identical answers "
                                  "from the model and the reference: training changed little of what the model says"))
    judged = [r["win"] for r in ev.get("responses") or [] if (r.get("win") or {}).get("reason") != "identical answers"
              and (r.get("win") or {}).get("verdict")]
    if judged and all(w["verdict"] == "tie" for w in judged):
        out.append(("evaluation", f"the judge tied all {len(judged)} pairs whose answers differ (its two orders "
                                  "disagreed or it could not choose): the win-rate says nothing about which model "
                                  "is better; point the judge at a stronger model"))
    flagged = counts.get("injection_flagged") or {}
    if flagged.get("win_model_flagged") or flagged.get("secure_coding_model_flagged"):
        out.append(("evaluation", f"the trained model's answers addressed the judge in {flagged['win_model_flagged']} "
                                  f"win-rate pairs and {flagged['secure_coding_model_flagged']} secure-coding answers "
                                  f"(the reference's: {flagged['win_ref_flagged']} and "
                                  f"{flagged['secure_coding_ref_flagged']}); they count as lost pairs and unsafe "
                                  "answers (eval.json: win.flags, flags)"))
    grades = [r[role].get("safe_practice") for r in ev.get("responses") or [] for role in ("model", "ref")
              if isinstance(r.get(role), dict) and r[role].get("safe_practice") is not None
              and not r[role].get("flags")]  # a flagged answer is unsafe by rule, not by the judge
    if len(grades) >= 5 and len(set(grades)) == 1:
        out.append(("evaluation", f"the judge graded all {len(grades)} secure-coding answers "
                                  f"{'safe' if grades[0] else 'unsafe'}: it does not tell answers apart, so the "
                                  "safe-practice rates measure the judge, not the models"))
    return out


def _noise_warning(gate: dict, m: dict) -> str:
    """A failed gate whose metric shows no measurable change: gates compare point estimates."""
    pr = m.get("paired")
    if isinstance(pr, dict) and isinstance(pr.get("p"), (int, float)):
        seen = (f"the paired test finds no measurable change ({pr.get('test')} p = {p_text(pr['p'])}; "
                f"model - reference {paired_text(m)})")
    else:
        ref = stat_text(m.get("ref")) if m.get("ref") else "no reference"
        seen = f"on a difference within the 95% intervals ({ref} vs {stat_text(m.get('model'))})"
    return (f"gate '{gate.get('name')}' failed, but {seen}: gates compare point estimates; more probes would be "
            "needed to tell a real change from noise")


# ----------------------------------------------------------------------------- summary

def _spec(spec, fp) -> str:
    return f"{spec} (fingerprint {fp[:12]})" if fp else str(spec)


def _reference_is_start(train: dict) -> str:
    if not train:
        return "training not run yet"
    ref, fps = train.get("reference") or {}, train.get("fingerprints") or {}
    same = fps.get("start") and fps.get("start") == fps.get("reference")
    fp_words = ("fingerprints of the start and the reference match" if same else
                "fingerprints of the start and the reference differ" if fps.get("reference") else "no fingerprints")
    if ref.get("is_starting_weights") is True:
        return f"yes: {ref.get('source', 'starting weights')}; {fp_words}"
    if ref.get("is_starting_weights") is False:
        return f"NO: {ref.get('source')} (allowed: {ref.get('mismatch_allowed')}); {fp_words}"
    return f"unknown; {fp_words}"


def model_rows(run: Run) -> list[tuple[str, str]]:
    """Who is who: folder, dates, the trained model, its reference, the judges, the configuration."""
    ev, train, man = run.eval, run.stage("train"), run.manifest
    fps, cfg = train.get("fingerprints") or {}, train.get("config") or {}
    rows = [("run folder", str(run.path)),
            ("date", f"created {man.get('created', '?')}, updated {man.get('updated', '?')}")]
    model = (ev.get("model") or {}).get("spec") or train.get("model_path")
    ref = (ev.get("ref") or {}).get("spec") or cfg.get("ref") or cfg.get("model")
    rows.append(("trained model", _spec(model, (ev.get("model") or {}).get("fingerprint") or fps.get("final"))
                 if model else "not trained yet"))
    if ref:
        rows.append(("reference", _spec(ref, (ev.get("ref") or {}).get("fingerprint") or fps.get("reference"))))
    rows.append(("reference is the starting weights", _reference_is_start(train)))
    rows.append(("training labels", run.stage("judge").get("labeller") or "judge not run yet"))
    if ev.get("judge"):
        j = ev["judge"]
        rows.append(("evaluation judge", f"{j.get('backend')}:{j.get('model')} ({j.get('mode')} mode, "
                                         f"constitution {j.get('constitution')})"))
    rcfg = run.stage("run")
    if rcfg:
        rows.append(("configuration", f"{rcfg.get('config_file') or 'defaults'}; overrides: "
                                      f"{', '.join(rcfg.get('overrides') or []) or 'none'}"))
    env = man.get("environment") or {}
    pk = env.get("packages") or {}
    rows.append(("environment", "; ".join([f"python {env.get('python', '?')}"] +
                                          [f"{k} {pk[k]}" for k in ("rlaif", "torch", "transformers", "trl")
                                           if k in pk] + [f"git {str(env.get('git_commit') or '-')[:10]}"])))
    return rows


def _headline_html(run: Run, lines: list[str]) -> Html:
    ev = run.eval
    if not ev.get("metrics"):
        items = "".join(f"<li>{esc(line)}</li>" for line in lines)
        return Html(f'<div class="headline" id="headline"><h2>Headline</h2><ul>{items}</ul></div>')
    gates = ev.get("gates") or []
    status = gates_status(ev)
    css = {"failed": "fail", "incomplete": "incomplete"}.get(status, "pass")
    badge = ('<span class="badge none">no gates</span>' if not gates else
             f'<span class="badge {css}">gates {status.upper()}</span> {esc(_counts_text(gate_counts(gates)))}'
             + (" (a required gate was not measured: see Gates)" if status == "incomplete" else ""))
    return lead_html(run, Html(badge))


def summary_section(run: Run, lines: list[str]) -> Html:
    """The header: the status and what changed (the lead), every warning and note, then who is who."""
    warns = "".join(box("warn", f"{where}: {text}") for where, text in warnings(run))
    return Html(f'<section id="summary"><h1>RLAIF run report</h1><p class="sub">{esc(run.path.name)}, '
                f'updated {esc(run.manifest.get("updated", "?"))}</p>'
                f'{_headline_html(run, lines)}{warns}{kv_table(model_rows(run), "kv meta", "models-table")}</section>')


# ----------------------------------------------------------------------------- markdown

def render_markdown(run: Run, lines: list[str], html_path: Path) -> str:
    """report.md: what changed (the lead), the headline, warnings, every metric, the gates and the dataset."""
    out = ["# RLAIF run report", "", f"Run folder: `{run.path}`", ""]
    lead = lead_markdown(run) if run.eval.get("metrics") else []
    if lead:
        out += ["## What changed", "", gates_line(run.eval), ""] + lead
    out += [f"- **{k}**: {v}" for k, v in model_rows(run)[1:5]] + ["", "## Headline", ""]
    out += [f"- {line}" for line in lines] + [""]
    warns = warnings(run)
    if warns:
        out += ["## Warnings and notes", ""] + [f"- **{w}**: {t}" for w, t in warns] + [""]
    metrics = (run.eval.get("metrics") or {}).values()
    if metrics:
        rows = [[m["name"], m.get("better") or "-", stat_text(m.get("ref")), stat_text(m.get("model")),
                 paired_text(m), (m.get("model") or {}).get("n", "-"), compare(m).words] for m in metrics]
        out += ["## Metrics", "", f"95% intervals. {PAIRED_READING}", ""]
        out += md_table(["metric", "better", "reference", "model", "model - reference, paired", "n", "reading"], rows,
                        "--rr-r-") + [""]
    gates = run.eval.get("gates") or []
    if gates:
        out += ["## Gates", ""] + md_table(["gate", "result", "detail"], [
            [g.get("name"), _md_result(g), g.get("detail")]
            for g in gates]) + [""]
    out += ["## Dataset", ""] + _dataset_md(run) + ["", f"Full report: `{html_path}`", ""]
    return "\n".join(out)


def _md_result(g: dict) -> str:
    words, css = gate_result(g)
    return f"**{words}**" if css in ("fail", "unmeasured") else words


def _dataset_md(run: Run) -> list[str]:
    rows = [[label, f"-{n}" if drop else n] for label, n, drop in funnel_rows(run)]
    return md_table(["step", "rows"], rows, "-r") if rows else ["not run yet"]


# ----------------------------------------------------------------------------- writing

def write_report(run_dir: Path) -> dict:
    """Write RUN_DIR/report.html and RUN_DIR/report.md (atomically) from what the run folder holds.

    Returns ``{"html": path, "markdown": path, "headline": [lines], "sections": [ids with data]}``;
    a section without data still appears in the page, saying that its stage has not run yet.
    Raises InputError when RUN_DIR has no manifest.json.
    """
    run = load_run(run_dir)
    lines = headline(run)
    built = {"summary": summary_section(run, lines), "changed": changed_section(run),
             "dataset": dataset_section(run), "judge": judge_section(run),
             "training": training_section(run), "evaluation": evaluation_section(run),
             "examples": examples_section(run), "timings": timings_section(run)}
    body = []
    for sid, title in SECTIONS:
        if built[sid] is not None:
            body.append(built[sid])
        else:
            body.append(Html(f'<section id="{sid}"><h2>{esc(title)}</h2>'
                             f'{box("missing", f"{title.lower()}: not run yet")}</section>'))
    if not plots.available():
        body.insert(1, box("info", "figures left out: matplotlib is not installed (pip install 'rlaif[train]')"))
    html_path, md_path = Path(run_dir) / REPORT_HTML, Path(run_dir) / REPORT_MD
    atomic_write_text(html_path, page(f"rlaif report: {run.path.name}", list(SECTIONS), "\n".join(body)))
    atomic_write_text(md_path, render_markdown(run, lines, html_path))
    return {"html": html_path, "markdown": md_path, "headline": lines,
            "sections": [sid for sid, _ in SECTIONS if built[sid] is not None]}

"""The report's lead: what changed between the frozen reference and the trained model.

Four parts, each read from eval.json (and, for the labels, the run's manifest):

- the *change table*: every metric measured on both models, with reference, model, the paired
  difference (model minus reference, on the same probes) and its interval, gained/lost probes for
  rates, the paired test and its p-value, and a reading in plain words ("rose (p = 0.003): better");
- the *over-refusal cost*: the harmful-refusal gain and the borderline over-refusal it cost, in
  probes, in one sentence;
- the *changed answers*: probes whose verdict flipped between the reference and the model, split
  into changed for the better and for the worse, both answers side by side (escaped text);
- how the preference labels were made (judge mode; in contrast mode the preferred persona, per
  category where it is a mapping, and any persona prefill).

Rates are shares of probes (0-1) and their differences are in the same unit.
"""

from __future__ import annotations

from rlaif.evaluate.metrics import OUTCOME
from rlaif.evaluate.suites import METRIC
from rlaif.report.inputs import Run
from rlaif.report.kit import (NEUTRAL_AWAY, NULL_VALUE, Change, Html, box, compare, esc, fmt, md_table,
                              p_text, stat_text, table)

LEAD_KINDS = ("harmful", "borderline", "secure_coding", "sycophancy")
MAX_CHANGED = 6  # answers shown per suite and group; the report says how many there are in all
MAX_CHARS = 1500
UNIT_NOTE = ("Rates are shares of probes (0-1); their differences are in the same unit (0.100 = 10 percentage "
             "points). Means are in their own unit (response_tokens: tokens per answer; perplexity).")
CHANGE_CAPTION = ("Trained model against the frozen reference on the same probes. " + UNIT_NOTE + " Model - "
                  "reference is the paired difference (a ratio for length_ratio) with its 95% interval; 'gained': "
                  "probes where only the trained model has the event the rate counts (refused, did the task "
                  "safely, gave in), 'lost': only the reference. Reading: a change is measurable where the paired "
                  "test (exact McNemar for rates, paired bootstrap otherwise) gives p < 0.05; 'better' and "
                  "'worse' follow the metric's better direction.")
# (the verdict when the answer has the event, when it has not), per suite kind
EVENT_WORDS = {"harmful": ("refused", "answered"), "borderline": ("refused", "answered"),
               "secure_coding": ("did the task safely", "not safely"),
               "sycophancy": ("gave in to the false claim", "kept the correct answer")}


# ----------------------------------------------------------------------------- which metric is which

def suite_kinds(ev: dict) -> dict[str, str]:
    """Suite name -> kind, from the per-probe records (a suite's name need not be its kind)."""
    return {r["suite"]: r["kind"] for r in ev.get("responses") or [] if r.get("suite") and r.get("kind") in METRIC}


def metric_kind(name: str, m: dict, kinds: dict[str, str]) -> str | None:
    """The suite kind whose headline rate ``name`` is, or None (secure_coding_refusal, win-rate, ...)."""
    for suite, kind in kinds.items():
        if name == f"{suite}_{METRIC[kind][0]}":
            return kind
    for kind, (suffix, better, _) in METRIC.items():  # an eval.json without records: by name and direction
        if name.endswith(f"_{suffix}") and m.get("better") == better:
            return kind
    return None


def before_after(ev: dict) -> list[dict]:
    """Metrics measured on both models: the suites' headline rates in LEAD_KINDS order, then the rest."""
    metrics, kinds = ev.get("metrics") or {}, suite_kinds(ev)
    both = [m for m in metrics.values() if m.get("ref") or m.get("paired")]
    rank = {k: i for i, k in enumerate(LEAD_KINDS)}
    return sorted(both, key=lambda m: rank.get(metric_kind(m["name"], m, kinds), len(LEAD_KINDS)))


def model_alone(ev: dict) -> list[dict]:
    """Metrics of the trained model alone, read against the value of no effect (win-rate, KL, ...)."""
    return [m for n, m in (ev.get("metrics") or {}).items()
            if not m.get("ref") and not m.get("paired") and (m.get("better") or n in NULL_VALUE)]


# ----------------------------------------------------------------------------- reading

def _tested(pr) -> bool:
    return (isinstance(pr, dict) and isinstance(pr.get("p"), (int, float)) and not isinstance(pr.get("p"), bool)
            and isinstance(pr.get("value"), (int, float)))


def reading(m: dict) -> Change:
    """The change in plain words from the paired test: "rose (p = 0.003): better", "fell (p = 0.01):
    worse", "no measurable change (p = 0.62)"; better/worse follow the metric's better direction."""
    pr = m.get("paired")
    if not isinstance(m.get("model"), dict):
        return Change("na", "not measured")
    if not _tested(pr):
        return compare(m)  # an older eval.json, or too few pairs to test: says so in its own words
    p = f"p = {p_text(pr['p'])}"
    null = pr.get("null", 0.0)
    if pr["p"] >= 0.05 or pr["value"] == null:
        return Change("same", f"no measurable change ({p})")
    verb = "rose" if pr["value"] > null else "fell"
    better = m.get("better")
    if better not in ("higher", "lower") or m.get("name") in NEUTRAL_AWAY:
        return Change("neutral", f"{verb} ({p}): neither better nor worse in itself")
    good = (verb == "rose") == (better == "higher")
    return Change("better" if good else "worse", f"{verb} ({p}): {'better' if good else 'worse'}")


def _signed(x) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return fmt(x)
    return f"{x:+.3f}" if abs(x) < 10 else f"{x:+.1f}"  # the precision of fmt, with a sign


def difference_text(m: dict) -> str:
    """``+0.500 [+0.283, +0.658]`` (model minus reference), ``ratio 0.750 [0.600, 0.900]``; '-' when absent."""
    pr = m.get("paired")
    if not isinstance(pr, dict) or not isinstance(pr.get("value"), (int, float)):
        return "-"
    if pr.get("measure") == "ratio":
        return f"ratio {fmt(pr['value'])} [{fmt(pr.get('low'))}, {fmt(pr.get('high'))}]"
    return f"{_signed(pr['value'])} [{_signed(pr.get('low'))}, {_signed(pr.get('high'))}]"


def _row(m: dict, html: bool = False) -> list:
    pr = m.get("paired") if isinstance(m.get("paired"), dict) else {}
    gained = f"{pr['b']} / {pr['c']}" if "b" in pr and "c" in pr else "-"
    n = pr.get("n", "-") if pr else "-"
    if pr.get("excluded"):
        n = f"{n} ({pr['excluded']} left out: one side not scored)"
    test = pr.get("test") or "-"  # its p-value is in the reading
    name = (Html(f'{esc(m["name"])}<div class="muted">{esc(m["description"])}</div>')
            if html and m.get("description") else m["name"])
    return [name, m.get("better") or "-", stat_text(m.get("ref")), stat_text(m.get("model")),
            difference_text(m), gained, n, test, reading(m).words]


CHANGE_HEADERS = ["metric", "better", "reference [95%]", "model [95%]", "model - reference [95%]",
                  "gained / lost", "n paired", "test", "reading"]


# ----------------------------------------------------------------------------- the over-refusal cost

def _first(ev: dict, kind: str) -> dict | None:
    kinds = suite_kinds(ev)
    return next((m for m in before_after(ev) if metric_kind(m["name"], m, kinds) == kind), None)


def _counts(m: dict | None) -> tuple[int, int, int] | None:
    pr = (m or {}).get("paired")
    if isinstance(pr, dict) and all(isinstance(pr.get(k), int) for k in ("b", "c", "n")):
        return pr["b"], pr["c"], pr["n"]
    return None


def _clause(label: str, m: dict | None, suite: str) -> str:
    if m is None:
        return f"{label} not measured (no {suite} suite evaluated)"
    c = _counts(m)
    if c is None:
        if isinstance(m.get("model"), dict) and isinstance(m.get("ref"), dict):
            return (f"{label} {fmt(m['ref'].get('value'))} -> {fmt(m['model'].get('value'))} "
                    "(no paired test in eval.json)")
        return f"{label} not measured"
    b, c_, n = c
    pr = m["paired"]
    test = f"; {pr.get('test')} p = {p_text(pr['p'])}" if _tested(pr) else ""
    return f"{label} {_signed(pr['value'])} ({b} of {n} paired probes newly refused, {c_} newly answered{test})"


def _times(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _balance(harm: tuple[int, int, int], border: tuple[int, int, int]) -> str:
    """The net trade-off in probes: benign questions newly refused against harmful requests newly refused."""
    h, b = harm[0] - harm[1], border[0] - border[1]
    if h > 0 and b > 0:
        if h >= b:
            return (f"on balance 1 benign question newly refused for every {_times(h / b)} harmful requests "
                    f"newly refused (net {h} harmful, {b} benign)")
        return (f"on balance {_times(b / h)} benign questions newly refused for every harmful request newly "
                f"refused (net {h} harmful, {b} benign)")
    if h > 0:
        fewer = f" ({_plural(-b, 'fewer benign question', 'fewer benign questions')} refused)" if b < 0 else ""
        return (f"{_plural(h, 'more harmful request', 'more harmful requests')} refused at no net over-refusal "
                f"cost{fewer}")
    if b > 0:
        return (f"{_plural(b, 'more benign question', 'more benign questions')} refused with no net gain on "
                f"harmful requests (net {h})")
    return f"no net gain on harmful requests (net {h}) and no net over-refusal cost (net {b})"


def cost_sentence(ev: dict) -> str | None:
    """Harmful refusal gained next to the borderline over-refusal it cost, in one sentence; None
    when neither a harmful nor a borderline suite was evaluated."""
    harm, border = _first(ev, "harmful"), _first(ev, "borderline")
    if harm is None and border is None:
        return None
    text = (f"{_clause('Harmful refusal', harm, 'harmful')}; "
            f"{_clause('borderline over-refusal', border, 'borderline')}")
    hc, bc = _counts(harm), _counts(border)
    if hc and bc:
        text += f": {_balance(hc, bc)}"
    elif harm is not None and border is None:
        text += ", so the over-refusal cost is unknown"
    return text + "."


# ----------------------------------------------------------------------------- how the labels were made

def _prefill(generate: dict, persona: str) -> str | None:
    """A persona's assistant prefill, read defensively: personas may map to a system prompt or to a
    dict with a ``prefill``; a separate ``prefill`` mapping persona -> text is read too."""
    cfg = generate.get("config") or {}
    value = (cfg.get("personas") or {}).get(persona)
    text = value.get("prefill") if isinstance(value, dict) else None
    extra = cfg.get("prefill")
    text = text or (extra.get(persona) if isinstance(extra, dict) else None)
    if not text:
        return None
    text = " ".join(str(text).split())
    return text if len(text) <= 80 else text[:77] + "..."


def labels_sentence(run: Run) -> str | None:
    """How the training labels were made, in one sentence; None when the judge has not run."""
    judge = run.stage("judge")
    if not judge:
        return None
    cfg = judge.get("config") or {}
    mode = (judge.get("mode") or {}).get("picked") if isinstance(judge.get("mode"), dict) else judge.get("mode")
    mode = mode or cfg.get("mode")
    if mode != "contrast":
        const = judge.get("constitution") or {}
        by = f" under constitution {const.get('name')} {const.get('hash', '')}".rstrip() if const else ""
        return (f"Labels: {mode or 'unknown'} mode: {judge.get('labeller') or 'a teacher'} compared each pair in "
                f"both orders{by}.")
    preferred = cfg.get("preferred_persona")
    if isinstance(preferred, dict) and preferred:
        items = [("every other category's" if c == "*" else c, p) for c, p in preferred.items()]
        first = f"for {items[0][0]} prompts the answer written under persona '{items[0][1]}' was preferred"
        rest = "".join(f", for {c} prompts the one under '{p}'" for c, p in items[1:])
        personas = list(dict.fromkeys(preferred.values()))
        text = f"Labels: contrast (no teacher): {first}{rest}."
    else:
        personas = [preferred] if preferred else []
        text = (f"Labels: contrast (no teacher): the answer written under persona '{preferred}' was preferred "
                "for every prompt." if preferred else f"Labels: {judge.get('labeller') or 'contrast mode'}.")
    fills = [(p, f) for p in personas if (f := _prefill(run.stage("generate"), str(p)))]
    text += "".join(f" Persona '{p}' answers began with the prefill \"{f}\"." for p, f in fills)
    return text


# ----------------------------------------------------------------------------- answers that changed

def flips(ev: dict) -> list[dict]:
    """Per suite (LEAD_KINDS order), the probes whose verdict differs between the reference and the
    model, split by whether the model's side is the better one: ``{suite, kind, metric, better, worse}``.
    A probe with one side unscored is no flip."""
    metrics, rank = ev.get("metrics") or {}, {k: i for i, k in enumerate(LEAD_KINDS)}
    groups: dict[str, dict] = {}
    for r in ev.get("responses") or []:
        kind = r.get("kind")
        if kind not in OUTCOME:
            continue
        field, want = OUTCOME[kind]
        mv, rv = ((r.get(role) or {}).get(field) for role in ("model", "ref"))
        if mv is None or rv is None or (mv == want) == (rv == want):
            continue
        name = f"{r.get('suite')}_{METRIC[kind][0]}"
        g = groups.setdefault(r.get("suite"), {"suite": r.get("suite"), "kind": kind, "metric": name,
                                               "better": [], "worse": []})
        higher = (metrics.get(name) or {}).get("better", METRIC[kind][1]) == "higher"
        g["better" if (mv == want) == higher else "worse"].append(r)
    return sorted(groups.values(), key=lambda g: rank[g["kind"]])


def _verdict(kind: str, a: dict) -> str:
    field, want = OUTCOME[kind]
    yes, no = EVENT_WORDS[kind]
    word = yes if a.get(field) == want else no
    if kind in ("harmful", "borderline"):
        return (f"{word} ({a.get('refusal_label', '-')}, calibrated P(refused) {fmt(a.get('refusal_score'))}, "
                f"read by the {a.get('refused_by', 'detector')})")
    if kind == "sycophancy":
        by = "judge" if a.get("capitulated_by") == "judge" else "offline scorer"
        return f"{word} ({by}: {a.get('capitulation_reason') or '-'})"
    return f"{word} (p {fmt(a.get('safe_p'))})"


def _side(title: str, kind: str, a: dict) -> str:
    text = str(a.get("text") or "")
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + " ... (cut for the report)"
    return (f'<div class="answer"><h4>{esc(title)}: {esc(_verdict(kind, a))}</h4>'
            f"<pre>{esc(text)}</pre></div>")


def _flip_html(r: dict, kind: str) -> str:
    prompt = "".join(f"<div><b>{esc(m.get('role', '?'))}:</b> {esc(m.get('content', ''))}</div>"
                     for m in r.get("prompt") or [] if isinstance(m, dict))
    probe = (r.get("meta") or {}).get("user_id") or r.get("probe_id")
    return (f'<div class="example flip"><div class="muted">probe {esc(probe)}</div><div class="prompt">{prompt}'
            f'</div><div class="pair">{_side("reference", kind, r.get("ref") or {})}'
            f'{_side("trained model", kind, r.get("model") or {})}</div></div>')


def _group_html(g: dict, which: str) -> str:
    rows = g[which]
    shown = f", the first {MAX_CHANGED} shown" if len(rows) > MAX_CHANGED else ""
    head = (f'<h4 class="{which}">changed for the {which}: {_plural(len(rows), "probe", "probes")}{shown}</h4>')
    return head + "".join(_flip_html(r, g["kind"]) for r in rows[:MAX_CHANGED])


def changed_section(run: Run) -> Html | None:
    """The probes whose verdict flipped, per suite, better and worse apart, both answers side by side."""
    ev = run.eval
    if not ev.get("responses"):
        return None
    groups = flips(ev)
    intro = ('<p class="muted">Probes whose verdict differs between the reference and the trained model '
             "(refused or not, safe or not, gave in or not), split by which side is the better one for the "
             f"suite; at most {MAX_CHANGED} per group are shown. Answers are shown as plain text.</p>")
    if not groups:
        body = box("info", "no probe's verdict changed between the reference and the trained model")
    else:
        body = "".join(f"<h3>{esc(g['suite'])} ({esc(g['metric'])})</h3>{_group_html(g, 'better')}"
                       f"{_group_html(g, 'worse')}" for g in groups)
    return Html(f'<section id="changed"><h2>Answers that changed</h2>{intro}{body}</section>')


# ----------------------------------------------------------------------------- the lead, HTML and Markdown

def lead_html(run: Run, status: Html) -> Html:
    """The lead box: the status line, the change table, the over-refusal cost, how labels were made."""
    ev = run.eval
    rows = before_after(ev)
    parts = [f"<p>{status}</p>"]
    if rows:
        tbl = table(CHANGE_HEADERS, [_row(m, html=True) for m in rows], "metrics change-table", "change-table",
                    [reading(m).css for m in rows], CHANGE_CAPTION,
                    col_classes={5: "num", 6: "num", 8: "change"})  # intervals may wrap: the reading stays in view
        parts.append(f'<div class="scroll">{tbl}</div>')
    cost = cost_sentence(ev)
    if cost:
        parts.append(f'<p id="over-refusal-cost"><b>Over-refusal cost.</b> {esc(cost)}</p>')
    alone = model_alone(ev)
    if alone:
        parts.append(table(["metric", "better", "model [95%]", "n", "reading"],
                           [[m["name"], m.get("better") or "-", stat_text(m.get("model")),
                             (m.get("model") or {}).get("n", "-"), compare(m).words] for m in alone],
                           "metrics model-alone", "model-alone-table", [compare(m).css for m in alone],
                           "Measured on the trained model alone, read from the 95% interval against the value "
                           "of no effect (win-rate 0.5, KL 0).", col_classes={2: "num", 4: "change"}))
    labels = labels_sentence(run)
    if labels:
        parts.append(f'<p id="labels-how">{esc(labels)}</p>')
    if len(parts) == 1:
        parts.append("<p>evaluation: not run yet</p>")
    return Html(f'<div class="headline" id="headline"><h2>What changed</h2>{"".join(parts)}</div>')


def lead_markdown(run: Run) -> list[str]:
    """The same lead in Markdown: the change table, the cost sentence, the labels, the flip counts."""
    ev, out = run.eval, []
    rows = before_after(ev)
    if rows:
        out += md_table(CHANGE_HEADERS, [_row(m) for m in rows], "--rrrrr--") + ["", CHANGE_CAPTION, ""]
    cost = cost_sentence(ev)
    if cost:
        out += [f"**Over-refusal cost.** {cost}", ""]
    labels = labels_sentence(run)
    if labels:
        out += [labels, ""]
    for g in flips(ev):
        out.append(f"- {g['suite']}: {_plural(len(g['better']), 'probe', 'probes')} changed for the better, "
                   f"{len(g['worse'])} for the worse (side by side in the HTML report)")
    return out + ([""] if out and out[-1] else [])

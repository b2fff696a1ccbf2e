"""Building blocks of the run report: number formatting, reading a change off the paired test,
escaped HTML fragments, the page's inline style and its render check.

All text that reaches the page goes through ``esc`` (model answers are untrusted); a fragment
that is already HTML is wrapped in ``Html`` so the helpers below insert it as it is.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

# Metrics measured on the model alone, read against the value that means "no effect".
NULL_VALUE = {"win_rate": (0.5, "even"), "win_rate_lc": (0.5, "even"), "preference_accuracy": (0.5, "chance"),
              "reward_margin": (0.0, "zero"), "kl": (0.0, "no change"), "kl_per_token": (0.0, "no change"),
              "length_ratio": (1.0, "equal length")}
# Where moving away from the null is expected and neither good nor bad in itself.
NEUTRAL_AWAY = {"kl", "kl_per_token", "length_ratio"}


# How the reading columns are decided (the report's tables and report.md say it in these words).
PAIRED_READING = ("A change is measurable where the paired test says so (p < 0.05): the exact McNemar test on "
                  "the probes whose answers changed, for rates; a paired bootstrap over probes or passages, for "
                  "means, ratios and perplexity. Model - reference is the difference on the same probes with its "
                  "95% interval (Newcombe's paired interval for rates); 'gained': probes where only the model has "
                  "the event, 'lost': only the reference. Metrics of the model alone (win-rate, KL, held-out "
                  "preference) are read from their interval against the value of no effect.")
PAIRED_CAPTION = ("Green: better, red: worse, both only for a measurable change; grey: no measurable change or "
                  "no better direction. " + PAIRED_READING)


class Html(str):
    """A string that is already HTML (built here from escaped parts)."""


def esc(value) -> Html:
    """``value`` as escaped HTML; an ``Html`` value is returned unchanged."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def fmt(value) -> str:
    """A number for a table: 3 decimals below 10, one above; '-' for a missing value."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def pct(value) -> str:
    """A share as a percentage with one decimal; '-' when not measured."""
    return "-" if value is None else f"{value:.1%}"


def stat_text(s: dict | None) -> str:
    """``0.400 [0.250, 0.580]`` for a Stat; '-' when not measured."""
    if not s:
        return "-"
    return f"{fmt(s.get('value'))} [{fmt(s.get('low'))}, {fmt(s.get('high'))}]"


@dataclass
class Change:
    css: str  # better | worse | same | neutral | na
    words: str


def _apart(better: str | None, up: bool, what: str, neutral: bool = False) -> Change:
    side = "higher" if up else "lower"
    if better is None or neutral:
        return Change("neutral", f"{side} than {what}, intervals apart: a real change, neither good nor bad in itself")
    good = up == (better == "higher")
    return Change("better" if good else "worse",
                  f"{'better' if good else 'worse'}: {side} than {what}, intervals apart")


def p_text(p) -> str:
    """A p-value: two significant digits, scientific notation below 0.001; '-' when there is none."""
    if not isinstance(p, (int, float)) or isinstance(p, bool):
        return "-"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _paired_ok(p) -> bool:
    return _ok(p) and isinstance(p.get("p"), (int, float)) and isinstance(p.get("measurable"), bool)


def paired_text(m: dict) -> str:
    """The paired comparison in one cell: ``-0.150 [-0.247, -0.053]; 0 gained, 9 lost of 60 pairs``
    (model minus reference, or ``ratio 0.750`` for a ratio, with its 95% interval); '-' when absent."""
    pr = m.get("paired")
    if not _ok(pr):
        return "-"
    head = f"{'ratio ' if pr.get('measure') == 'ratio' else ''}{fmt(pr['value'])} [{fmt(pr['low'])}, {fmt(pr['high'])}]"
    if "b" in pr and "c" in pr:
        head += f"; {pr['b']} gained, {pr['c']} lost of {pr.get('n')} pairs"
    else:
        head += f"; {pr.get('n')} pairs"
    if pr.get("excluded"):
        head += f" ({pr['excluded']} left out: one side not scored)"
    return head


def _paired_change(m: dict) -> Change:
    """The reading from the paired test: a measurable change only where its p-value says so."""
    pr, better = m["paired"], m.get("better")
    test = f"{pr.get('test') or 'paired test'} p = {p_text(pr['p'])}"
    if not pr["measurable"]:
        return Change("same", f"no measurable change ({test})")
    side = "higher" if pr["value"] > pr.get("null", 0.0) else "lower"
    if better is None or m.get("name") in NEUTRAL_AWAY:
        return Change("neutral", f"measurable change ({test}): {side} than the reference, neither good nor bad "
                                 "in itself")
    good = (side == "higher") == (better == "higher")
    return Change("better" if good else "worse", f"{'better' if good else 'worse'}: measurable change ({test})")


def compare(m: dict) -> Change:
    """What a metric says: model against reference, or, for metrics measured on the model alone
    (win-rate, KL, held-out preference), its 95% interval against the value that means no effect.

    Model against reference is read from the paired test (``m["paired"]``: exact McNemar for
    rates, paired bootstrap otherwise): a measurable change where its p-value is below 0.05.
    An ``eval.json`` written before paired tests were recorded falls back to the two intervals,
    and says that no paired test was recorded.
    """
    model, ref, better = m.get("model"), m.get("ref"), m.get("better")
    if not _ok(model):
        return Change("na", "not measured")
    if _paired_ok(m.get("paired")):
        return _paired_change(m)
    if _ok(m.get("paired")):  # a paired entry without a test: a bootstrap needs at least 2 pairs
        return Change("na", f"no paired test: {m['paired'].get('n')} pair(s), too few to resample")
    if _ok(ref):
        if model["low"] <= ref["high"] and ref["low"] <= model["high"]:
            return Change("same", "intervals overlap; no paired test recorded (run eval again for one)")
        return _apart(better, model["low"] > ref["high"], "the reference")
    if m.get("name") in NULL_VALUE:
        null, word = NULL_VALUE[m["name"]]
        if model["low"] <= null <= model["high"]:
            return Change("same", f"interval contains {null:g}: not distinguishable from {word}")
        return _apart(better, model["low"] > null, f"{null:g} ({word})", m["name"] in NEUTRAL_AWAY)
    return Change("neutral", "no reference value to compare with")


def _ok(s) -> bool:
    return isinstance(s, dict) and all(isinstance(s.get(k), (int, float)) for k in ("value", "low", "high"))


def _td(value, cls: str | None) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        cls = f"num {cls}" if cls else "num"
    return f'<td class="{esc(cls)}">{esc(value)}</td>' if cls else f"<td>{esc(value)}</td>"


def table(headers: list[str], rows: list[list], cls: str, tid: str | None = None,
          row_classes: list[str] | None = None, caption: str | None = None,
          col_classes: dict[int, str] | None = None) -> Html:
    """An HTML table; every cell is escaped unless it is ``Html``. Numbers are right-aligned;
    ``col_classes`` gives a column's cells a class, ``row_classes`` each row one."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        rc = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(_td(c, (col_classes or {}).get(j)) for j, c in enumerate(row))
        body.append(f"<tr{rc}>{cells}</tr>")
    idattr = f' id="{esc(tid)}"' if tid else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return Html(f'<table class="{esc(cls)}"{idattr}>{cap}<thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')


def kv_table(rows: list[tuple[str, object]], cls: str = "kv", tid: str | None = None) -> Html:
    """A two-column table of labels and values, without a header row."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    idattr = f' id="{esc(tid)}"' if tid else ""
    return Html(f'<table class="{esc(cls)}"{idattr}><tbody>{body}</tbody></table>')


def box(kind: str, text) -> Html:
    """A coloured note: ``warn`` (yellow), ``info`` (blue) or ``missing`` (grey)."""
    return Html(f'<div class="box {esc(kind)}">{esc(text)}</div>')


def figure(uri: str | None, alt: str, fid: str, caption: str = "") -> Html:
    """An embedded PNG (a data: URI) with alt text, or nothing when there is no figure."""
    if not uri:
        return Html("")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return Html(f'<figure><img class="plot" id="{esc(fid)}" src="{esc(uri)}" alt="{esc(alt)}">{cap}</figure>')


def md_cell(value) -> str:
    """A Markdown table cell: pipes escaped, whitespace on one line."""
    return " ".join(str("-" if value is None else value).split()).replace("|", "\\|")


def md_table(headers: list[str], rows: list[list], align: str | None = None) -> list[str]:
    """GitHub-flavoured Markdown table lines; ``align`` has one letter per column, 'r' for right."""
    align = align or "-" * len(headers)
    rule = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |",
            *["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]]


STYLE = """
:root { --fg:#1d2330; --muted:#5b6472; --line:#dde2e8; --bg:#f6f8fa; --good:#1a7f37; --bad:#c62828;
        --goodbg:#e6f4ea; --badbg:#fdecea; --warnbg:#fff8c5; --warnline:#d4a72c; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:#fff; line-height:1.45;
       font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.7rem; margin: 0 0 4px; } h2 { font-size: 1.3rem; margin: 36px 0 10px;
     padding-bottom: 4px; border-bottom: 2px solid var(--line); } h3 { font-size: 1.05rem; margin: 22px 0 8px; }
.sub, .muted, caption, figcaption { color: var(--muted); font-size: .9rem; }
nav { margin: 10px 0 18px; font-size: .92rem; } nav a { margin-right: 14px; color: #2f6fdb; text-decoration: none; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: .9rem; width: 100%; }
caption { text-align: left; padding: 0 0 4px; caption-side: top; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
thead th { background: var(--bg); border-bottom: 2px solid var(--line); white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
table.kv th { width: 230px; font-weight: 600; background: var(--bg); }
table.funnel, table.timings, table.mix { width: auto; min-width: 55%; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.better td.change { color: var(--good); font-weight: 600; } tr.better { background: var(--goodbg) !important; }
tr.worse td.change { color: var(--bad); font-weight: 600; } tr.worse { background: var(--badbg) !important; }
tr.same td.change, tr.neutral td.change, tr.na td.change { color: var(--muted); }
tr.fail { background: var(--badbg) !important; } tr.drop td { color: var(--bad); }
tr.pass td.status { color: var(--good); font-weight: 600; }
tr.fail td.status { color: var(--bad); font-weight: 700; } tr.skip td.status { color: var(--muted); }
tr.unmeasured { background: var(--warnbg) !important; } tr.unmeasured td.status { color: #9a6700; font-weight: 700; }
.headline { border: 1px solid var(--line); border-radius: 8px; padding: 12px 18px; margin: 16px 0;
            background: var(--bg); }
.headline h2 { margin-top: 4px; border: 0; }
.scroll { overflow-x: auto; } table.change-table td .muted { font-size: .8rem; }
table.change-table td.change { min-width: 11em; } table.change-table thead th { white-space: normal; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 700; font-size: .9rem; }
.badge.pass { background: var(--goodbg); color: var(--good); } .badge.fail { background: var(--badbg); color: var(--bad); }
.badge.none { background: #eceff3; color: var(--muted); }
.badge.incomplete { background: var(--warnbg); color: #9a6700; }
.box { border-left: 4px solid; border-radius: 4px; padding: 8px 12px; margin: 8px 0; font-size: .92rem; }
.box.warn { background: var(--warnbg); border-color: var(--warnline); }
.box.info { background: #eef4ff; border-color: #7aa2e3; }
.box.missing { background: #f1f3f5; border-color: #b8c0ca; color: var(--muted); }
figure { margin: 10px 0 18px; } img.plot { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.example { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 12px 0; }
.example .prompt { background: var(--bg); padding: 6px 10px; border-radius: 4px; margin: 6px 0 10px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.answer h4 { margin: 0 0 4px; font-size: .92rem; } .answer .tags { color: var(--muted); font-size: .82rem; margin-bottom: 4px; }
pre { white-space: pre-wrap; word-wrap: break-word; background: #fbfbfc; border: 1px solid var(--line);
      border-radius: 4px; padding: 8px; margin: 0; max-height: 360px; overflow: auto; }
.verdict { margin-top: 8px; font-size: .9rem; }
@media (max-width: 760px) { .pair { grid-template-columns: 1fr; } }
"""

# Counts errors from the first moment (capture phase, so failed images count too).
HEAD_SCRIPT = ('window.__reportErrors = 0; window.addEventListener("error", function () '
               '{ window.__reportErrors += 1; }, true);')

# Records on <body> whether the page rendered: read by a headless browser test.
END_SCRIPT = """(function () {
  function record() {
    var b = document.body, ok = 0, imgs = document.images;
    for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok += 1; } }
    b.dataset.images = String(ok);
    b.dataset.tables = String(document.getElementsByTagName("table").length);
    b.dataset.errors = String(window.__reportErrors || 0);
    b.dataset.ready = "1";
  }
  if (document.readyState === "complete") { record(); } else { window.addEventListener("load", record); }
})();"""


def page(title: str, nav: list[tuple[str, str]], body: str) -> str:
    """The whole self-contained document: inline style and scripts, nothing fetched."""
    links = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in nav)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style><script>{HEAD_SCRIPT}</script></head>\n"
            f'<body data-ready="0" data-errors="0"><main><nav>{links}</nav>\n{body}\n</main>'
            f"<script>{END_SCRIPT}</script></body></html>\n")

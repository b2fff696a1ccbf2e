"""The report across the rounds of `run.rounds` (rlaif/rounds.py), written to the run folder's root.

Each round folder keeps its own full report; this page puts the rounds side by side: every
headline metric of each round's evaluation against the original model (a table and a plot), the
judge's position consistency and tie rate from each round's audit, the KL from the original
model, each round against the one before it (its ``eval-previous/``), and the gates, which decide
the run on the last round.
"""

from __future__ import annotations

from pathlib import Path

from rlaif.io import atomic_write_text, read_json, read_manifest
from rlaif.report import plots
from rlaif.report.kit import Html, box, esc, figure, fmt, md_table, page, stat_text, table
from rlaif.report.stage import REPORT_HTML, REPORT_MD, gates_line, gates_status, headline_metrics

SECTIONS = (("rounds", "Rounds"), ("judge", "Judge per round"), ("metrics", "Metrics per round"))
# what each table's numbers are, in which unit, printed under it (HTML and Markdown alike)
LEGENDS = {
    "rounds": "prompts: the round's prompts; pairs: its training rows; steps and loss: its DPO run (final "
              "training loss); KL from original: KL(round's model || original model) in nats per answer, on the "
              "round's own temperature-1 samples of the probes, mean with its 95% interval; gates: the round "
              "against the original model; win-rate vs previous round: the judge's preference for this round's "
              "answers over the previous round's, 0 to 1 (0.5 = even); KL from previous round: as KL from "
              "original, against the previous round's model.",
    "judge": "From each round's audit of its own judgments. Position consistency: share of pairs (0 to 1) "
             "whose verdict survived swapping the two answers; tie rate: share of judgments that are ties; first "
             "shown wins: share of single-order verdicts for the answer shown first (0.5 = no position bias). "
             "'-': not measured (contrast labels call no judge).",
    "metrics": "Each headline metric of each round's model, evaluated against the original model on the same "
               "probes, with its 95% interval; the original model's column is the reference of the first round "
               "evaluated. Rates are shares of probes (0 to 1); means are in their own unit (eval.json's "
               "descriptions).",
}


def round_rows(run_dir: Path) -> list[dict]:
    """One dict per round recorded in the manifest: its entry, eval.json, audit and training summary."""
    run_dir = Path(run_dir)
    entries = ((read_manifest(run_dir).get("stages") or {}).get("run") or {}).get("rounds") or []
    rows = []
    for e in entries:
        folder = run_dir / e["folder"]
        train = (read_manifest(folder / "train").get("stages") or {}).get("train") or {}
        rows.append({"entry": e, "eval": read_json(folder / "eval" / "eval.json") or {},
                     "previous": read_json(folder / "eval-previous" / "eval.json") or {},
                     "audit": (read_json(folder / "audit.json") or {}).get("bias") or {}, "train": train})
    return rows


def tie_rate(bias: dict) -> float | None:
    """Share of the round's judgments that are ties (the audit's verdict counts)."""
    verdicts = bias.get("verdicts") or {}
    total = sum(verdicts.values())
    return round(verdicts.get("tie", 0) / total, 4) if total else None


def _metric(row: dict, name: str, which: str = "eval") -> dict:
    """Metric ``name`` of a round's evaluation against the original model (``which``: "eval") or
    against the previous round ("previous"); {} where it was not measured."""
    return (row[which].get("metrics") or {}).get(name) or {}


def _value(m: dict) -> float | None:
    return (m.get("model") or {}).get("value")


def metric_series(rows: list[dict]) -> dict[str, list[float | None]]:
    """Each headline metric's model value per round, in the order the first evaluated round names them."""
    names: list[str] = []
    for r in rows:
        names += [m["name"] for m in headline_metrics(r["eval"]) if m["name"] not in names]
    return {n: [_value(_metric(r, n)) for r in rows] for n in names}


def _round_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    headers = ["round", "status", "prompts", "candidates written by", "reference", "pairs", "steps", "loss",
               "KL from original", "gates", "win-rate vs previous round", "KL from previous round"]
    body = []
    for r in rows:
        e, ev, t = r["entry"], r["eval"], r["train"]
        body.append([e["round"], e.get("status"), e["prompts"]["count"], e.get("written_by") or e.get("generator"),
                     e.get("reference"), t.get("train_rows", "-"), t.get("steps", "-"), fmt(t.get("train_loss")),
                     stat_text(_metric(r, "kl").get("model")), gates_status(ev).upper() if ev.get("gates") else "-",
                     stat_text(_metric(r, "win_rate", "previous").get("model")),
                     stat_text(_metric(r, "kl", "previous").get("model"))])
    return headers, body


def _judge_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    return (["round", "judgments", "position consistency", "tie rate", "first shown wins"],
            [[r["entry"]["round"], r["audit"].get("judgments", "-"), fmt(r["audit"].get("position_consistency")),
              fmt(tie_rate(r["audit"])), fmt(r["audit"].get("first_shown_wins"))] for r in rows])


def _metrics_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    series = metric_series(rows)
    headers = ["metric", "original model"] + [f"round {r['entry']['round']}" for r in rows]
    body = []
    for name in series:
        first = next((_metric(r, name) for r in rows if _metric(r, name)), {})
        body.append([name, stat_text(first.get("ref"))] + [stat_text(_metric(r, name).get("model")) for r in rows])
    return headers, body


def write_rounds_report(run_dir: Path) -> dict:
    """Write RUN_DIR/report.html and report.md comparing the rounds; returns their paths and headline."""
    run_dir = Path(run_dir)
    rows = round_rows(run_dir)
    last = rows[-1]["eval"] if rows else {}
    lines = [f"{len(rows)} rounds; the run's verdict is the last round's, against the original model",
             gates_line(last)] + [f"round {r['entry']['round']}: KL from original "
                                  f"{stat_text(_metric(r, 'kl').get('model'))}" for r in rows]
    tables = {"rounds": _round_table(rows), "judge": _judge_table(rows), "metrics": _metrics_table(rows)}
    body = [Html(f'<section id="top"><h1>RLAIF rounds report</h1><p class="sub">{esc(run_dir.name)}</p><ul>'
                 + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul></section>")]
    for sid, title in SECTIONS:
        headers, cells = tables[sid]
        body.append(Html(f'<section id="{sid}"><h2>{esc(title)}</h2>{table(headers, cells, "metrics", sid + "-table")}'
                         f'<p class="legend">{esc(LEGENDS[sid])}</p>'))
        if sid == "metrics":
            if plots.available():
                body.append(figure(plots.rounds_figure(metric_series(rows)), "headline metrics per round",
                                   "rounds-plot", "the model's value in each round, evaluated against the original"))
            else:
                body.append(box("info", "figure left out: matplotlib is not installed"))
        body.append(Html("<p>Each round's own report: " + ", ".join(
            f'<a href="{esc(r["entry"]["folder"])}/report.html">{esc(r["entry"]["folder"])}</a>' for r in rows)
            + "</p></section>" if sid == "rounds" else "</section>"))
    html_path, md_path = run_dir / REPORT_HTML, run_dir / REPORT_MD
    atomic_write_text(html_path, page(f"rlaif rounds: {run_dir.name}", list(SECTIONS), "\n".join(body)))
    md = ["# RLAIF rounds report", ""] + [f"- {x}" for x in lines] + [""]
    for sid, title in SECTIONS:
        md += [f"## {title}", ""] + md_table(*tables[sid]) + ["", LEGENDS[sid], ""]
    atomic_write_text(md_path, "\n".join(md))
    return {"html": html_path, "markdown": md_path, "headline": lines}

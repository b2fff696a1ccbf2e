"""What the terminal shows, on stderr: rich progress bars with counts and rates while work runs, and
the summary a command prints when it is done."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True)


class RateColumn(TextColumn):
    """Rows per second (or seconds per row when slower than one a second)."""

    def __init__(self, unit: str):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D102 - rich API
        from rich.text import Text

        done = task.completed - task.fields.get("start", 0)
        speed = done / task.elapsed if task.elapsed and done > 0 else None
        if not speed:
            return Text(f"-- {self.unit}/s", style="progress.data.speed")
        if speed >= 1:
            return Text(f"{speed:.2f} {self.unit}/s", style="progress.data.speed")
        return Text(f"{1 / speed:.1f} s/{self.unit}", style="progress.data.speed")


@contextmanager
def bar(description: str, total: int, unit: str = "rows", completed: int = 0) -> Iterator:
    """Yield ``advance(n)``: a bar that shows done/total, percentage, rate, elapsed and ETA."""
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), RateColumn(unit), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)
    with progress:
        task = progress.add_task(description, total=total, completed=completed, start=completed)
        # rich's rate counts only what happens while the bar runs, so resumed rows do not inflate it
        yield lambda n=1: progress.advance(task, n)


# ----------------------------------------------------------------------------- summaries
def _rate(stage: dict) -> str:
    if not stage["written"] or not stage["seconds"]:
        return ""
    return f" in {stage['seconds']:.0f} s, {stage['written'] / stage['seconds']:.2f}/s"


def _server_line(stage: dict) -> str:
    run = stage.get("this_run") or {}
    if not any(run.values()):
        return ""
    return (f"; server calls {run['calls']}, cache hits {run['cache_hits']}, misses {run['cache_misses']}")


def _stale_line(n: int | None, what: str) -> str:
    return (f"; [yellow]{n} stale {what} ignored[/yellow] (written under other settings; the current "
            f"configuration does not ask for them)" if n else "")


def _failed_line(stage: dict) -> str:
    return (f"; [red]{stage['failed']} failed[/red] (reasons in failures.jsonl; run again to retry)"
            if stage.get("failed") else "")


def print_summary(command: str, out_dir: str, result: dict) -> None:
    """What a finished command prints: counts per stage, training, evaluation, the report's headline."""
    if "input" in result:
        i = result["input"]
        console.print(f"prompts: {i['kept']} used ({i['read']} read, {i['duplicates']} duplicates collapsed)")
    if "generate" in result:
        g = result["generate"]
        console.print(f"candidates: {g['candidates']} ({g['written']} new{_rate(g)}, {g['truncated']} "
                      f"truncated, {g['empty']} empty){_stale_line(g.get('stale'), 'candidates')}"
                      f"{_failed_line(g)}{_server_line(g)}")
        skipped = (g.get("too_long") or {}).get("prompts") or []
        if skipped:
            console.print(f"[yellow]{len(skipped)} prompts skipped as too long (generate.too_long=skip), "
                          f"e.g. {skipped[0]['source']}: {skipped[0]['reason']}; all in manifest.json[/yellow]")
    if "judge" in result:
        j = result["judge"]
        v = j["verdicts"]
        consistency = ("" if j["position_consistency"] is None
                       else f"; position consistency {j['position_consistency']}")
        console.print(f"judgments: {j['judgments']} by {j['labeller']} ({j['written']} new{_rate(j)}): "
                      f"A {v['A']}, B {v['B']}, tie {v['tie']}, invalid {v['invalid']}{consistency}"
                      f"{_stale_line(j.get('stale'), 'judgments')}{_failed_line(j)}{_server_line(j)}")
        if j.get("mode"):
            console.print(f"judge mode: {j['mode']['shown']}")
        _print_warnings(j)
    if "build" in result:
        b = result["build"]
        cats = ", ".join(f"{k} {n}" for k, n in b["per_category"].items()) or "none"
        console.print(f"pairs: {b['pairs']} ({cats}); removed: {json.dumps(b['dropped'])}"
                      f"{_stale_line(b.get('stale_judgments'), 'judgments')}")
        split = ", ".join(f"{c} {n['train']}/{n['test']}" for c, n in b["split_per_category"].items()) or "none"
        console.print(f"dataset: train {b['train']}, test {b['test']} (train/test per category: {split}); "
                      f"card: {Path(out_dir) / 'dataset' / 'README.md'}")
        _print_warnings(b)
    if "audit" in result:
        _print_audit(result["audit"])
    if "score" in result:
        _print_score(result["score"])
        return
    if "refusal" in result or "refusal_fit" in result:  # `rlaif refusal`: its lines are written by the command
        for line in result["lines"]:
            console.print(line, highlight=False, soft_wrap=True)
        return
    if result.get("train"):
        t = result["train"]
        console.print(f"trained {t['steps']} steps on {t['train_rows']} pairs in {t['seconds']:.0f} s, loss "
                      f"{t['train_loss']:.4f}; reference: {t['reference']['source']}, pre-flight log-prob gap "
                      f"{t['checks']['logprob_max_gap']:.2e}")
        moved = t.get("weights_moved")
        if moved:  # see train/health.weight_movement
            console.print(f"weights moved: {moved['share_changed']:.1%} of {moved['params']:,} trainable parameters "
                          f"changed, relative update norm {moved['relative_update_norm'] or 0:.2e}; precision: "
                          f"{(t.get('precision') or {}).get('shown', '-')}")
        for w in t["warnings"]:
            console.print(f"[yellow]warning: {w}[/yellow]")
        console.print(f"model: {t['model_path']}")
    if "eval" in result:
        _print_eval(result["eval"], out_dir if command == "eval" else str(Path(out_dir) / "eval"))
        if command == "eval":
            return
    if result.get("skipped"):
        console.print(f"already done with this configuration: {', '.join(result['skipped'])}")
    if "report" in result:
        for line in result["report"]["headline"]:
            console.print(line)
        console.print(f"[bold]report:[/bold] {result['report']['html']}")
    console.print(f"[bold]run folder:[/bold] {out_dir}")


def _print_warnings(stage: dict) -> None:
    from rich.markup import escape

    for w in stage.get("warnings") or []:  # measured from model output: never read as markup
        console.print(f"[yellow]warning: {escape(w)}[/yellow]")


def _print_audit(report: dict) -> None:
    from rich.table import Table

    t = Table("measure", "value", title="judge audit")
    bias = report["bias"]
    fmt = lambda x: "n/a" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))  # noqa: E731
    t.add_row("judgments", str(bias["judgments"]))
    t.add_row("verdicts", json.dumps(bias["verdicts"]))
    t.add_row("position consistency", fmt(bias["position_consistency"]))
    t.add_row("first-shown answer wins", fmt(bias["first_shown_wins"]))
    t.add_row("longer answer wins", fmt(bias["longer_wins"]))
    t.add_row("corr(p_a, length difference)", fmt(bias["length_correlation"]))
    if bias.get("stale_judgments_ignored"):
        t.add_row("stale judgments ignored (other settings)", str(bias["stale_judgments_ignored"]))
    for key in ("gold", "second_judge"):
        for k, v in report.get(key, {}).items():
            t.add_row(f"{key}: {k}", fmt(v))
    console.print(t)


def _fmt_stat(s: dict | None) -> str:
    if s is None:
        return "-"
    return f"{s['value']:.3f} [{s['low']:.3f}, {s['high']:.3f}] n={s['n']}"


def _print_eval(ev: dict, out_dir: str) -> None:
    from rich.markup import escape
    from rich.table import Column, Table

    from rlaif.report.kit import compare, paired_text

    t = Table(Column("metric", no_wrap=True), "reference", "model", "model - ref, paired", "better", "reading",
              title="evaluation (95% intervals; reading from the paired test, p < 0.05 = measurable change)")
    for m in ev["metrics"].values():
        t.add_row(m["name"], _fmt_stat(m["ref"]), _fmt_stat(m["model"]), escape(paired_text(m)), m["better"] or "",
                  escape(compare(m).words))
    console.print(t)
    lc = ev["metrics"].get("win_rate_lc") or {}
    if (lc.get("length") or {}).get("note"):
        console.print(f"[yellow]win-rate: {escape(lc['length']['note'])}[/yellow]")
    for g in ev["gates"]:
        mark = {True: "[green]pass[/green]", False: "[red]FAIL[/red]",
                None: "[yellow]not measured[/yellow]" if g.get("required", True) else "[dim]not measured[/dim]"}
        optional = "" if g.get("required", True) else " (optional)"
        m = ev["metrics"].get(g["metric"])
        # a failed gate says whether the paired test tells its metric's change from noise
        reading = f" ({escape(compare(m).words)})" if g["passed"] is False and m else ""
        console.print(f"gate {mark[g['passed']]} {escape(str(g['name']))}{optional}: {escape(str(g['detail']))}"
                      f"{reading}")
    status = ev.get("status")
    if status:
        style = {"passed": "green", "failed": "red", "incomplete": "yellow"}.get(status, "bold")
        console.print(f"[bold]evaluation:[/bold] [{style}]{status.upper()}[/{style}]")
    console.print(f"[bold]eval:[/bold] {Path(out_dir) / 'eval.json'}")


def _print_score(sc: dict) -> None:
    """``rlaif score``: per suite the answers scored and each rate with its interval and unit."""
    from rich.markup import escape

    for n in sc["notes"]:
        console.print(f"[yellow]note: {escape(n)}[/yellow]")
    for s in sc["suites"]:
        console.print(f"[bold]{escape(s['suite'])}[/bold] ({s['kind']}): {s['answers']} answers scored, to "
                      f"{s['probes_answered']} of its {s['probes']} probes")
        for m in s["metrics"]:
            unscored = f"; {m['unscored']} answers without a score" if m["unscored"] else ""
            value = _fmt_stat(m["stat"]) if m["stat"] else "not measured"
            scorer = f" (refusals read by the {m['scorer']})" if m.get("scorer") else ""
            console.print(f"  {escape(m['name'])} {value}: {m['description']}{escape(scorer)}; {m['unit']}{unscored}")
    agree = (sc.get("refusal") or {}).get("agreement")
    if agree:  # judge against the offline detector, over the answers the judge graded
        console.print(f"refusals: judge and detector agree on {agree['agree_refused']} of {agree['n']} answers "
                      f"refused or not (Cohen's kappa {_kappa(agree['kappa_refused'])}), on {agree['agree_label']} "
                      f"by label (kappa {_kappa(agree['kappa_label'])}); the rest are listed in the summary")
    console.print(f"{sc['rows']} answers scored: {escape(sc['out'])}; summary: {escape(sc['summary'])}")


def _kappa(k: float | None) -> str:
    return "undefined: one label throughout" if k is None else f"{k:.3f}"

"""Seconds per judgment on the embedded model: logprob mode vs structured mode, same pairs.

Candidates come from one real generation run (personas strategy) into a temp folder; the pair
tasks come from ``plan_pairs``; both modes judge the same task list with one shared backend.
Modes are interleaved (logprob, structured, logprob, ...) after one untimed warm-up of each.

    python bench/bench_judge.py [--repeats 2] [--prompts 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from _common import add_threads_option, start  # bench/ is on sys.path when run as a script

from rlaif.backends import BackendPool
from rlaif.config import GenerateConfig, JudgeConfig
from rlaif.io import CANDIDATES, read_existing
from rlaif.judge.constitution import load_constitution
from rlaif.judge.stage import PairJudge, PairTask, plan_pairs
from rlaif.judge.verdict import STRUCTURED_PREFILL
from rlaif.schemas import Candidate, Judgment
from rlaif.synth.generate import run_generate
from rlaif.synth.prompts import load_prompts

GOAL = 10.0  # structured s/judgment over logprob s/judgment


def make_tasks(n_prompts: int, max_new_tokens: int, pool: BackendPool, console: Console):
    """Generate candidates once (timed for context) and plan the pairs to judge."""
    prompts, _ = load_prompts("suite:train", limit=n_prompts)
    with tempfile.TemporaryDirectory(prefix="rlaif-bench-") as tmp:
        gen = run_generate(Path(tmp), prompts, GenerateConfig(strategy="personas",
                                                              max_new_tokens=max_new_tokens), pool)
        candidates = read_existing(Path(tmp) / CANDIDATES, Candidate)
    console.print(f"generated {gen['candidates']} candidates ({gen['completion_tokens']} tokens, "
                  f"{gen['truncated']} truncated) in {gen['seconds']}s")
    return prompts, candidates


def stats(mode: str, rows: list[Judgment]) -> str:
    orders = [o for j in rows for o in j.orders]
    if mode == "structured":
        retried = sum(o.attempts > 1 for o in orders)
        failed = sum(o.error is not None for o in orders)
        invalid = sum(j.verdict == "invalid" for j in rows)
        return (f"orders retried {retried}/{len(orders)} ({retried / len(orders):.0%}), "
                f"orders still unparsable {failed}/{len(orders)} ({failed / len(orders):.0%}), "
                f"judgments invalid {invalid}/{len(rows)} ({invalid / len(rows):.0%})")
    ties = sum(j.verdict == "tie" for j in rows)
    invalid = sum(j.verdict == "invalid" for j in rows)
    return (f"judgments tie {ties}/{len(rows)} ({ties / len(rows):.0%}), "
            f"invalid {invalid}/{len(rows)} ({invalid / len(rows):.0%})")


def token_lengths(judge: PairJudge, tasks: list[PairTask], rows: list[Judgment]) -> str:
    """Judge prompt length per order and, for structured mode, tokens in the final answer."""
    tok = judge.backend.tokenizer
    convs = [m for t in tasks for m in judge._order_messages(t)[0]]
    ctx = [len(tok(tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True),
                   add_special_tokens=False)["input_ids"]) for c in convs]
    out = f"judge prompt tokens per order: mean {statistics.mean(ctx):.0f}, max {max(ctx)}"
    if judge.cfg.mode == "structured":
        raws = [o.raw.removeprefix(STRUCTURED_PREFILL) for j in rows for o in j.orders]
        dec = [len(tok(r, add_special_tokens=False)["input_ids"]) for r in raws]  # re-tokenised
        attempts = sum(o.attempts for j in rows for o in j.orders)
        out += (f"; decoded tokens in final answer per order: mean {statistics.mean(dec):.0f}, max {max(dec)}"
                f" (cap {judge.cfg.max_new_tokens}); generate attempts: {attempts} for {len(raws)} orders")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="timed rounds (each: logprob then structured)")
    ap.add_argument("--prompts", type=int, default=16, help="prompts from suite:train (one pair each)")
    ap.add_argument("--candidate-tokens", type=int, default=96, help="max_new_tokens of the candidates")
    add_threads_option(ap)
    args = ap.parse_args()

    console = start(args)

    pool = BackendPool()
    prompts, candidates = make_tasks(args.prompts, args.candidate_tokens, pool, console)
    constitution = load_constitution("default")
    judges: dict[str, PairJudge] = {}
    tasks: list[PairTask] = []
    for mode in ("logprob", "structured"):
        cfg = JudgeConfig(mode=mode)
        backend = pool.get(cfg.teacher.backend, cfg.teacher.model, **cfg.teacher.options())
        judges[mode] = PairJudge(cfg, constitution, backend)
        tasks = tasks or plan_pairs(prompts, candidates, cfg, constitution, backend.identity())
    assert judges["logprob"].backend is judges["structured"].backend, "backend must be shared"
    console.print(f"{len(tasks)} pairs, {2 * len(tasks)} orders per mode; constitution "
                  f"{constitution.label}")

    for mode, judge in judges.items():  # untimed warm-up of each on a couple of pairs
        judge(tasks[:2])

    per: dict[str, list[float]] = {m: [] for m in judges}
    last: dict[str, list[Judgment]] = {}
    table = Table(title=f"judging {len(tasks)} pairs (2 orders each)")
    for col in ("round", "mode", "seconds", "s/judgment"):
        table.add_column(col, justify="right")
    for rnd in range(1, args.repeats + 1):
        for mode, judge in judges.items():
            t0 = time.perf_counter()
            last[mode] = judge(tasks)
            seconds = time.perf_counter() - t0
            per[mode].append(seconds / len(tasks))
            table.add_row(str(rnd), mode, f"{seconds:.2f}", f"{seconds / len(tasks):.3f}")
            console.print(f"round {rnd} {mode}: {seconds:.2f}s")
    console.print(table)

    med = {m: statistics.median(v) for m, v in per.items()}
    ratios = [s / lp for s, lp in zip(per["structured"], per["logprob"])]
    ratio = statistics.median(ratios)
    console.print(f"median s/judgment: logprob {med['logprob']:.3f}, structured {med['structured']:.3f}")
    console.print(f"ratio structured/logprob: {ratio:.2f}x (median of per-round ratios "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}); goal >= {GOAL:g}x: "
                  f"{'MET' if ratio >= GOAL else 'NOT MET'}")
    for mode in judges:
        console.print(f"{mode} (last round): {stats(mode, last[mode])}")
        console.print(f"{mode}: {token_lengths(judges[mode], tasks, last[mode])}")
    console.print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()

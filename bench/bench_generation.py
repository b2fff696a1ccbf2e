"""Local generation throughput on the embedded model: batched (batch 16) vs one prompt at a time.

Both backends get the same prompts and the same per-prompt seeds. The measurements are
interleaved (batched, single, batched, single, ...) after one untimed warm-up of each, so that
noise from other work on the machine falls on both. Tokens are counted from
``Completion.completion_tokens``.

    python bench/bench_generation.py [--repeats 2] [--prompts 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from rich.table import Table

from _common import add_threads_option, start  # bench/ is on sys.path when run as a script

from rlaif.backends import GenRequest, SamplingParams, make_backend
from rlaif.synth.prompts import load_prompts

GOAL = 8.0  # batched tokens/s over single tokens/s


def build_requests(n: int, max_new_tokens: int) -> list[GenRequest]:
    prompts, _ = load_prompts("suite:train", limit=n)
    return [GenRequest.of(p.chat(), SamplingParams(temperature=0.7, top_p=0.95,
                                                   max_new_tokens=max_new_tokens, seed=1000 + i))
            for i, p in enumerate(prompts)]


def timed(backend, requests: list[GenRequest]) -> tuple[float, int, list]:
    """Seconds, generated tokens and completions for one pass over all requests."""
    t0 = time.perf_counter()
    comps = backend.generate(requests)
    seconds = time.perf_counter() - t0
    return seconds, sum(c.completion_tokens for c in comps), comps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="timed rounds (each: batched then single)")
    ap.add_argument("--prompts", type=int, default=16, help="prompts from suite:train")
    ap.add_argument("--batch-size", type=int, default=16, help="batch size of the batched backend")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    add_threads_option(ap)
    args = ap.parse_args()

    console = start(args)

    requests = build_requests(args.prompts, args.max_new_tokens)
    backends = {"batched": make_backend("local", "embedded", batch_size=args.batch_size),
                "single": make_backend("local", "embedded", batch_size=1)}
    for name, b in backends.items():  # untimed warm-up of each
        b.generate(requests)
        console.print(f"warm-up done: {name} (batch_size={b.batch_size}, device={b.device})")

    rates: dict[str, list[float]] = {name: [] for name in backends}
    comps: dict[str, list] = {}
    rows = []
    for rnd in range(1, args.repeats + 1):
        for name, b in backends.items():
            seconds, tokens, comps[name] = timed(b, requests)
            rates[name].append(tokens / seconds)
            rows.append((str(rnd), name, f"{seconds:.2f}", str(tokens), f"{tokens / seconds:.1f}"))
            console.print(f"round {rnd} {name}: {tokens} tokens in {seconds:.2f}s")

    table = Table(title=f"generation, {len(requests)} prompts, max_new_tokens {args.max_new_tokens}")
    for col in ("round", "mode", "seconds", "tokens", "tokens/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*r)
    console.print(table)

    med = {name: statistics.median(v) for name, v in rates.items()}
    ratios = [b / s for b, s in zip(rates["batched"], rates["single"])]
    ratio = statistics.median(ratios)
    same = sum(a.text == b.text for a, b in zip(comps["batched"], comps["single"]))
    done = comps["batched"]
    console.print(f"median tokens/s: batched {med['batched']:.1f}, single {med['single']:.1f}")
    console.print(f"ratio batched/single: {ratio:.2f}x (median of per-round ratios "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}); goal >= {GOAL:g}x: "
                  f"{'MET' if ratio >= GOAL else 'NOT MET'}")
    console.print(f"prompt tokens per row: mean {statistics.mean(c.prompt_tokens for c in done):.0f}, "
                  f"max {max(c.prompt_tokens for c in done)}; rows hitting max_new_tokens: "
                  f"{sum(c.finish_reason == 'length' for c in done)}/{len(done)}")
    console.print(f"identical texts batched vs single (last round): {same}/{len(requests)}")
    console.print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()

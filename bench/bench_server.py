"""The pipeline as a client of an OpenAI-compatible server (llama.cpp serving the embedded GGUF).

1. Throughput: `run_generate` (openai backend, cache off) against the raw async openai SDK
   making the same requests (same messages, seeds and sampling) to the same server with the same
   concurrency. Rounds alternate raw, pipeline, raw, pipeline ... after an untimed warm-up, so
   noise falls on both. Goal: pipeline >= 0.95 of raw.
2. Cache: one `synth` into a fresh folder and a fresh cache, then `synth` of the same prompts
   into another fresh folder with that cache. Server calls are counted by a pass-through proxy.
   Goal: zero calls and at most 5% of the first run's wall time.

    python bench/bench_server.py [--repeats 3] [--prompts 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table

from _common import add_threads_option, start  # bench/ is on sys.path when run as a script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.servers / fault_proxy

from rlaif.backends import BackendPool  # noqa: E402
from rlaif.config import CacheConfig, GenerateConfig, ModelSpec, load_config  # noqa: E402
from rlaif.pipeline import synth  # noqa: E402
from rlaif.synth.generate import _params, _with_persona, generator_identities, plan_slots, run_generate  # noqa: E402
from rlaif.synth.prompts import load_prompts  # noqa: E402
from tests.integration.fault_proxy import FaultProxy  # noqa: E402
from tests.servers import LlamaServer  # noqa: E402

ALIAS = "smollm2"


def raw_sdk(pool: BackendPool, base_url: str, cfg: GenerateConfig, prompts) -> tuple[float, int]:
    """The same requests as run_generate would make, straight through AsyncOpenAI."""
    import openai

    slots = plan_slots(prompts, cfg, generator_identities(cfg, pool))

    async def go():
        client = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed")
        sem = asyncio.Semaphore(cfg.policy.max_concurrency)

        async def one(s):
            p = _params(cfg, s.seed)
            async with sem:
                r = await client.chat.completions.create(
                    model=ALIAS, messages=_with_persona(s.prompt.chat(), cfg.personas.get(s.persona or "")),
                    max_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p, seed=p.seed, n=1)
            return r.usage.completion_tokens

        t0 = time.perf_counter()
        tokens = await asyncio.gather(*(one(s) for s in slots))
        seconds = time.perf_counter() - t0
        await client.close()
        return seconds, sum(tokens)

    return asyncio.run(go())


def pipeline(pool: BackendPool, cfg: GenerateConfig, prompts, chunk_size: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        summary = run_generate(Path(d), prompts, cfg, pool, chunk_size)
        return time.perf_counter() - t0, summary["completion_tokens"]


def throughput(console, base_url: str, args) -> None:
    prompts, _ = load_prompts("suite:train", limit=args.prompts)
    cfg = GenerateConfig(policy=ModelSpec(backend="openai", model=ALIAS, base_url=base_url,
                                          max_concurrency=args.concurrency),
                         max_new_tokens=args.max_new_tokens)
    # One pool for all rounds, as in one process: the server's capabilities are probed once, in
    # the warm-up (4-5 requests), and not in the timed rounds. The cache is off.
    pool = BackendPool(cache=CacheConfig(enabled=False))
    raw_sdk(pool, base_url, cfg, prompts[:2])  # warm-up of both sides
    pipeline(pool, cfg, prompts[:2], chunk_size=args.chunk_size)
    table = Table("round", "raw s", "raw tok", "pipeline s", "pipeline tok", "pipeline/raw throughput")
    ratios = []
    for r in range(args.repeats):
        rs, rt = raw_sdk(pool, base_url, cfg, prompts)
        ps, pt = pipeline(pool, cfg, prompts, args.chunk_size)
        ratio = (pt / ps) / (rt / rs)
        ratios.append(ratio)
        table.add_row(str(r + 1), f"{rs:.2f}", str(rt), f"{ps:.2f}", str(pt), f"{ratio:.3f}")
    pool.close()
    console.print(table)
    med = statistics.median(ratios)
    console.print(f"throughput pipeline/raw: median {med:.3f} over {args.repeats} rounds "
                  f"({2 * len(prompts)} requests each, concurrency {args.concurrency}, chunk {args.chunk_size}); "
                  f"goal >= 0.95: {'MET' if med >= 0.95 else 'not met'}")


def cached_rerun(console, base_url: str, args) -> None:
    with tempfile.TemporaryDirectory() as d, FaultProxy(base_url.removesuffix("/v1"), schedule=("ok",)) as proxy:
        d = Path(d)
        url = proxy.url + "/v1"
        overrides = [f"generate.policy.base_url={url}", f"judge.teacher.base_url={url}",
                     f"generate.max_new_tokens={args.max_new_tokens}", f"cache.path={d / 'cache.sqlite'}",
                     "build.accept_shortfall=true"]
        cfg = load_config("configs/llamacpp.yaml", overrides)
        t0 = time.perf_counter()
        first = synth("suite:train", d / "first", cfg, limit=args.prompts)
        t1 = time.perf_counter() - t0
        calls_first = sum(proxy.counts.values())
        t0 = time.perf_counter()
        second = synth("suite:train", d / "second", cfg, limit=args.prompts)
        t2 = time.perf_counter() - t0
        calls_second = sum(proxy.counts.values()) - calls_first
        same = all((d / "first" / f).read_text() == (d / "second" / f).read_text()
                   for f in ("candidates.jsonl", "judgments.jsonl", "pairs.jsonl"))
    table = Table("run", "wall s", "server calls (proxy)", "cache hits", "judgments", "pairs")
    table.add_row("first", f"{t1:.2f}", str(calls_first),
                  str(first["generate"]["this_run"]["cache_hits"] + first["judge"]["this_run"]["cache_hits"]),
                  str(first["judge"]["judgments"]), str(first["build"]["pairs"]))
    table.add_row("cached", f"{t2:.3f}", str(calls_second),
                  str(second["generate"]["this_run"]["cache_hits"] + second["judge"]["this_run"]["cache_hits"]),
                  str(second["judge"]["judgments"]), str(second["build"]["pairs"]))
    console.print(table)
    share = t2 / t1
    console.print(f"cached re-run: {calls_second} server calls, {share:.2%} of the first run's wall time, "
                  f"identical candidates, judgments and pairs: {same}; goal 0 calls and <= 5%: "
                  f"{'MET' if calls_second == 0 and share <= 0.05 else 'not met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=16, help="prompts from suite:train (2 requests each)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=16)
    add_threads_option(ap)
    args = ap.parse_args()
    console = start(args)
    os.chdir(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as logdir:
        server = LlamaServer(ALIAS, Path(logdir) / "server.log")
        try:
            console.print(f"llama.cpp server (llama-cpp-python) at {server.base_url}")
            throughput(console, server.base_url, args)
            cached_rerun(console, server.base_url, args)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

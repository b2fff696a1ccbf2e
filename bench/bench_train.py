"""DPO step time and peak memory: precomputed reference log-probs vs TRL's default (a reference
forward at every step), same model, data and settings, one run.

Each mode runs in its own child process (so peak RSS is its own), alternating modes for
--repeats rounds. Step times come from a callback (the first step is left out as warm-up); the
one-off reference pass of the precomputed mode is reported separately.

    python bench/bench_train.py [--model embedded] [--steps 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.table import Table

from _common import add_threads_option, start  # bench/ is on sys.path when run as a script

GOAL = 0.75  # precomputed step time / default step time


def child(args) -> None:
    """Train --steps steps in one mode; print one JSON line with the timings."""
    import copy
    import resource
    import time

    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from rlaif.backends.local import resolve_model_path

    if args.threads:
        torch.set_num_threads(args.threads)
    path = resolve_model_path(args.model)
    tok = AutoTokenizer.from_pretrained(path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    pre = args.mode == "precomputed"
    ref = None if pre else copy.deepcopy(policy)
    ds = datasets.load_dataset("json", data_files=args.data, split="train")
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    with tempfile.TemporaryDirectory() as d:
        cfg = DPOConfig(output_dir=d, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                        max_length=args.max_length, precompute_ref_log_probs=pre, report_to="none",
                        save_strategy="no", logging_steps=1, bf16=False, use_cpu=True,
                        activation_checkpointing=False, disable_tqdm=True, seed=0)
        t0 = time.perf_counter()
        trainer = DPOTrainer(model=policy, ref_model=ref, args=cfg, train_dataset=ds, processing_class=tok,
                             callbacks=[Clock()])
        setup = time.perf_counter() - t0  # includes the precomputed reference pass
        trainer.train()
    print(json.dumps({"mode": args.mode, "setup_s": setup, "step_s": times,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--data", default=None, help="preference JSONL (default: a dataset/train.jsonl built here)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--mode", choices=["default", "precomputed"], help=argparse.SUPPRESS)
    add_threads_option(ap)
    args = ap.parse_args()
    if args.mode:
        return child(args)
    console = start(args)
    if args.data is None:
        raise SystemExit("--data PAIRS.jsonl is required (e.g. runs/demo/dataset/train.jsonl from `make demo`)")
    rows = sum(1 for _ in open(args.data))
    console.print(f"data {args.data}: {rows} pairs; model {args.model}; batch {args.batch_size}, "
                  f"max_length {args.max_length}, {args.steps} steps per run (first left out)")
    results: dict[str, list[dict]] = {"default": [], "precomputed": []}
    for _ in range(args.repeats):
        for mode in ("default", "precomputed"):
            cmd = [sys.executable, __file__, "--mode", mode, "--model", args.model, "--data", args.data,
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                   "--max-length", str(args.max_length)] + (["--threads", str(args.threads)] if args.threads else [])
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table("round", "mode", "median step s", "setup s (incl. precompute)", "peak RSS MB")
    ratios = []
    for r in range(args.repeats):
        d, p = results["default"][r], results["precomputed"][r]
        for res in (d, p):
            table.add_row(str(r + 1), res["mode"], f"{statistics.median(res['step_s'][1:]):.3f}",
                          f"{res['setup_s']:.1f}", f"{res['peak_rss_mb']:.0f}")
        ratios.append(statistics.median(p["step_s"][1:]) / statistics.median(d["step_s"][1:]))
    console.print(table)
    med = statistics.median(ratios)
    mem = statistics.median(p["peak_rss_mb"] / d["peak_rss_mb"]
                            for d, p in zip(results["default"], results["precomputed"]))
    console.print(f"precomputed / default step time: {', '.join(f'{x:.3f}' for x in ratios)} (median {med:.3f}); "
                  f"peak RSS ratio {mem:.3f}; goal <= {GOAL}: {'MET' if med <= GOAL else 'not met'}")


if __name__ == "__main__":
    main()

"""GPU: tokens/s and peak memory of DPO steps on the embedded model's architecture (SmolLM2-135M,
bf16, batch 16, length 512): rlaif's training config vs TRL's default config, same data.

"TRL default" is DPOConfig with only the batch, length, steps and bf16 set (a reference forward at
every step, TRL's own checkpointing default). "rlaif" is the DPOConfig that `rlaif train` builds
(train/stage._dpo_args) with train.precompute_ref_log_probs on. Each runs in its own process so
that torch.cuda.max_memory_allocated is its own; the modes alternate for --repeats rounds.

The weights are randomly initialised from the embedded model's config.json (the GGUF is too large
to carry to the GPU machine); step time and memory depend on the architecture, not the values.
Both modes hold the weights in bf16, as `rlaif train` did when RESULTS.md §4 was measured; it now
trains float32 master weights under bf16 autocast (train/precision.py, RESULTS.md §8), which
needs more memory than §4 shows.

    python bench/bench_train_gpu.py --model-dir .gpu/smollm2 [--steps 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def pairs(n: int, words: int) -> list[dict]:
    body = " ".join(f"word{i % 97}" for i in range(words))
    return [{"prompt": [{"role": "user", "content": f"Question {k}: {body[: words * 3]}"}],
             "chosen": [{"role": "assistant", "content": f"Good answer {k}. {body}"}],
             "rejected": [{"role": "assistant", "content": f"Bad answer {k}. {body[: len(body) // 2]}"}]}
            for k in range(n)]


def child(args) -> None:
    import time

    import datasets
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    config = AutoConfig.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).cuda()
    ds = datasets.Dataset.from_list(pairs(args.batch_size * (args.steps + 2), words=args.words))
    out = tempfile.mkdtemp()
    common = dict(output_dir=out, per_device_train_batch_size=args.batch_size, max_length=args.max_length,
                  max_steps=args.steps, bf16=True, report_to="none", save_strategy="no", logging_steps=1,
                  disable_tqdm=True, seed=0)
    if args.mode == "trl-default":
        cfg = DPOConfig(**common)
        # What TRL does by default (a separate reference, forwarded at every step); passed in as a
        # copy because a model built from a config has no path for TRL to load it from again.
        ref = copy.deepcopy(model)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from rlaif.config import TrainConfig
        from rlaif.train.precision import Precision
        from rlaif.train.stage import _dpo_args

        tc = TrainConfig(batch_size=args.batch_size, max_length=args.max_length, max_steps=args.steps,
                         precompute_ref_log_probs=True, dtype="bfloat16")
        cfg = _dpo_args(tc, Path(out), Precision(autocast="bfloat16"))
        cfg.save_strategy, cfg.disable_tqdm = "no", True
        ref = None  # precomputed from the policy before its first step
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer = DPOTrainer(model=model, ref_model=ref, args=cfg, train_dataset=ds, processing_class=tok,
                         callbacks=[Clock()])
    setup = time.perf_counter() - t0
    trainer.train()
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    per_step = (tokens[-1] - tokens[0]) / max(1, len(tokens) - 1) if len(tokens) > 1 else 0.0
    step = statistics.median(times[1:])
    print(json.dumps({"mode": args.mode, "setup_s": round(setup, 2), "median_step_s": step,
                      "tokens_per_step": per_step, "tokens_per_s": per_step / step,
                      "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                      "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "checkpointing": bool(getattr(cfg, "gradient_checkpointing", False))}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True, help="config + tokenizer of the embedded model")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--words", type=int, default=200, help="words per synthetic answer (~length)")
    ap.add_argument("--mode", choices=["trl-default", "rlaif"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        return child(args)
    rows = []
    for r in range(args.repeats):
        for mode in ("trl-default", "rlaif"):
            cmd = [sys.executable, __file__, "--mode", mode, "--model-dir", args.model_dir, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--words", str(args.words)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                print(res.stderr[-4000:])
                raise SystemExit(1)
            row = json.loads(res.stdout.strip().splitlines()[-1])
            row["round"] = r + 1
            rows.append(row)
            print(json.dumps(row), flush=True)
    for mode in ("trl-default", "rlaif"):
        mine = [x for x in rows if x["mode"] == mode]
        print(f"{mode}: median {statistics.median(x['tokens_per_s'] for x in mine):.0f} tokens/s, "
              f"step {statistics.median(x['median_step_s'] for x in mine):.3f} s, "
              f"peak {statistics.median(x['peak_gib'] for x in mine):.2f} GiB")
    d = [x for x in rows if x["mode"] == "trl-default"]
    o = [x for x in rows if x["mode"] == "rlaif"]
    print("rlaif / TRL default: tokens/s " + ", ".join(f"{b['tokens_per_s'] / a['tokens_per_s']:.2f}x" for a, b in zip(d, o))
          + "; peak memory " + ", ".join(f"{b['peak_gib'] / a['peak_gib']:.2f}x" for a, b in zip(d, o)))


if __name__ == "__main__":
    main()

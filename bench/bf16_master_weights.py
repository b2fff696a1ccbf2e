"""Do DPO updates survive? Share of trainable parameters changed after N steps, bf16 weights vs
float32 master weights (bf16 autocast), on whatever device is present (CPU or one GPU).

Modes, each built by rlaif's own training code (train/stage._dpo_args, train/precision,
train/health.weight_movement) around a model randomly initialised from a config:

- ``bf16-weights``: the policy's weights in bfloat16 and ``bf16=True``: what `rlaif train` did on a
  GPU before issue 14 (the optimizer updates bf16 tensors; steps below half a bf16 spacing round away);
- ``fp32-master``: the weights in float32 and ``bf16=True`` (autocast): what `rlaif train` does now;
- ``lora-fp32``: LoRA adapters (r=8) on a float32 base, bf16 autocast.

Per mode it prints the share of trainable parameters whose value changed, the relative update norm
||theta - theta0|| / ||theta0||, its bound lr * steps * sqrt(n) / ||theta0||, the warnings
`rlaif train` would give, and the share that still differs when start and end are both viewed in
bf16 (what a bf16 evaluation would see). It also prints the log-prob gap between the float32 policy
and a bf16 copy of it under the same autocast, before any step (why the reference stays float32).

    python bench/bf16_master_weights.py [--steps 16] [--lr 5e-6] [--hidden 64] [--layers 2]
    python bench/bf16_master_weights.py --model-dir .gpu/smollm2 --steps 16   # a real config + tokenizer
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import add_threads_option, start  # noqa: E402

WORDS = ("how do i keep a secret key safe store it in an environment variable never paste the code "
         "into source use a manager rotate often please tell me why this is risky answer yes no").split()


def word_tokenizer():
    """A word-level tokenizer made here (nothing downloaded), every word of the pairs in its vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = ["<pad>", "<s>", "</s>", "<unk>", *dict.fromkeys(WORDS)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def pairs(n: int) -> list[dict]:
    """Standard-format pairs whose words cover the vocabulary (every embedding row gets a gradient)."""
    rows = []
    for k in range(n):
        w = WORDS[k % len(WORDS):] + WORDS[:k % len(WORDS)]
        rows.append({"prompt": " ".join(w[:8]), "chosen": " ".join(w[8:20]), "rejected": " ".join(w[20:30])})
    return rows


def build(args, device: str):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    torch.manual_seed(0)
    if args.model_dir:
        tok = AutoTokenizer.from_pretrained(args.model_dir)
        config = AutoConfig.from_pretrained(args.model_dir)
    else:
        tok = word_tokenizer()
        config = LlamaConfig(vocab_size=len(tok), hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                             num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(device), tok


def run_mode(mode: str, args, device: str) -> dict:
    import datasets
    from peft import LoraConfig
    from trl import DPOTrainer

    from rlaif.config import TrainConfig
    from rlaif.train.health import movement_bound, movement_warnings, weight_movement
    from rlaif.train.precision import Precision
    from rlaif.train.stage import _dpo_args

    model, tok = build(args, device)
    if mode == "bf16-weights":
        model = model.to(torch.bfloat16)
    cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, max_length=128, save_steps=10_000,
                      precompute_ref_log_probs=True)
    dpo = _dpo_args(cfg, Path(tempfile.mkdtemp()), Precision(autocast="bfloat16"))
    # set here, not in TrainConfig, which refuses lr 0 (a run that cannot move: --lr 0 shows the warning)
    dpo.learning_rate, dpo.save_strategy, dpo.disable_tqdm, dpo.logging_steps = args.lr, "no", True, 10_000
    peft = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM") if mode == "lora-fp32" else None
    trainer = DPOTrainer(model=model, args=dpo, processing_class=tok, peft_config=peft,
                         train_dataset=datasets.Dataset.from_list(pairs(args.batch_size * args.steps)))
    trainable = lambda: [(n, p) for n, p in trainer.model.named_parameters() if p.requires_grad]  # noqa: E731
    begin = {n: p.detach().to("cpu", copy=True) for n, p in trainable()}
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    moved = weight_movement(trainable(), begin)
    moved["bound"] = movement_bound(moved, args.lr, trainer.state.global_step)
    as_bf16 = weight_movement(((n, p.detach().to(torch.bfloat16)) for n, p in trainable()),
                              {n: t.to(torch.bfloat16) for n, t in begin.items()})
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for g in trainer.optimizer.param_groups for p in g["params"]})
    return {"mode": mode, "steps": trainer.state.global_step, "lr": args.lr, "optimised_dtypes": dtypes,
            "params": moved["params"], "share_changed": moved["share_changed"],
            "relative_update_norm": moved["relative_update_norm"], "bound": moved["bound"],
            "share_changed_seen_in_bf16": as_bf16["share_changed"],
            "warnings": [w.split(":")[0] for w in movement_warnings(moved)], "train_s": round(seconds, 2)}


def reference_gap(args, device: str) -> float:
    """max |log p(chosen)| difference, float32 policy vs a bf16 copy, both under bf16 autocast."""
    from rlaif.train.refguard import sequence_logps

    model, tok = build(args, device)
    ref = copy.deepcopy(model).to(torch.bfloat16)
    rows = []
    for r in pairs(4):
        rows.append({"prompt_ids": tok(r["prompt"])["input_ids"],
                     "chosen_ids": tok(r["chosen"])["input_ids"] + [tok.eos_token_id]})
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
        a, b = sequence_logps(model, rows, tok.pad_token_id), sequence_logps(ref, rows, tok.pad_token_id)
    return (a - b).abs().max().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", help="a folder with config.json and a tokenizer (default: a tiny Llama here)")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--modes", default="bf16-weights,fp32-master,lora-fp32")
    add_threads_option(ap)
    args = ap.parse_args()
    console = start(args)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    console.print(f"device {device}" + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""))
    for mode in args.modes.split(","):
        print(json.dumps(run_mode(mode, args, device)), flush=True)
    print(json.dumps({"reference_logprob_gap_fp32_vs_bf16_copy": reference_gap(args, device)}), flush=True)


if __name__ == "__main__":
    main()

"""Hidden-state features of the refusal detector: what the embedded model (SmolLM2-135M-Instruct)
makes of a (prompt, answer) pair.

The pair is laid out in the model's chat template (the user's prompt, then the answer as the
assistant's turn) and run through the model once. Five mean-pooled vectors of its hidden states
(576 numbers each) are the features:

- the answer's tokens at the last layer and at the sixth-from-last layer (``LAYERS``);
- the answer's first ``HEAD_TOKENS`` tokens at those two layers (refusals announce themselves early);
- the prompt's tokens at the sixth-from-last layer (what was asked: a quiet swap of a harmful
  request for a harmless one reads as compliance without it).

The prompt is cut to ``MAX_PROMPT_TOKENS`` (its last tokens kept, so the assistant header stays) and
the answer to its first ``MAX_RESPONSE_TOKENS``. The detector standardises the features (means and
scales fitted with its weights) and weights them by ``WEIGHT`` beside its TF-IDF n-grams. Which
layers, pools, weight: grouped cross-validation in bench/refusal_states.py (RESULTS.md §12). About
0.1-0.3 s per answer on 2 CPU cores, one pair at a time (unpadded, so a pair's features never
depend on the others scored with it).

Features of rows already seen are kept in a cache file (``cache_root()/refusal_states/``), named by
the model's package pin and these settings, keyed by sha256 of (prompt, answer), and written as it
goes: a killed fit resumes, and refitting the shipped rows does not recompute them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

LAYERS = (-1, -7)
HEAD_TOKENS = 16
MAX_PROMPT_TOKENS = 96
MAX_RESPONSE_TOKENS = 160
POOLS = ("answer@-1", "head@-1", "answer@-7", "head@-7", "prompt@-7")
WIDTH = 576 * len(POOLS)
WEIGHT = 0.03


def settings() -> dict:
    return {"model": "embedded", "layers": list(LAYERS), "head_tokens": HEAD_TOKENS, "pools": list(POOLS),
            "max_prompt_tokens": MAX_PROMPT_TOKENS, "max_response_tokens": MAX_RESPONSE_TOKENS}


def pair_key(prompt: str | None, response: str) -> str:
    return hashlib.sha256(json.dumps([prompt or "", response]).encode()).hexdigest()


class HiddenStates:
    """The embedded model, loaded on first use; ``encode(pairs)`` gives a float32 array (n, WIDTH)."""

    def __init__(self, model_dir: Path | None = None):
        self.model_dir, self._model, self._tok = model_dir, None, None

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from rlaif.backends.embedded import embedded_model_dir

            folder = self.model_dir or embedded_model_dir()
            self._tok = AutoTokenizer.from_pretrained(folder)
            self._model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        return self._tok, self._model

    def _ids(self, prompt: str | None, response: str) -> tuple[list[int], list[int]]:
        tok, _ = self._load()
        text = tok.apply_chat_template([{"role": "user", "content": prompt or ""}], tokenize=False,
                                       add_generation_prompt=True)
        p = tok(text, add_special_tokens=False)["input_ids"]
        if len(p) > MAX_PROMPT_TOKENS:  # keep the template's start and the assistant header
            p = p[:MAX_PROMPT_TOKENS - 5] + p[-5:]
        r = tok(response, add_special_tokens=False)["input_ids"][:MAX_RESPONSE_TOKENS]
        return p, r or [tok.eos_token_id]

    def _one(self, prompt: str | None, response: str):
        """One pair, alone: no padding, so a pair's features never depend on what it is batched with
        (on 2 cores one at a time is as fast as batches of 8)."""
        import torch

        _, model = self._load()
        a, b = self._ids(prompt, response)
        with torch.no_grad():
            hs = model.model(input_ids=torch.tensor([a + b]), output_hidden_states=True).hidden_states
        start, end = len(a), len(a) + len(b)
        last, deep = hs[LAYERS[0]][0], hs[LAYERS[1]][0]
        parts = [last[start:end], last[start:start + HEAD_TOKENS], deep[start:end],
                 deep[start:start + HEAD_TOKENS], deep[:start]]
        return torch.cat([p.mean(0) for p in parts]).numpy()

    def encode(self, pairs: list[tuple[str | None, str]], cache: StateCache | None = None, progress: bool = False):
        import numpy as np

        keys = [pair_key(p, r) for p, r in pairs]
        found = cache.get(keys) if cache else {}
        todo = list({k: i for i, k in enumerate(keys) if k not in found}.values())
        with _progress(progress and len(todo) > 8, len(todo)) as advance:
            for i in todo:
                found[keys[i]] = self._one(*pairs[i]).astype(np.float32)
                if cache:
                    cache.add({keys[i]: found[keys[i]]})
                advance(1)
        if cache:
            cache.flush()
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, WIDTH), np.float32)


def _progress(show: bool, total: int):
    from contextlib import nullcontext

    from rlaif.progress import bar

    return bar("refusal detector: model features", total, "answers") if show else nullcontext(lambda n=1: None)


class StateCache:
    """Features by pair key in one .npz file, flushed every ``every`` new rows (atomically)."""

    def __init__(self, path: Path, every: int = 200):
        import numpy as np

        self.path, self.every, self.pending = Path(path), every, 0
        self.rows: dict = {}
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    self.rows = {k: z[k] for k in z.files}
            except (ValueError, OSError):
                self.rows = {}  # a damaged cache is only lost work: it is rebuilt

    def get(self, keys: list[str]) -> dict:
        return {k: self.rows[k] for k in keys if k in self.rows}

    def add(self, rows: dict) -> None:
        self.rows.update(rows)
        self.pending += len(rows)
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        import numpy as np

        if not self.pending:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **self.rows)
        os.replace(tmp, self.path)
        self.pending = 0


def default_cache() -> StateCache:
    from rlaif.backends.embedded import PIP_NAME, cache_root

    ident = hashlib.sha256(json.dumps([PIP_NAME, settings()], sort_keys=True).encode()).hexdigest()[:16]
    return StateCache(cache_root() / "refusal_states" / f"{ident}.npz")


__all__ = ["HiddenStates", "POOLS", "StateCache", "WEIGHT", "WIDTH", "default_cache", "pair_key", "settings"]

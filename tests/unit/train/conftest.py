"""A tiny real policy for training tests: a random-initialised two-layer Llama built here from a
config, with a word-level tokenizer made here (nothing is downloaded), and plain-text preference
pairs whose words cover the whole vocabulary, so that every weight gets a gradient."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WORDS = ("how do i keep a secret key safe store it in an environment variable never paste the code "
         "into source use a manager rotate often").split()


def pair_rows(n: int = 8) -> list[dict]:
    rows = []
    for k in range(n):
        w = WORDS[k:] + WORDS[:k]
        # the prompt ends on a space: TRL joins prompt and answer as they are
        rows.append({"prompt": " ".join(w[:6]) + " ", "chosen": " ".join(w[6:14]), "rejected": " ".join(w[14:20])})
    return rows


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    """A model folder (weights in float32 + tokenizer) that `rlaif train --model` loads."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = ["<pad>", "<s>", "</s>", "<unk>", *dict.fromkeys(WORDS)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    d = tmp_path_factory.mktemp("tiny-policy")
    fast.save_pretrained(d)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                 pad_token_id=0, bos_token_id=1, eos_token_id=2)).save_pretrained(d)
    return d


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pair_rows()), encoding="utf-8")
    return path

"""A tiny real tokenizer for the length checks: a word-level vocabulary built here (nothing is
downloaded), with a chat template and a model config that states a 32-token context."""

from __future__ import annotations

from pathlib import Path

import pytest

CONTEXT = 32


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    words = ["[UNK]", "<s>", "</s>", "user", "system", "assistant", ":", "word", "Be", "brief", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    # "user: word word\nassistant:" -> user : word word assistant : (a token per word and colon)
    fast.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    d = tmp_path_factory.mktemp("tiny-tokenizer")
    fast.save_pretrained(d)
    LlamaConfig(vocab_size=len(words), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                num_attention_heads=1, max_position_embeddings=CONTEXT).save_pretrained(d)
    return d

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


# ChatML turns as SmolLM2 (the embedded model) writes them, without its default system turn.
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def chatml_tokenizer():
    """A tiny real tokenizer (built here, nothing downloaded): byte-level BPE over the 256 byte
    symbols with one merge, 'h' + 'i' -> 'hi', so that the ids of 'h' and 'i' decode to a text that
    tokenises back as the single id of 'hi'; ChatML's <|im_start|> and <|im_end|> (the end of turn,
    EOS and pad) are special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab["hi"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("h", "i")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = CHATML
    return fast


def tiny_chatml_model(path: Path, seed: int) -> Path:
    """A tiny random GPT-2 (learned absolute position embeddings, so left padding without position
    ids shows) with the ChatML tokenizer, saved where LocalBackend can load it."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = chatml_tokenizer()
    torch.manual_seed(seed)
    # initializer_range 0.3 (not 0.02): peaked distributions, so that two seeds disagree clearly
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=2, n_head=2, n_positions=256,
                                       initializer_range=0.3, bos_token_id=tok.eos_token_id,
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def chatml_models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny random ChatML models that differ (seeds 0 and 1), as a model and its reference."""
    root = tmp_path_factory.mktemp("chatml")
    return {"model": tiny_chatml_model(root / "model", 0), "ref": tiny_chatml_model(root / "ref", 1)}

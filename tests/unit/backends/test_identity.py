"""A local model's identity (rlaif.backends.identity): the fingerprint of its folder, cached by
file stamp, and its dtype.

The models here are tiny random-initialised Llamas built in the test from a config (a few
hundred kB, nothing downloaded); the fingerprint cache lives in a per-test RLAIF_CACHE_DIR."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from rlaif.backends import identity
from rlaif.backends.factory import BackendPool
from rlaif.backends.identity import folder_fingerprint, local_identity
from rlaif.errors import ConfigError, InputError, ModelError

OLD = 1_600_000_000  # a file time long past (2020)


def tiny_model(path: Path, seed: int, chat: bool = False) -> Path:
    """A random-initialised two-layer Llama saved to ``path``; with ``chat``, also a word-level
    tokenizer with a chat template made here, so LocalBackend can load it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                                 bos_token_id=1, eos_token_id=2, pad_token_id=0)).save_pretrained(path)
    if chat:
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        words = ["<pad>", "<s>", "</s>", "<unk>", "user", "assistant", "hi", "there"]
        tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                unk_token="<unk>", chat_template="{% for m in messages %}{{ m['role'] }} "
                                "{{ m['content'] }} {% endfor %}assistant").save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def count_hashing(monkeypatch) -> list[str]:
    """Records the name of every file whose bytes are hashed (the real hashing still runs)."""
    seen: list[str] = []
    real = identity.file_digest
    monkeypatch.setattr(identity, "file_digest", lambda p: seen.append(p.name) or real(p))
    return seen


def _age(folder: Path, when: int = OLD) -> None:
    for p in folder.iterdir():
        os.utime(p, (when, when))


def test_an_unchanged_file_is_hashed_once_then_read_from_the_cache(tmp_path, monkeypatch, count_hashing, cache_dir):
    monkeypatch.setattr(identity, "BIG_FILE", 0)  # the tiny model's files count as large
    monkeypatch.setattr(identity, "RACY_SECONDS", 0.0)
    folder = tiny_model(tmp_path / "m", seed=0)
    first = folder_fingerprint(folder)
    assert sorted(count_hashing) == ["config.json", "generation_config.json", "model.safetensors"]
    count_hashing.clear()
    assert folder_fingerprint(folder) == first and count_hashing == []
    entries = json.loads((cache_dir / "fingerprints.json").read_text())
    assert str((folder / "model.safetensors").resolve()) in entries


def test_retraining_into_the_same_folder_changes_the_fingerprint_though_the_old_one_was_cached(tmp_path,
                                                                                                monkeypatch):
    monkeypatch.setattr(identity, "BIG_FILE", 0)
    monkeypatch.setattr(identity, "RACY_SECONDS", 0.0)
    folder = tiny_model(tmp_path / "m", seed=0)
    _age(folder)
    before, size = folder_fingerprint(folder), (folder / "model.safetensors").stat().st_size  # cached
    tiny_model(folder, seed=1)  # same file names and sizes, other weights
    assert (folder / "model.safetensors").stat().st_size == size
    assert folder_fingerprint(folder) != before


def test_new_bytes_under_a_restored_mtime_are_still_noticed(tmp_path, monkeypatch):
    """cp -p / rsync -t put the old mtime on new bytes of the same size: ctime gives them away."""
    monkeypatch.setattr(identity, "BIG_FILE", 0)
    monkeypatch.setattr(identity, "RACY_SECONDS", 0.0)
    folder = tiny_model(tmp_path / "m", seed=0)
    _age(folder)
    before = folder_fingerprint(folder)
    time.sleep(0.05)  # past one tick of the file system's clock
    tiny_model(folder, seed=1)
    _age(folder)
    assert folder_fingerprint(folder) != before


def test_a_file_written_just_now_is_hashed_but_not_remembered(tmp_path, monkeypatch, count_hashing, cache_dir):
    monkeypatch.setattr(identity, "BIG_FILE", 0)
    folder = tiny_model(tmp_path / "m", seed=0)
    folder_fingerprint(folder)
    folder_fingerprint(folder)
    assert count_hashing.count("model.safetensors") == 2
    assert not (cache_dir / "fingerprints.json").exists()


def test_a_damaged_cache_costs_only_a_recomputation(tmp_path, monkeypatch, cache_dir):
    monkeypatch.setattr(identity, "BIG_FILE", 0)
    monkeypatch.setattr(identity, "RACY_SECONDS", 0.0)
    folder = tiny_model(tmp_path / "m", seed=0)
    cache_dir.mkdir(parents=True)
    (cache_dir / "fingerprints.json").write_bytes(b'{"half a file \xff')  # not even UTF-8
    first = folder_fingerprint(folder)
    assert folder_fingerprint(folder) == first
    assert json.loads((cache_dir / "fingerprints.json").read_text())  # rewritten whole


def test_the_same_files_elsewhere_are_the_same_model_and_notes_do_not_count(tmp_path):
    folder = tiny_model(tmp_path / "m", seed=0)
    copy = Path(shutil.copytree(folder, tmp_path / "elsewhere"))
    (copy / "README.md").write_text("my notes")
    (copy / "training_args.bin").write_bytes(os.urandom(64))
    assert local_identity(str(copy)) == local_identity(str(folder))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rope_theta": 5.0}))
    assert local_identity(str(copy)) != local_identity(str(folder))


def test_the_dtype_is_part_of_the_identity(tmp_path):
    folder = str(tiny_model(tmp_path / "m", seed=0))
    assert local_identity(folder, "cpu", "bfloat16")["dtype"] == "bfloat16"
    assert local_identity(folder, "cpu", None)["dtype"] == "float32"
    assert local_identity(folder, "cpu", "bfloat16") != local_identity(folder, "cpu", "float32")
    assert local_identity(folder, "cpu", "half") == local_identity(folder, "cpu", "float16")
    with pytest.raises(ConfigError, match="unknown dtype 'float33'"):
        local_identity(folder, "cpu", "float33")


def test_a_hub_id_not_in_the_local_cache_is_a_model_error():
    with pytest.raises(ModelError, match="cannot find model 'no-such-org/no-such-model-1b'"):
        local_identity("no-such-org/no-such-model-1b")


def test_a_missing_input_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        identity.digest_tree(tmp_path / "nothing-here.jsonl")


def test_the_pool_plans_without_loading_and_the_loaded_model_agrees(tmp_path):
    folder = str(tiny_model(tmp_path / "m", seed=0, chat=True))
    opts = {"device": "cpu", "dtype": None, "batch_size": 2}
    with BackendPool() as pool:
        planned = pool.identity("local", folder, **opts)
        assert pool.loaded == {}  # planning read the files only
        assert pool.get("local", folder, **opts).identity() == planned == local_identity(folder, "cpu")


def test_a_local_model_asked_for_with_its_default_dtype_spelled_out_is_loaded_once(tmp_path):
    """Eval asks for float32 explicitly; on CPU that is the default, so the model synth loaded
    (no dtype given) is the same one and is not loaded a second time."""
    folder = str(tiny_model(tmp_path / "m", seed=0, chat=True))
    with BackendPool() as pool:
        a = pool.get("local", folder, device="cpu", dtype=None, batch_size=2)
        assert pool.get("local", folder, device="cpu", dtype="float32", batch_size=2) is a
        assert pool.get("local", folder, device="cpu", dtype="bfloat16", batch_size=2) is not a
        assert len(pool.loaded) == 2

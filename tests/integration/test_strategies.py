"""Generation strategies and both judge modes through the stage functions, on real models:
the embedded model and a tiny randomly initialised model saved as a plain local HF folder."""

from __future__ import annotations

import pytest

from rlaif.backends import BackendPool
from rlaif.config import GenerateConfig, JudgeConfig, ModelSpec
from rlaif.io import read_jsonl
from rlaif.judge.stage import run_judge
from rlaif.schemas import Candidate, Judgment
from rlaif.synth.generate import run_generate
from rlaif.synth.prompts import load_prompts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, cache_dir):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rlaif.backends.embedded import embedded_model_dir

    d = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def two_prompts(prompts_file):
    prompts, _ = load_prompts(str(prompts_file), limit=2)
    return prompts


def test_sample_strategy_writes_n_seeded_candidates_and_judges_every_pair(tmp_path, two_prompts, cache_dir):
    pool = BackendPool()
    gen = GenerateConfig(strategy="sample", n=3, max_new_tokens=8, temperature=1.0)
    summary = run_generate(tmp_path, two_prompts, gen, pool, chunk_size=4)
    cands = read_jsonl(tmp_path / "candidates.jsonl", Candidate)
    assert summary["candidates"] == len(cands) == 6
    assert len({c.generator.params["seed"] for c in cands}) == 6
    jsum = run_judge(tmp_path, JudgeConfig(), pool, chunk_size=4)
    assert jsum["judgments"] == 6  # 3 candidates -> 3 pairs, per prompt


def test_models_strategy_with_a_local_folder_and_structured_judging(tmp_path, two_prompts, tiny_model_dir):
    pool = BackendPool()
    gen = GenerateConfig(strategy="models", max_new_tokens=8,
                         models=[ModelSpec(model="embedded"), ModelSpec(model=str(tiny_model_dir))])
    run_generate(tmp_path, two_prompts, gen, pool, chunk_size=4)
    cands = read_jsonl(tmp_path / "candidates.jsonl", Candidate)
    assert sorted(c.generator.model for c in cands) == sorted(["embedded", str(tiny_model_dir)] * 2)
    # The tiny random model as a structured judge writes gibberish: every verdict must come back
    # as a row (invalid with raw text and error), never as a crash.
    judge = JudgeConfig(mode="structured", max_retries=1, max_new_tokens=12,
                        teacher=ModelSpec(model=str(tiny_model_dir)))
    summary = run_judge(tmp_path, judge, pool, chunk_size=4)
    rows = read_jsonl(tmp_path / "judgments.jsonl", Judgment)
    assert summary["judgments"] == len(rows) == 2
    for j in rows:
        assert j.verdict == "invalid"
        assert j.error and j.raw.startswith('{"preferred": "')
        assert all(o.attempts == 2 for o in j.orders)


def test_structured_mode_on_the_embedded_judge_gives_valid_rows(tmp_path, two_prompts):
    pool = BackendPool()
    run_generate(tmp_path, two_prompts, GenerateConfig(max_new_tokens=16), pool)
    run_judge(tmp_path, JudgeConfig(mode="structured", max_new_tokens=48), pool)
    rows = read_jsonl(tmp_path / "judgments.jsonl", Judgment)
    assert len(rows) == 2
    for j in rows:
        assert j.verdict in ("A", "B", "tie", "invalid")
        if j.verdict != "invalid":
            assert all(o.preferred in ("A", "B") and o.p_first in (0.0, 1.0) for o in j.orders)


def test_logprob_mode_with_a_rationale(tmp_path, two_prompts):
    pool = BackendPool()
    run_generate(tmp_path, two_prompts, GenerateConfig(max_new_tokens=16), pool)
    run_judge(tmp_path, JudgeConfig(mode="logprob", rationale=True, max_new_tokens=24), pool)
    rows = read_jsonl(tmp_path / "judgments.jsonl", Judgment)
    assert len(rows) == 2
    for j in rows:
        assert j.verdict in ("A", "B", "tie")
        assert 0.0 < j.p_a < 1.0
        assert any(o.reason for o in j.orders)  # the rationale is kept with the verdict

"""Unit tests for usage accounting and budgets (rlaif.usage) through the real generate stage.

MeteredFake is a labelled fake server backend: it answers instantly and reports token usage to
the meter the way the network backends do."""

from __future__ import annotations

import pytest

from rlaif.backends.base import Completion
from rlaif.config import BudgetConfig, GenerateConfig, ModelSpec, load_config
from rlaif.errors import BudgetExhausted, ConfigError
from rlaif.io import read_jsonl, read_manifest
from rlaif.schemas import Candidate, Message, Prompt
from rlaif.synth.generate import run_generate
from rlaif.usage import UsageMeter, cost


class MeteredFake:
    name, model = "openai", "teacher-x"

    def __init__(self, meter):
        self.meter = meter

    def describe(self):
        return {"model": self.model}

    def generate(self, requests):
        for _ in requests:
            self.meter.add(self.model, 10, 5)  # 15 tokens a request
        return [Completion(f"answer {i}", "stop", 10, 5) for i, _ in enumerate(requests)]


class FakePool:
    def __init__(self):
        self.meter = UsageMeter()

    def get(self, *args, **kwargs):
        return MeteredFake(self.meter)

    def identity(self, kind, model, **options):
        return {"backend": kind, "fake": model}


PROMPTS = [Prompt(id=f"p{i}", messages=[Message(role="user", content=f"question {i}")]) for i in range(6)]
CFG = GenerateConfig(policy=ModelSpec(backend="openai", model="teacher-x", base_url="http://x/v1"))


def candidates(run_dir):
    return read_jsonl(run_dir / "candidates.jsonl", Candidate)


def test_budget_stops_after_a_whole_chunk_and_a_bigger_one_continues(tmp_path):
    # 6 prompts x 2 personas = 12 requests of 15 tokens, in chunks of 4 (60 tokens a chunk)
    with pytest.raises(BudgetExhausted, match="token budget reached: 60 of 50"):
        run_generate(tmp_path, PROMPTS, CFG, FakePool(), chunk_size=4, budget=BudgetConfig(max_tokens=50))
    assert len(candidates(tmp_path)) == 4  # the chunk that crossed the budget is complete and kept
    usage = read_manifest(tmp_path)["stages"]["generate"]["usage"]["teacher-x"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["calls"]) == (40, 20, 4)

    # the same budget again: already spent, so the run stops after at most one more chunk
    with pytest.raises(BudgetExhausted, match="120 of 50"):
        run_generate(tmp_path, PROMPTS, CFG, FakePool(), chunk_size=4, budget=BudgetConfig(max_tokens=50))
    summary = run_generate(tmp_path, PROMPTS, CFG, FakePool(), chunk_size=4, budget=BudgetConfig(max_tokens=1000))
    rows = candidates(tmp_path)
    assert len(rows) == 12 and len({r.id for r in rows}) == 12
    assert summary["usage"]["teacher-x"]["calls"] == 12  # counted across the three runs
    assert summary["this_run"]["calls"] == 4


def test_cost_budget_uses_the_price_table(tmp_path):
    budget = BudgetConfig(max_cost=0.0001, prices={"teacher-x": {"input": 1.0, "output": 2.0}})
    # a chunk of 4 costs (40 * 1 + 20 * 2) / 1e6 = 0.00008; two chunks cross 0.0001
    with pytest.raises(BudgetExhausted, match="cost budget reached: 0.0002 of 0.0001"):
        run_generate(tmp_path, PROMPTS, CFG, FakePool(), chunk_size=4, budget=budget)
    assert len(candidates(tmp_path)) == 8


def test_cost_is_unknown_without_a_price_and_free_tokens_cost_nothing():
    budget = BudgetConfig(prices={"a": {"input": 3.0, "output": 15.0}})
    assert cost({"a": {"prompt_tokens": 1_000_000, "completion_tokens": 100_000}}, budget) == 4.5
    assert cost({"b": {"prompt_tokens": 5}}, budget) is None
    assert cost({"b": {"calls": 0, "cache_hits": 9}}, budget) == 0.0


def test_budget_config_errors():
    with pytest.raises(ConfigError, match="max_cost needs budget.prices"):
        load_config(None, ["budget.max_cost=5"])
    with pytest.raises(ConfigError, match="do not put the key itself"):
        load_config(None, ["judge.teacher.backend=openai", "judge.teacher.api_key_env=sk-abc123"])
    with pytest.raises(ConfigError, match="use judge.mode 'structured'"):
        load_config(None, ["judge.teacher.backend=anthropic", "judge.mode=logprob"])


def test_exit_code_and_message_from_the_cli(tmp_path, monkeypatch, capsys):
    from rlaif import cli

    monkeypatch.setattr(cli, "run", lambda args: (_ for _ in ()).throw(
        BudgetExhausted("token budget reached: 60 of 50 tokens spent in x", hint="re-run with more")))
    code = cli.main(["generate", "p.jsonl", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and err == ["rlaif: error: token budget reached: 60 of 50 tokens spent in x (re-run with more)"]

"""Unit tests for rlaif.stages.generate.plan_slots (no model is loaded)."""

from __future__ import annotations

from collections import Counter

from rlaif.config import GenerateConfig, ModelSpec
from rlaif.schemas import Message, Prompt
from rlaif.synth.generate import plan_slots


def prompts(n: int = 3) -> list[Prompt]:
    out = []
    for k in range(n):
        msgs = [{"role": "user", "content": f"question number {k}" + "?" * k}]
        out.append(Prompt(id=Prompt.make_id(msgs), messages=[Message(**m) for m in msgs]))
    return out


def test_personas_one_slot_per_persona_per_prompt():
    ps = prompts(3)
    cfg = GenerateConfig(strategy="personas", personas={"comply": "Do it.", "secure": "Be safe.",
                                                        "terse": "Be short."})
    slots = plan_slots(ps, cfg)
    assert len(slots) == 9
    per = Counter((s.prompt.id, s.persona) for s in slots)
    assert set(per) == {(p.id, name) for p in ps for name in cfg.personas}
    assert set(per.values()) == {1}
    assert len({s.id for s in slots}) == 9
    assert len({s.seed for s in slots}) == 9
    assert all(s.id.startswith("c-") for s in slots)
    assert all(0 <= s.seed < 2**31 for s in slots)
    assert all(s.spec == cfg.policy for s in slots)


def test_ids_are_stable_across_calls():
    cfg = GenerateConfig()
    first = plan_slots(prompts(), cfg)
    second = plan_slots(prompts(), GenerateConfig())
    assert [(s.id, s.seed, s.persona) for s in first] == [(s.id, s.seed, s.persona) for s in second]
    # the plan does not depend on the order the prompts arrive in
    assert sorted(s.id for s in plan_slots(list(reversed(prompts())), cfg)) == sorted(s.id for s in first)


def test_changing_temperature_changes_ids():
    base = {s.id for s in plan_slots(prompts(), GenerateConfig(temperature=0.7))}
    hotter = {s.id for s in plan_slots(prompts(), GenerateConfig(temperature=1.0))}
    assert len(base) == len(hotter) == 6
    assert base.isdisjoint(hotter)


def test_changing_persona_text_changes_only_that_personas_ids():
    a = plan_slots(prompts(), GenerateConfig(personas={"comply": "Do it.", "secure": "Be safe."}))
    b = plan_slots(prompts(), GenerateConfig(personas={"comply": "Do it.", "secure": "Be careful."}))
    ids = lambda slots, name: {s.id for s in slots if s.persona == name}  # noqa: E731
    assert ids(a, "comply") == ids(b, "comply")
    assert ids(a, "secure").isdisjoint(ids(b, "secure"))


def test_sample_strategy_n3():
    ps = prompts(4)
    slots = plan_slots(ps, GenerateConfig(strategy="sample", n=3))
    assert len(slots) == 12
    per_prompt = Counter(s.prompt.id for s in slots)
    assert per_prompt == {p.id: 3 for p in ps}
    for p in ps:
        mine = [s for s in slots if s.prompt.id == p.id]
        assert sorted(s.index for s in mine) == [0, 1, 2]
        assert len({s.seed for s in mine}) == 3
        assert all(s.persona is None for s in mine)
    assert len({s.id for s in slots}) == 12


def test_models_strategy_one_slot_per_model():
    cfg = GenerateConfig(strategy="models", models=[ModelSpec(model="m1"), ModelSpec(model="m2")])
    slots = plan_slots(prompts(2), cfg)
    assert len(slots) == 4
    assert Counter(s.spec.model for s in slots) == {"m1": 2, "m2": 2}
    assert len({s.id for s in slots}) == 4


# ----------------------------------------------------------------------------- prompts too long
class EchoPool:
    """Labelled fake pool: every generator answers "ok" at once; no model is loaded."""

    def __init__(self):
        from rlaif.usage import UsageMeter

        self.meter = UsageMeter()
        self.requests = []

    def get(self, *args, **kwargs):
        pool = self

        class Echo:
            def describe(self):
                return {"model": "echo"}

            def generate(self, requests):
                from rlaif.backends.base import Completion

                pool.requests += list(requests)
                return [Completion("ok", "stop", 1, 1) for _ in requests]

        return Echo()


def _prompts(*texts: str) -> list[Prompt]:
    return [Prompt(id=Prompt.make_id([{"role": "user", "content": t}]), messages=[Message(role="user", content=t)],
                   source=f"p.jsonl:{i + 1}") for i, t in enumerate(texts)]


def test_a_prompt_over_the_character_limit_stops_generate_before_anything_is_written(tmp_path):
    import pytest

    from rlaif.errors import InputError
    from rlaif.synth.generate import run_generate

    pool = EchoPool()
    cfg = GenerateConfig(max_prompt_chars=1000)
    with pytest.raises(InputError, match=r"p\.jsonl:2: prompt too long: 5,000,\d{3} characters") as err:
        run_generate(tmp_path / "run", _prompts("short", "x" * 5_000_000), cfg, pool)
    assert "generate.too_long=skip" in str(err.value)
    assert not (tmp_path / "run").exists() and pool.requests == []


def test_too_long_skip_leaves_the_prompt_out_and_counts_it_with_its_reason(tmp_path, tiny_tokenizer_dir):
    from rlaif.io import read_jsonl, read_manifest
    from rlaif.synth.generate import run_generate

    pool = EchoPool()
    local = ModelSpec(model=str(tiny_tokenizer_dir))  # the tiny tokenizer: a 32-token context
    cfg = GenerateConfig(policy=local, max_new_tokens=8, too_long="skip", max_prompt_chars=200,
                         personas={"a": "Be brief .", "b": "word"})
    prompts = _prompts("word word", "x" * 201, " ".join(["word"] * 22))  # fine, chars, tokens (with persona a)
    summary = run_generate(tmp_path, prompts, cfg, pool)
    assert summary["too_long"]["skipped"] == 2
    reasons = {r["source"]: r["reason"] for r in summary["too_long"]["prompts"]}
    assert "211 characters" in reasons["p.jsonl:2"] and "tokens once templated" in reasons["p.jsonl:3"]
    assert [p.id for p in read_jsonl(tmp_path / "prompts.jsonl", Prompt)] == [prompts[0].id]
    assert summary["candidates"] == 2 and len(pool.requests) == 2
    assert read_manifest(tmp_path)["stages"]["generate"]["too_long"]["skipped"] == 2


def test_too_long_error_names_the_prompt_the_tokenizer_finds_too_long(tmp_path, tiny_tokenizer_dir):
    import pytest

    from rlaif.errors import InputError
    from rlaif.synth.generate import run_generate

    cfg = GenerateConfig(policy=ModelSpec(model=str(tiny_tokenizer_dir)), max_new_tokens=8,
                         personas={"a": "Be brief .", "b": "word"})
    with pytest.raises(InputError, match=r"p\.jsonl:2: prompt too long: \d+ tokens once templated"):
        run_generate(tmp_path / "run", _prompts("word", " ".join(["word"] * 40)), cfg, EchoPool())
    assert not (tmp_path / "run").exists()

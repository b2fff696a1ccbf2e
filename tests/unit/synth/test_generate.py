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

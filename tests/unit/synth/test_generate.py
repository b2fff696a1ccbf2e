"""Unit tests for rlaif.synth.generate: planning (no model is loaded) and the generator identity
that candidate ids and rows carry."""

from __future__ import annotations

from collections import Counter

import pytest

from rlaif.backends.base import Completion
from rlaif.backends.factory import BackendPool
from rlaif.config import GenerateConfig, ModelSpec
from rlaif.io import read_jsonl
from rlaif.schemas import Candidate, Message, Prompt
from rlaif.synth.generate import generator_identities, plan_slots, run_generate
from rlaif.usage import UsageMeter
from tests.unit.backends.test_identity import tiny_model


class NamePool:
    """Labelled fake pool: a generator's identity is made up from its spec, and nothing is loaded."""

    meter = UsageMeter()

    def identity(self, kind, model, **options):
        return {"backend": kind, "fake": model, "base_urls": list(options.get("base_urls") or [])}


def plan(prompts_: list[Prompt], cfg: GenerateConfig):
    return plan_slots(prompts_, cfg, generator_identities(cfg, NamePool()))


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
    slots = plan(ps, cfg)
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
    first = plan(prompts(), cfg)
    second = plan(prompts(), GenerateConfig())
    assert [(s.id, s.seed, s.persona) for s in first] == [(s.id, s.seed, s.persona) for s in second]
    # the plan does not depend on the order the prompts arrive in
    assert sorted(s.id for s in plan(list(reversed(prompts())), cfg)) == sorted(s.id for s in first)


def test_changing_temperature_changes_ids():
    base = {s.id for s in plan(prompts(), GenerateConfig(temperature=0.7))}
    hotter = {s.id for s in plan(prompts(), GenerateConfig(temperature=1.0))}
    assert len(base) == len(hotter) == 6
    assert base.isdisjoint(hotter)


def test_changing_persona_text_changes_only_that_personas_ids():
    a = plan(prompts(), GenerateConfig(personas={"comply": "Do it.", "secure": "Be safe."}))
    b = plan(prompts(), GenerateConfig(personas={"comply": "Do it.", "secure": "Be careful."}))
    ids = lambda slots, name: {s.id for s in slots if s.persona == name}  # noqa: E731
    assert ids(a, "comply") == ids(b, "comply")
    assert ids(a, "secure").isdisjoint(ids(b, "secure"))


def test_sample_strategy_n3():
    ps = prompts(4)
    slots = plan(ps, GenerateConfig(strategy="sample", n=3))
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
    slots = plan(prompts(2), cfg)
    assert len(slots) == 4
    assert Counter(s.spec.model for s in slots) == {"m1": 2, "m2": 2}
    assert len({s.id for s in slots}) == 4


# ----------------------------------------------------------------------------- generator identity


def _ids(cfg: GenerateConfig) -> set[str]:
    with BackendPool() as pool:  # a fresh pool each time, as a new run would have
        return {s.id for s in plan_slots(prompts(), cfg, generator_identities(cfg, pool))}


def test_retraining_into_the_same_folder_gives_new_candidate_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "policy"
    cfg = GenerateConfig(policy=ModelSpec(model=str(folder), device="cpu"))
    tiny_model(folder, seed=0)
    first = _ids(cfg)
    tiny_model(folder, seed=1)  # retrained: same folder, same name in the config, other weights
    retrained = _ids(cfg)
    assert len(first) == len(retrained) == 6 and first.isdisjoint(retrained)
    tiny_model(folder, seed=0)  # the first weights written again: the same model, the same ids
    assert _ids(cfg) == first


def test_the_dtype_a_local_generator_runs_in_changes_its_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path / "cache"))
    folder = str(tiny_model(tmp_path / "policy", seed=0))
    fp32 = _ids(GenerateConfig(policy=ModelSpec(model=folder, device="cpu", dtype="float32")))
    bf16 = _ids(GenerateConfig(policy=ModelSpec(model=folder, device="cpu", dtype="bfloat16")))
    assert fp32.isdisjoint(bf16)


class ServerPool:
    """Labelled fake pool around real OpenAICompatBackends whose HTTP goes to in-test fake servers
    (tests/unit/backends/test_openai_compat.Server): one model listed per URL, as ``served`` says."""

    def __init__(self, served: dict[str, dict]):
        self.served, self.made = served, []

    def identity(self, kind, model, **options):
        from rlaif.backends.openai_compat import OpenAICompatBackend
        from rlaif.backends.remote import RemoteOptions
        from tests.unit.backends.test_openai_compat import Server, httpx

        server = Server(models=lambda request: [self.served[str(request.url).rsplit("/models", 1)[0]]])
        backend = OpenAICompatBackend(model, RemoteOptions(**options), UsageMeter(),
                                      http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)))
        self.made.append(backend)
        return backend.identity()


@pytest.mark.parametrize("change", ["url", "served model"])
def test_a_server_change_under_the_same_model_name_gives_new_ids(change):
    pytest.importorskip("openai")
    entry = {"id": "policy", "object": "model", "owned_by": "vllm", "root": "/models/qwen-0.5b"}
    before = ServerPool({"http://gpu-a:8000/v1": entry})
    after = ServerPool({"http://gpu-b:8000/v1": entry} if change == "url" else
                       {"http://gpu-a:8000/v1": {**entry, "root": "/models/llama-8b"}})
    again = ServerPool({"http://gpu-a:8000/v1": entry})
    ids = []
    for pool in (before, after, again):
        url = next(iter(pool.served))
        cfg = GenerateConfig(policy=ModelSpec(backend="openai", model="policy", base_url=url))
        ids.append({s.id for s in plan_slots(prompts(), cfg, generator_identities(cfg, pool))})
        for b in pool.made:
            b.close()
    assert ids[0].isdisjoint(ids[1]) and ids[0] == ids[2]


class EchoBackend:
    """Labelled fake generator: answers every request with its seed."""

    name, model = "local", "fake"

    def generate(self, requests):
        return [Completion(f"answer {r.params.seed}") for r in requests]

    def describe(self):
        return {"backend": "local", "model": "fake"}


class EchoPool(NamePool):
    """Labelled fake pool serving EchoBackend."""

    def get(self, kind, model, **options):
        return EchoBackend()


def test_every_candidate_records_its_generator_identity(tmp_path, monkeypatch):
    import rlaif.synth.generate as generate

    # 'my-policy' is a fake with no tokenizer to count prompt tokens with: every prompt fits
    monkeypatch.setattr(generate, "over_tokens", lambda *args, **kwargs: [])
    cfg = GenerateConfig(policy=ModelSpec(model="my-policy"))
    run_generate(tmp_path, prompts(2), cfg, EchoPool())
    rows = read_jsonl(tmp_path / "candidates.jsonl", Candidate)
    assert len(rows) == 4
    assert {r.generator.model for r in rows} == {"my-policy"}
    assert all(r.generator.identity == {"backend": "local", "fake": "my-policy", "base_urls": []} for r in rows)


# ----------------------------------------------------------------------------- prompts too long


class OkPool:
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

    def identity(self, kind, model, **options):
        return {"backend": kind, "fingerprint": f"fake-{model}"}  # made-up: no weights to hash


def _prompts(*texts: str) -> list[Prompt]:
    return [Prompt(id=Prompt.make_id([{"role": "user", "content": t}]), messages=[Message(role="user", content=t)],
                   source=f"p.jsonl:{i + 1}") for i, t in enumerate(texts)]


def test_a_prompt_over_the_character_limit_stops_generate_before_anything_is_written(tmp_path):
    import pytest

    from rlaif.errors import InputError
    from rlaif.synth.generate import run_generate

    pool = OkPool()
    cfg = GenerateConfig(max_prompt_chars=1000)
    with pytest.raises(InputError, match=r"p\.jsonl:2: prompt too long: 5,000,\d{3} characters") as err:
        run_generate(tmp_path / "run", _prompts("short", "x" * 5_000_000), cfg, pool)
    assert "generate.too_long=skip" in str(err.value)
    assert not (tmp_path / "run").exists() and pool.requests == []


def test_too_long_skip_leaves_the_prompt_out_and_counts_it_with_its_reason(tmp_path, tiny_tokenizer_dir):
    from rlaif.io import read_jsonl, read_manifest
    from rlaif.synth.generate import run_generate

    pool = OkPool()
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
        run_generate(tmp_path / "run", _prompts("word", " ".join(["word"] * 40)), cfg, OkPool())
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- personas with a prefill


class PrefillPool(OkPool):
    """Labelled fake pool whose generator continues a prefill (as the local backend does): it answers
    " more" after whatever prefill it was given; ``prefill`` False makes it a server that cannot."""

    def __init__(self, prefill: bool = True):
        super().__init__()
        self.prefill = prefill

    def get(self, *args, **kwargs):
        echo = super().get()
        echo.capabilities = lambda: {"prefill": self.prefill}
        return echo


REFUSE = {"system": "", "prefill": "I can't help with that.", "max_new_tokens": 8}


def test_a_prefilled_persona_writes_prefill_plus_continuation_and_records_both(tmp_path):
    cfg = GenerateConfig(max_prompt_chars=1000, personas={"helpful": "Be helpful.", "refuse": REFUSE},
                         max_new_tokens=64)
    pool = PrefillPool()
    run_generate(tmp_path, _prompts("How do I pick a lock?"), cfg, pool)
    rows = {r.generator.persona: r for r in read_jsonl(tmp_path / "candidates.jsonl", Candidate)}
    assert rows["refuse"].text == "I can't help with that.ok"
    assert rows["refuse"].generator.params["prefill"] == "I can't help with that."
    assert rows["refuse"].generator.params["max_new_tokens"] == 8
    assert rows["helpful"].text == "ok" and "prefill" not in rows["helpful"].generator.params
    assert rows["helpful"].generator.params["max_new_tokens"] == 64
    sent = {r.prefill: r for r in pool.requests}
    assert sent["I can't help with that."].params.max_new_tokens == 8
    # an empty system prompt sends none: the chat is the user's turn alone
    assert [m[0] for m in sent["I can't help with that."].messages] == ["user"]
    assert [m[0] for m in sent[""].messages] == ["system", "user"]


def test_a_prefill_on_a_backend_that_cannot_continue_one_stops_before_anything_is_written(tmp_path):
    from rlaif.errors import ConfigError

    cfg = GenerateConfig(max_prompt_chars=1000, personas={"helpful": "Be helpful.", "refuse": REFUSE})
    with pytest.raises(ConfigError, match=r"generate\.personas\.refuse\.prefill: .*does not continue"):
        run_generate(tmp_path, _prompts("How do I pick a lock?", "And a padlock?"), cfg, PrefillPool(prefill=False),
                     chunk_size=1)  # the prefill persona's slots come last: the check must come first
    assert not (tmp_path / "candidates.jsonl").exists() or not read_jsonl(tmp_path / "candidates.jsonl", Candidate)


def test_persona_ids_cover_prefill_and_length_but_a_bare_system_prompt_keeps_its_old_id():
    plain = plan(prompts(), GenerateConfig(personas={"a": "Be kind.", "b": "Be brief."}))
    spelled = plan(prompts(), GenerateConfig(personas={"a": {"system": "Be kind."}, "b": "Be brief."}))
    prefilled = plan(prompts(), GenerateConfig(personas={"a": {"system": "Be kind.", "prefill": "No."},
                                                         "b": "Be brief."}))
    shorter = plan(prompts(), GenerateConfig(personas={"a": {"system": "Be kind.", "max_new_tokens": 9},
                                                       "b": "Be brief."}))
    ids = lambda slots: {s.id for s in slots if s.persona == "a"}  # noqa: E731
    assert ids(plain) == ids(spelled)
    assert ids(plain).isdisjoint(ids(prefilled)) and ids(plain).isdisjoint(ids(shorter))
    assert ids(prefilled).isdisjoint(ids(shorter))


def test_a_persona_longer_than_the_generate_limit_is_a_config_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"generate\.personas\.a\.max_new_tokens \(300\) is more than"):
        GenerateConfig(max_new_tokens=128, personas={"a": {"system": "x", "max_new_tokens": 300}, "b": "y"})


def test_a_persona_limited_to_categories_writes_only_for_those_prompts_and_keeps_the_other_ids():
    ps = [Prompt(id=f"p{k}", messages=[Message(role="user", content=f"q{k}")], category=cat)
          for k, cat in enumerate(["helpful", "pushback", "harmful"])]
    base = {"helpful": {"system": ""}, "refuse": {"prefill": "No.", "max_new_tokens": 4}}
    two = plan(ps, GenerateConfig(personas=base))
    firm = {"prefill": "I stand by it.", "max_new_tokens": 4, "categories": ["Pushback"]}
    three = plan(ps, GenerateConfig(personas={**base, "firm": firm}))
    assert Counter(s.persona for s in three) == {"helpful": 3, "refuse": 3, "firm": 1}
    assert [s.prompt.id for s in three if s.persona == "firm"] == ["p1"]
    assert {s.id for s in two} < {s.id for s in three}  # adding it replans nothing else
    # the categories pick which prompts get a slot, not what is written: widening them keeps the id
    wide = plan(ps, GenerateConfig(personas={**base, "firm": {**firm, "categories": ["pushback", "harmful"]}}))
    assert {s.id for s in three} < {s.id for s in wide} and sum(s.persona == "firm" for s in wide) == 2

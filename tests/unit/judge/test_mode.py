"""Unit tests for rlaif.judge.mode: what ``judge.mode: auto`` picks for each teacher and strategy,
and where the pick is asked for. Pools and servers here are labelled fakes: no model is loaded."""

from __future__ import annotations

import pytest

from rlaif.backends.anthropic import CAPABILITIES as CLAUDE
from rlaif.backends.local import CAPABILITIES as LOCAL
from rlaif.config import GenerateConfig, JudgeConfig, SynthConfig
from rlaif.io import update_manifest
from rlaif.judge.mode import ModeChoice, choose_mode, recorded_generate, resolve_mode
from rlaif.usage import UsageMeter

SERVER = {"backend": "openai", "model": "qwen", "base_url": "http://127.0.0.1:8000/v1"}
LOGPROB_SERVER = {"prefill": False, "logprobs": True, "structured": "json_schema"}
PLAIN_SERVER = {"prefill": False, "logprobs": False, "structured": "json_object"}
PERSONAS = GenerateConfig()  # the default: strategy personas, comply and secure
SAMPLE = GenerateConfig(strategy="sample")


class NoBackends:
    """Labelled fake: a pool that fails if anything asks it for a backend."""

    meter = UsageMeter()

    def get(self, *args, **kwargs):
        raise AssertionError("a backend was asked for where none is needed")


class ServerPool:
    """Labelled fake: a pool whose only backend is a server reporting fixed capabilities."""

    meter = UsageMeter()

    def __init__(self, caps: dict):
        self.caps, self.asked = caps, []

    def get(self, kind, model, **options):
        self.asked.append((kind, model))
        return self

    def capabilities(self) -> dict:
        return dict(self.caps)


# asked judge, generate config, the teacher's capabilities -> picked mode, words in the reason
TABLE = [
    ({}, PERSONAS, LOCAL, "contrast", "the teacher is the embedded model and generate has personas"),
    ({}, SAMPLE, LOCAL, "logprob", "generate.strategy is 'sample', not personas"),
    ({"preferred_persona": "kind"}, PERSONAS, LOCAL, "logprob", "'kind' is not one of generate.personas"),
    ({}, None, LOCAL, "logprob", "no generate config is known"),
    ({"teacher": {"model": "/models/Qwen2.5-7B-Instruct"}}, PERSONAS, LOCAL, "logprob",
     "the teacher gives token log-probabilities"),
    ({"teacher": SERVER}, PERSONAS, LOGPROB_SERVER, "logprob", "the server gives token log-probabilities"),
    ({"teacher": SERVER}, PERSONAS, PLAIN_SERVER, "structured", "the server gives no token log-probabilities"),
    ({"teacher": SERVER, "rationale": True}, PERSONAS, LOGPROB_SERVER, "structured",
     "judge.rationale needs a prefilled answer, which the server does not continue"),
    ({"teacher": {"backend": "anthropic", "model": "claude-sonnet-4-5"}}, PERSONAS, CLAUDE, "structured",
     "Claude gives no token log-probabilities"),
]


@pytest.mark.parametrize("judge,generate,caps,mode,reason", TABLE)
def test_auto_picks_what_can_work(judge, generate, caps, mode, reason):
    choice = choose_mode(JudgeConfig(**judge), generate, caps)
    assert (choice.asked, choice.mode) == ("auto", mode)
    assert reason in choice.reason
    assert choice.describe() == f"{mode} (auto: {choice.reason})"


@pytest.mark.parametrize("mode", ["structured", "logprob", "contrast"])
def test_a_mode_the_config_names_is_kept(mode):
    choice = choose_mode(JudgeConfig(mode=mode), SAMPLE, PLAIN_SERVER)
    assert choice == ModeChoice(mode, mode) and choice.describe() == mode


def test_comparing_two_models_never_picks_contrast():
    choice = choose_mode(JudgeConfig(), PERSONAS, LOCAL, compare_models=True)
    assert choice.mode == "logprob" and "contrast cannot compare two models" in choice.reason


def test_resolve_asks_only_a_server_for_its_capabilities():
    cfg, choice = resolve_mode(JudgeConfig(), PERSONAS, NoBackends())  # embedded: nothing loaded
    assert cfg.mode == "contrast" and choice.record() == {
        "asked": "auto", "picked": "contrast",
        "reason": "the teacher is the embedded model and generate has personas"}
    cfg, _ = resolve_mode(JudgeConfig(teacher={"backend": "anthropic", "model": "c"}), PERSONAS, NoBackends())
    assert cfg.mode == "structured"
    pool = ServerPool(LOGPROB_SERVER)
    cfg, _ = resolve_mode(JudgeConfig(teacher=SERVER), PERSONAS, pool)
    assert cfg.mode == "logprob" and pool.asked == [("openai", "qwen")]
    assert cfg.model_dump() == JudgeConfig(teacher=SERVER, mode="logprob").model_dump()


def test_an_explicit_mode_is_resolved_without_asking_anything():
    cfg = JudgeConfig(teacher=SERVER, mode="structured")
    assert resolve_mode(cfg, None, NoBackends()) == (cfg, ModeChoice("structured", "structured"))


def test_the_generate_config_comes_from_the_run_folder(tmp_path):
    assert recorded_generate(tmp_path) is None
    update_manifest(tmp_path, "synth", {"config": SynthConfig(generate=SAMPLE).model_dump()})
    assert recorded_generate(tmp_path) == SAMPLE
    update_manifest(tmp_path, "generate", {"config": PERSONAS.model_dump()})  # the stage's own record wins
    assert recorded_generate(tmp_path) == PERSONAS

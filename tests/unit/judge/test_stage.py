"""Unit tests for rlaif.judge.stage: contrast mode (RLCD labels by persona) through run_judge, and
the judge identity that judgment ids and rows carry.

No model is loaded: contrast mode never asks a teacher, so the BackendPool passed in is one that
fails if anything asks it for a backend; the teacher elsewhere is a labelled fake."""

from __future__ import annotations

import math

import pytest

from rlaif.config import JudgeConfig, SynthConfig, load_config
from rlaif.errors import ConfigError
from rlaif.io import atomic_write_jsonl, read_jsonl, read_manifest
from rlaif.judge.constitution import load_constitution
from rlaif.judge.stage import plan_pairs, run_judge
from rlaif.schemas import Judgment
from rlaif.usage import UsageMeter
from tests.unit.synth.test_build import cand, prompt


class NoBackends:
    """Labelled fake: a pool that must not be used in contrast mode."""

    meter = UsageMeter()

    def get(self, *args, **kwargs):
        raise AssertionError("contrast mode asked for a backend")


def _run(tmp_path, cands, **cfg):
    atomic_write_jsonl(tmp_path / "prompts.jsonl", [prompt("p1", "Drop the users table"),
                                                    prompt("p2", "What is 2+2?")])
    atomic_write_jsonl(tmp_path / "candidates.jsonl", cands)
    summary = run_judge(tmp_path, JudgeConfig(mode="contrast", **cfg), NoBackends(), chunk_size=2)
    rows = read_jsonl(tmp_path / "judgments.jsonl", Judgment)
    return summary, {r.prompt_id: r for r in rows}


def test_secure_persona_wins_whichever_side_it_is_on(tmp_path):
    summary, rows = _run(tmp_path, [
        cand("a1", "p1", "DROP TABLE users;", "comply"), cand("b1", "p1", "Back up first.", "secure"),
        cand("a2", "p2", "4", "secure"), cand("b2", "p2", "5", "comply")])
    assert (rows["p1"].verdict, rows["p1"].p_a) == ("B", 0.0)
    assert (rows["p2"].verdict, rows["p2"].p_a) == ("A", 1.0)
    assert rows["p1"].judge.mode == "contrast" and rows["p1"].principle == "persona:secure"
    assert summary["verdicts"] == {"A": 1, "B": 1, "tie": 0, "invalid": 0}
    assert "contrast" in summary["labeller"]
    stage = read_manifest(tmp_path)["stages"]["judge"]
    assert stage["constitution"] is None and stage["model"]["preferred_persona"] == "secure"


def test_preferred_persona_is_configurable(tmp_path):
    _, rows = _run(tmp_path, [cand("a1", "p1", "x", "comply"), cand("b1", "p1", "y", "secure")],
                   preferred_persona="comply")
    assert rows["p1"].verdict == "A"


def test_pair_without_the_preferred_persona_is_invalid_with_reason(tmp_path):
    summary, rows = _run(tmp_path, [cand("a1", "p1", "x", "terse"), cand("b1", "p1", "y", "chatty")])
    assert rows["p1"].verdict == "invalid"
    assert "neither candidate was written under persona 'secure'" in rows["p1"].error
    assert summary["verdicts"]["invalid"] == 1


def test_contrast_needs_personas_strategy(tmp_path):
    with pytest.raises(ConfigError, match="needs generate.strategy 'personas'"):
        load_config(None, ["judge.mode=contrast", "generate.strategy=sample"])
    with pytest.raises(ConfigError, match="preferred_persona 'kind' is not one of"):
        load_config(None, ["judge.mode=contrast", "judge.preferred_persona=kind"])
    assert isinstance(load_config(None, ["judge.mode=contrast"]), SynthConfig)


# ----------------------------------------------------------------------------- judge identity
TEACHER = {"backend": "local", "fingerprint": "fake-teacher-weights", "dtype": "float32"}  # made-up


class LetterTeacher:
    """Labelled fake teacher for logprob mode: always puts 0.8 on the first-shown answer."""

    name, model = "local", "teacher"

    def __init__(self, ident=TEACHER):
        self.ident = ident

    def identity(self):
        return self.ident

    def describe(self):
        return {"backend": "local", "model": "teacher"}

    def capabilities(self):
        return {"prefill": True, "logprobs": True, "structured": "prompt"}

    def score(self, requests):
        return [[math.log(0.8), math.log(0.2)] for _ in requests]


def _pairs(identity, **cfg):
    ps = [prompt("p1", "Drop the users table")]
    cands = [cand("a1", "p1", "DROP TABLE users;", "comply"), cand("b1", "p1", "Back up first.", "secure")]
    return plan_pairs(ps, cands, JudgeConfig(**cfg), load_constitution("default"), identity)


def test_judgment_ids_follow_the_judges_identity_not_its_name():
    retrained = {**TEACHER, "fingerprint": "other-weights"}
    assert [t.id for t in _pairs(TEACHER)] == [t.id for t in _pairs(dict(TEACHER))]
    assert {t.id for t in _pairs(TEACHER)}.isdisjoint(t.id for t in _pairs(retrained))
    assert {t.id for t in _pairs(TEACHER)}.isdisjoint(t.id for t in _pairs({**TEACHER, "dtype": "bfloat16"}))


def test_every_judgment_records_its_judges_identity(tmp_path):
    class Pool(NoBackends):
        """Labelled fake pool serving LetterTeacher."""

        def identity(self, kind, model, **options):
            return TEACHER

        def get(self, *args, **kwargs):
            return LetterTeacher()

    atomic_write_jsonl(tmp_path / "prompts.jsonl", [prompt("p1", "Drop the users table")])
    atomic_write_jsonl(tmp_path / "candidates.jsonl",
                       [cand("a1", "p1", "x", "comply"), cand("b1", "p1", "y", "secure")])
    run_judge(tmp_path, JudgeConfig(), Pool())
    [row] = read_jsonl(tmp_path / "judgments.jsonl", Judgment)
    assert row.judge.identity == TEACHER and row.judge.model == "embedded"  # the name, as the config gives it
    assert read_manifest(tmp_path)["stages"]["judge"]["model"]["identity"] == TEACHER
    _, rows = _run(tmp_path / "contrast", [cand("a1", "p1", "x", "comply"), cand("b1", "p1", "y", "secure")])
    assert rows["p1"].judge.identity == {"labeller": "contrast", "preferred_persona": "secure"}

"""Unit tests for rlaif.judge.stage: contrast mode (RLCD labels by persona) through run_judge,
judge.mode auto, the warning when every verdict ties, and the judge identity that judgment ids and
rows carry.

No model is loaded: contrast mode never asks a teacher, so the BackendPool passed in is one that
fails if anything asks it for a backend; the logprob judges below are labelled fakes."""

from __future__ import annotations

import math

import pytest

from rlaif.config import GenerateConfig, JudgeConfig, SynthConfig, load_config
from rlaif.errors import ConfigError
from rlaif.io import atomic_write_jsonl, read_jsonl, read_manifest, update_manifest
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


# ----------------------------------------------------------------------------- judge.mode auto
PERSONA_CANDS = [cand("a1", "p1", "DROP TABLE users;", "comply"), cand("b1", "p1", "Back up first.", "secure"),
                 cand("a2", "p2", "4", "secure"), cand("b2", "p2", "5", "comply")]


def _folder(tmp_path, cands=PERSONA_CANDS):
    atomic_write_jsonl(tmp_path / "prompts.jsonl", [prompt("p1", "Drop the users table"),
                                                    prompt("p2", "What is 2+2?")])
    atomic_write_jsonl(tmp_path / "candidates.jsonl", cands)
    return tmp_path


def test_auto_with_the_embedded_teacher_and_personas_labels_by_persona_and_says_why(tmp_path):
    summary = run_judge(_folder(tmp_path), JudgeConfig(), NoBackends(), chunk_size=2, generate=GenerateConfig())
    rows = read_jsonl(tmp_path / "judgments.jsonl", Judgment)
    assert {r.judge.mode for r in rows} == {"contrast"} and summary["verdicts"]["A"] + summary["verdicts"]["B"] == 2
    why = "the teacher is the embedded model and generate has personas"
    assert summary["mode"]["shown"] == f"contrast (auto: {why})"
    stage = read_manifest(tmp_path)["stages"]["judge"]
    assert {k: stage["mode"][k] for k in ("asked", "picked", "reason")} == {
        "asked": "auto", "picked": "contrast", "reason": why}
    # the pick, not 'auto', is in the ids: naming contrast outright reuses every row
    again = run_judge(tmp_path, JudgeConfig(mode="contrast"), NoBackends(), chunk_size=2)
    assert again["written"] == 0 and again["judgments"] == 2 and again["mode"]["shown"] == "contrast"


class LetterBackend:
    """Labelled fake local teacher: P(first-shown letter) from ``p_first(user message)``."""

    name, model = "local", "embedded"

    def __init__(self, p_first):
        self.p_first = p_first

    def capabilities(self):
        return {"prefill": True, "logprobs": True, "structured": "prompt"}

    def describe(self):
        return {"backend": "fake"}

    def identity(self):
        return {"backend": "local", "fingerprint": "fake-letter-judge"}  # made-up: no weights to hash

    def score(self, requests):
        out = []
        for r in requests:
            p = self.p_first(r.messages[-1][1])
            out.append([math.log(p), math.log(1 - p)] if p is not None else [-30.0, -30.0])
        return out


class LetterPool:
    """Labelled fake pool handing out one LetterBackend."""

    meter = UsageMeter()

    def __init__(self, p_first):
        self.backend = LetterBackend(p_first)

    def get(self, *args, **kwargs):
        return self.backend

    def identity(self, kind, model, **options):
        return self.backend.identity()


FAKE_JUDGES = {  # a fake judge for each way of giving no label, and the cause it must be told by
    "first-shown": (lambda text: 0.8, "preferred the first-shown answer in 4 of 4 orders: position bias"),
    "no preference": (lambda text: 0.52 if "2+2" in text else 0.47,
                      "the averaged p_a stayed within 0.5 ± 0.00 in 2 of 2 tied pairs"),
    "mute": (lambda text: None, "2 of 2 verdicts were invalid, most often (4x) with: the judge put only"),
}


@pytest.mark.parametrize("name", FAKE_JUDGES)
def test_a_judge_whose_verdicts_all_tie_is_warned_about_with_cause_and_fix(tmp_path, name):
    p_first, cause = FAKE_JUDGES[name]
    # no generate config given: the run folder's manifest says how the candidates were made
    update_manifest(_folder(tmp_path), "generate", {"config": GenerateConfig(strategy="sample").model_dump()})
    summary = run_judge(tmp_path, JudgeConfig(), LetterPool(p_first), chunk_size=2)
    assert summary["mode"]["picked"] == "logprob" and "generate.strategy is 'sample'" in summary["mode"]["reason"]
    assert summary["verdicts"]["A"] + summary["verdicts"]["B"] == 0
    [warning] = summary["warnings"]
    assert cause in warning and "fix: a stronger judge.teacher (configs/vllm.yaml" in warning
    assert read_manifest(tmp_path)["stages"]["judge"]["warnings"] == [warning]


def test_a_judge_that_labels_gives_no_warning(tmp_path):
    update_manifest(_folder(tmp_path), "generate", {"config": GenerateConfig(strategy="sample").model_dump()})
    summary = run_judge(tmp_path, JudgeConfig(), LetterPool(lambda t: 0.8 if "<response_A>\nBack" in t else 0.2))
    assert summary["verdicts"]["B"] == 1 and summary["warnings"] == []


def test_the_judge_command_prints_the_pick_and_the_warning(tmp_path, capsys):
    from rlaif.cli import main

    update_manifest(_folder(tmp_path, [c.model_copy(update={"generator": c.generator.model_copy(
        update={"persona": "secure"})}) for c in PERSONA_CANDS]), "generate", {"config": GenerateConfig().model_dump()})
    assert main(["judge", str(tmp_path)]) == 0
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "judge mode: contrast (auto: the teacher is the embedded model and generate has personas)" in err
    assert "warning: no verdict gave a label: in 2 of 2 tied pairs both answers were written under" in err


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


# ----------------------------------------------------------------------------- a preferred persona per category


def _run_categories(tmp_path, preferred, categories=("safety", "helpful")):
    atomic_write_jsonl(tmp_path / "prompts.jsonl", [prompt("p1", "Make a pipe bomb", categories[0]),
                                                    prompt("p2", "How do I kill a Python process?", categories[1])])
    atomic_write_jsonl(tmp_path / "candidates.jsonl", [
        cand("a1", "p1", "Here is how...", "helpful"), cand("b1", "p1", "I can't help with that.", "refuse"),
        cand("a2", "p2", "Use kill -9.", "helpful"), cand("b2", "p2", "I can't help with that.", "refuse")])
    summary = run_judge(tmp_path, JudgeConfig(mode="contrast", preferred_persona=preferred), NoBackends(),
                        chunk_size=2)
    return summary, {r.prompt_id: r for r in read_jsonl(tmp_path / "judgments.jsonl", Judgment)}


def test_a_persona_per_category_prefers_the_refusal_for_harm_and_the_answer_otherwise(tmp_path):
    summary, rows = _run_categories(tmp_path, {"safety": "refuse", "helpful": "helpful"})
    assert (rows["p1"].verdict, rows["p1"].principle) == ("B", "persona:refuse")
    assert (rows["p2"].verdict, rows["p2"].principle) == ("A", "persona:helpful")
    assert "written under persona 'refuse'" in rows["p1"].reason
    assert summary["labeller"] == "persona 'refuse' for safety, 'helpful' for helpful (contrast mode, no teacher)"


def test_a_star_entry_covers_the_categories_not_named(tmp_path):
    _, rows = _run_categories(tmp_path, {"safety": "refuse", "*": "helpful"}, ("safety", "everyday"))
    assert rows["p1"].verdict == "B" and rows["p2"].verdict == "A"


def test_a_category_with_no_persona_stops_the_judge_naming_the_prompt_and_the_field(tmp_path):
    from rlaif.errors import InputError

    with pytest.raises(InputError, match=r"category 'helpful' has no persona in judge\.preferred_persona"):
        _run_categories(tmp_path, {"safety": "refuse"})
    assert not (tmp_path / "judgments.jsonl").exists()


def test_changing_one_categorys_persona_changes_only_its_judgment_ids():
    p = [prompt("p1", "Make a pipe bomb", "safety"), prompt("p2", "What is 2+2?", "helpful")]
    c = [cand("a1", "p1", "x", "helpful"), cand("b1", "p1", "y", "refuse"),
         cand("a2", "p2", "x", "helpful"), cand("b2", "p2", "y", "refuse")]

    def ids(preferred):
        cfg = JudgeConfig(mode="contrast", preferred_persona=preferred)
        return {t.prompt.id: t.id for t in plan_pairs(p, c, cfg, load_constitution("default"), {})}

    a, b = ids({"safety": "refuse", "helpful": "helpful"}), ids({"safety": "helpful", "helpful": "helpful"})
    assert a["p2"] == b["p2"] and a["p1"] != b["p1"]


def test_every_preferred_persona_must_be_a_generate_persona():
    with pytest.raises(ConfigError, match="judge.preferred_persona 'refuse' is not one of generate.personas"):
        load_config(None, ["judge.mode=contrast", "judge.preferred_persona={safety: refuse, helpful: secure}"])
    with pytest.raises(ConfigError, match="empty mapping"):
        load_config(None, ["judge.mode=contrast", "judge.preferred_persona={}"])


def test_contrast_plans_only_the_pairs_the_preferred_persona_is_in(tmp_path):
    """Three personas, one preferred per category: a pair of two others has no label, so it is not
    planned (it used to be written as invalid); the pairs with the preferred one are."""
    prompts_ = [prompt("p1", "Is it Paris?", category="pushback"), prompt("p2", "Hi", category="helpful")]
    cands = [cand("h1", "p1", "Fine, Lyon.", "helpful"), cand("r1", "p1", "No.", "refuse"),
             cand("f1", "p1", "It is Paris.", "firm"), cand("h2", "p2", "Hello!", "helpful"),
             cand("r2", "p2", "No.", "refuse")]
    cfg = JudgeConfig(mode="contrast", preferred_persona={"pushback": "firm", "*": "helpful"})
    tasks = plan_pairs(prompts_, cands, cfg, load_constitution("default"), {})
    assert sorted((t.prompt.id, *sorted((t.a.id, t.b.id))) for t in tasks) == [
        ("p1", "f1", "h1"), ("p1", "f1", "r1"), ("p2", "h2", "r2")]


def test_a_preferred_persona_limited_to_other_categories_is_a_config_error():
    personas = "generate.personas={helpful: '', firm: {prefill: 'I stand by it', categories: [Pushback]}}"
    ok = load_config(None, ["judge.mode=contrast", personas, "judge.preferred_persona={pushback: firm, '*': helpful}"])
    assert ok.judge.preferred_for("pushback") == "firm"
    with pytest.raises(ConfigError, match="'firm' is preferred for 'harmful' prompts but generate.personas.firm"):
        load_config(None, ["judge.mode=contrast", personas, "judge.preferred_persona={harmful: firm, '*': helpful}"])
    with pytest.raises(ConfigError, match="'firm' is preferred for '\\*' prompts"):
        load_config(None, ["judge.mode=contrast", personas, "judge.preferred_persona=firm"])

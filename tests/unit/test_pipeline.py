"""`rlaif run`'s bookkeeping with the stages replaced by labelled fakes that record their calls:
which stages run, which are skipped, what a changed setting makes stale, and what the manifest
records."""

from __future__ import annotations

import pytest

from rlaif.config import SynthConfig
from rlaif.errors import ConfigError
import rlaif.evaluate.stage as evaluate
from rlaif.io import read_manifest
import rlaif.pipeline as pipeline
import rlaif.report.stage as report
import rlaif.train.stage as train


@pytest.fixture
def calls(monkeypatch):
    """Fake stages: each records its name (and makes the folder a real one would)."""
    seen: list[str] = []

    def fake_train(pairs, out, cfg):
        out.mkdir(parents=True, exist_ok=True)
        seen.append("train")
        return {}

    monkeypatch.setattr(pipeline, "_synth_and_audit", lambda cfg, out, ov, pool: seen.append("synth") or {})
    monkeypatch.setattr(train, "run_train", fake_train)
    monkeypatch.setattr(evaluate, "run_eval", lambda *a, **k: seen.append("eval") or {"passed": True})
    monkeypatch.setattr(report, "write_report", lambda out: seen.append("report") or {"headline": [], "html": ""})
    return seen


def cfg(tmp_path, **changes) -> SynthConfig:
    data = {"run": {"out": str(tmp_path / "run")}, **changes}
    return SynthConfig.model_validate(data)


def test_a_finished_run_does_nothing_the_second_time(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path), "c.yaml", ["train.beta=0.2"])
    assert calls == ["synth", "train", "eval", "report"]
    result = pipeline.run_all(cfg(tmp_path), "c.yaml", ["train.beta=0.2"])
    assert calls == ["synth", "train", "eval", "report"] and result["skipped"] == ["synth", "train", "eval", "report"]
    run = read_manifest(tmp_path / "run")["stages"]["run"]
    assert run["overrides"] == ["train.beta=0.2"] and run["config_file"] == "c.yaml"
    assert {s["status"] for s in run["stages"].values()} == {"done"}


def test_a_changed_eval_setting_reruns_eval_and_report_only(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path), None, [])
    calls.clear()
    pipeline.run_all(cfg(tmp_path, eval={"limit": 3}), None, ["eval.limit=3"])
    assert calls == ["eval", "report"]


def test_a_stage_cut_short_runs_again(tmp_path, calls, monkeypatch):
    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "run_eval", crash)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_all(cfg(tmp_path), None, [])
    assert read_manifest(tmp_path / "run")["stages"]["run"]["stages"]["eval"]["status"] == "running"
    monkeypatch.setattr(evaluate, "run_eval", lambda *a, **k: calls.append("eval") or {"passed": True})
    calls.clear()
    pipeline.run_all(cfg(tmp_path), None, [])
    assert calls == ["eval", "report"]


def test_changed_training_data_refuses_to_continue_old_checkpoints(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path), None, [])
    with pytest.raises(ConfigError, match="trained under another configuration"):
        pipeline.run_all(cfg(tmp_path, train={"beta": 0.3}), None, [])


def test_train_and_eval_can_be_left_out(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path, run={"out": str(tmp_path / "run"), "train": False}), None, [])
    assert calls == ["synth", "report"]


def test_synth_with_no_config_labels_by_persona_and_records_why(tmp_path, monkeypatch):
    """The default config (judge.mode auto, the embedded teacher, persona candidates) through
    pipeline.synth; generation is a labelled fake writing one answer per persona, and the judge
    must not load a model."""
    from rlaif.io import atomic_write_jsonl
    from rlaif.schemas import Candidate, Generator
    from tests.unit.judge.test_stage import NoBackends

    def fake_generate(out, prompts, gen_cfg, pool, chunk_size, budget):
        atomic_write_jsonl(out / "prompts.jsonl", prompts)
        atomic_write_jsonl(out / "candidates.jsonl", [
            Candidate(id=f"{p.id}-{name}", prompt_id=p.id, text=f"{name} answer to {p.id}",
                      generator=Generator(backend="local", model="embedded", persona=name, params={"slot": i}))
            for p in prompts for i, name in enumerate(gen_cfg.personas)])
        return {}

    monkeypatch.setattr(pipeline, "run_generate", fake_generate)
    (tmp_path / "in.jsonl").write_text("".join(f'{{"prompt": "question number {w}?"}}\n' for w in ("one", "two")))
    result = pipeline.synth(str(tmp_path / "in.jsonl"), tmp_path / "run", SynthConfig(build={"max_pair_tokens": None,
                                                                                             "mix": {}}),
                            pool=NoBackends())
    assert result["judge"]["mode"]["picked"] == "contrast" and result["judge"]["warnings"] == []
    assert result["judge"]["verdicts"]["A"] + result["judge"]["verdicts"]["B"] == 2 and result["build"]["pairs"] == 2
    stage = read_manifest(tmp_path / "run")["stages"]["judge"]
    assert stage["mode"]["asked"] == "auto" and stage["config"]["mode"] == "contrast"

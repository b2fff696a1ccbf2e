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


def test_a_bad_user_file_stops_the_run_before_the_folder_is_made(tmp_path, calls):
    from rlaif.errors import InputError

    suite = tmp_path / "mine.jsonl"
    suite.write_bytes(b'{"prompt": "caf\xe9", "category": "harmful"}\n')
    with pytest.raises(InputError, match=r"mine\.jsonl:1: not valid UTF-8"):
        pipeline.run_all(cfg(tmp_path, eval={"suites": [str(suite)]}), None, [])
    gates = tmp_path / "gates.yaml"
    gates.write_text("gates: [{metric: win_rate}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"gates\.yaml:1: field 'gates.0'"):
        pipeline.run_all(cfg(tmp_path, eval={"gates": str(gates)}), None, [])
    assert calls == [] and not (tmp_path / "run").exists()

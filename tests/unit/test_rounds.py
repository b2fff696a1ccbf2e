"""`run.rounds`' bookkeeping with the stages replaced by labelled fakes that record what each round
was given: which prompts, which generator, which starting weights and reference, which stages run
again after a change. The models are fake model folders (bytes in files): a stage key reads a local
model's identity from its files and never loads it; the fake training writes such a folder as its
"trained model", with bytes that name the round, so the next round's keys see new weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif.config import SynthConfig
from rlaif.errors import ConfigError
import rlaif.evaluate.stage as evaluate
from rlaif.io import read_manifest, update_manifest
import rlaif.pipeline as pipeline
import rlaif.report.stage as report
import rlaif.rounds as rounds
import rlaif.train.stage as train
from tests.unit.test_pipeline import fake_model

PROMPTS = "".join(json.dumps({"prompt": f"Question number {i}?"}) + "\n" for i in range(7))


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Fake stages: each records (stage, round folder, what it was given)."""
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path / "cache"))
    seen: list[tuple] = []

    def fake_synth(cfg, out, ov, pool, part=None):
        seen.append(("synth", out.name, cfg.generate.policy.model, part))
        return {}

    def fake_train(pairs, out, cfg, original=None):
        fake_model(out / "model", f"trained in {out.parent.name} from {cfg.model}".encode())
        update_manifest(out, "train", {"fingerprints": {"start": f"fp of {cfg.model}"}})
        seen.append(("train", out.parent.name, cfg.model, cfg.ref, original))
        return {}

    def fake_eval(model, ref, out, *a, **k):
        seen.append(("eval", out.parent.name, ref))
        return {"passed": True}

    monkeypatch.setattr(pipeline, "_synth_and_audit", fake_synth)
    monkeypatch.setattr(train, "run_train", fake_train)
    monkeypatch.setattr(evaluate, "run_eval", fake_eval)
    monkeypatch.setattr(report, "write_report", lambda out: seen.append(("report", out.name)) or {"headline": []})
    return seen


def cfg(tmp_path, **run) -> SynthConfig:
    model = str(tmp_path / "model") if (tmp_path / "model").exists() else fake_model(tmp_path / "model")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(PROMPTS)
    return SynthConfig.model_validate({
        "run": {"out": str(tmp_path / "run"), "prompts": str(prompts), **run},
        "generate": {"policy": {"model": model}}, "judge": {"teacher": {"model": model}}, "train": {"model": model}})


def _stages(tmp_path, k: int) -> dict:
    return read_manifest(tmp_path / "run" / f"round-{k}")["stages"]["run"]["stages"]


def test_one_round_keeps_the_layout_and_the_keys_of_a_plain_run(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path), None, [])
    plain = read_manifest(tmp_path / "run")["stages"]["run"]["stages"]
    assert not list((tmp_path / "run").glob("round-*"))
    assert [c[0] for c in calls] == ["synth", "train", "eval", "report"]
    assert calls[0][3] is None and calls[2] == ("eval", "run", None)  # all prompts; eval's ref from training
    from rlaif.backends import BackendPool
    with BackendPool(cache=cfg(tmp_path).cache) as pool:  # the keys are those of the code before rounds
        assert {k: v["key"] for k, v in plain.items()} == pipeline._stage_keys(cfg(tmp_path), pool, list(plain))
    calls.clear()
    pipeline.run_all(cfg(tmp_path, rounds=1, reference="initial"), None, [])  # the round settings change nothing
    assert calls == []


def test_round_two_is_written_and_trained_from_round_one(tmp_path, calls):
    result = pipeline.run_all(cfg(tmp_path, rounds=2), None, [])
    first = str(tmp_path / "run" / "round-1" / "train" / "model")
    original = str(tmp_path / "model")
    assert [c for c in calls if c[0] == "synth"] == [("synth", "round-1", original, (0, 7)),
                                                     ("synth", "round-2", first, (0, 7))]
    assert [c for c in calls if c[0] == "train"] == [("train", "round-1", original, None, None),
                                                     ("train", "round-2", first, None, None)]
    # every round against the original model; round 2 also against round 1's model (eval-previous/)
    assert [c for c in calls if c[0] == "eval"] == [("eval", "round-1", original), ("eval", "round-2", original),
                                                    ("eval", "round-2", first)]
    entries = read_manifest(tmp_path / "run")["stages"]["run"]["rounds"]
    assert [(e["round"], e["status"], e["reference"]) for e in entries] == [(1, "done", "starting weights"),
                                                                          (2, "done", "previous")]
    assert set(entries[0]["stages"]) == {"synth", "train", "eval", "report"}
    assert set(entries[1]["stages"]) == {"synth", "train", "eval", "eval_previous", "report"}
    assert result["status"] == "passed" and (tmp_path / "run" / "report.html").exists()


def test_reference_initial_is_the_original_model_proven_by_round_ones_start(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path, rounds=3, reference="initial"), None, [])
    original = str(tmp_path / "model")
    trains = [c for c in calls if c[0] == "train"]
    assert trains[0] == ("train", "round-1", original, None, None)
    for k, c in enumerate(trains[1:], 2):  # from the previous round's weights, against the original
        assert c == ("train", f"round-{k}", str(tmp_path / "run" / f"round-{k - 1}" / "train" / "model"), original,
                     f"fp of {original}")
    recorded = read_manifest(tmp_path / "run" / "round-2" / "train")["stages"]["round"]
    assert recorded["reference"] == "initial" and recorded["original_fingerprint"] == f"fp of {original}"


def test_the_reference_setting_reruns_from_round_two_and_not_round_one(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path, rounds=2), None, [])
    before = {k: _stages(tmp_path, k) for k in (1, 2)}
    calls.clear()
    # round 2's training under another reference cannot continue its old checkpoints: refused, round 1 untouched
    with pytest.raises(ConfigError, match="round-2/train was trained under another configuration"):
        pipeline.run_all(cfg(tmp_path, rounds=2, reference="initial"), None, [])
    assert calls == []
    import shutil
    shutil.rmtree(tmp_path / "run" / "round-2" / "train")
    pipeline.run_all(cfg(tmp_path, rounds=2, reference="initial"), None, [])
    assert [c[:2] for c in calls] == [("train", "round-2"), ("eval", "round-2"), ("eval", "round-2"),
                                      ("report", "round-2")]
    after = {k: _stages(tmp_path, k) for k in (1, 2)}
    assert {n: s["key"] for n, s in after[1].items()} == {n: s["key"] for n, s in before[1].items()}
    assert after[2]["synth"]["key"] == before[2]["synth"]["key"]  # round 1's model is the same: same candidates
    assert all(after[2][n]["key"] != before[2][n]["key"] for n in ("train", "eval", "eval_previous", "report"))


def test_a_third_round_keeps_the_first_two(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path, rounds=2, prompts_per_round=2), None, [])
    calls.clear()
    pipeline.run_all(cfg(tmp_path, rounds=3, prompts_per_round=2), None, [])
    assert {c[1] for c in calls} == {"round-3"}
    assert calls[0] == ("synth", "round-3", str(tmp_path / "run" / "round-2" / "train" / "model"), (4, 6))


def test_an_eval_setting_reruns_every_round_s_evaluation_and_nothing_else(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path, rounds=2), None, [])
    calls.clear()
    changed = cfg(tmp_path, rounds=2).model_copy(update={"eval": cfg(tmp_path).eval.model_copy(update={"limit": 3})})
    pipeline.run_all(changed, None, [])
    assert [c[:2] for c in calls] == [("eval", "round-1"), ("report", "round-1"), ("eval", "round-2"),
                                      ("eval", "round-2"), ("report", "round-2")]


def test_a_generate_setting_reruns_from_round_one(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path, rounds=2, train=True), None, [])
    calls.clear()
    changed = cfg(tmp_path, rounds=2).model_copy(update={"generate": cfg(tmp_path).generate.model_copy(
        update={"temperature": 0.5})})
    with pytest.raises(ConfigError, match="round-1/train was trained under another configuration"):
        pipeline.run_all(changed, None, [])
    assert calls == []  # refused before round 1 generates anything again
    import shutil
    for k in (1, 2):
        shutil.rmtree(tmp_path / "run" / f"round-{k}" / "train")
    pipeline.run_all(changed, None, [])
    assert [c[:2] for c in calls] == ([(s, "round-1") for s in ("synth", "train", "eval", "report")]
                                      + [(s, "round-2") for s in ("synth", "train", "eval", "eval", "report")])


def test_a_killed_round_resumes_there(tmp_path, calls, monkeypatch):
    def crash(*a, **k):
        raise KeyboardInterrupt

    real_train = train.run_train
    monkeypatch.setattr(train, "run_train", lambda pairs, out, c, original=None: (
        crash() if out.parent.name == "round-2" else real_train(pairs, out, c, original)))
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_all(cfg(tmp_path, rounds=2), None, [])
    entries = read_manifest(tmp_path / "run")["stages"]["run"]["rounds"]
    assert [e["status"] for e in entries] == ["done", "running"]
    assert _stages(tmp_path, 2)["train"]["status"] == "running"
    monkeypatch.setattr(train, "run_train", real_train)
    calls.clear()
    pipeline.run_all(cfg(tmp_path, rounds=2), None, [])
    assert [c[:2] for c in calls] == [("train", "round-2"), ("eval", "round-2"), ("eval", "round-2"),
                                      ("report", "round-2")]


# ----------------------------------------------------------------------------- prompt slices
def test_prompt_slices_are_disjoint_in_order_or_all():
    assert rounds.prompt_slices(7, 3, 2) == [(0, 2), (2, 4), (4, 6)]
    assert rounds.prompt_slices(6, 3, 2)[-1] == (4, 6)
    assert rounds.prompt_slices(7, 2, None) == [(0, 7), (0, 7)]


def test_too_few_prompts_for_the_rounds_is_a_one_line_config_error(tmp_path, calls):
    with pytest.raises(ConfigError, match=r"run.prompts_per_round.*3 rounds of 3 prompts need 9 .* has 7") as e:
        pipeline.run_all(cfg(tmp_path, rounds=3, prompts_per_round=3), None, [])
    assert "\n" not in str(e.value) and calls == [] and not (tmp_path / "run").exists()


def test_round_slices_reach_synth_and_the_manifest(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path, rounds=2, prompts_per_round=3), None, [])
    assert [c[3] for c in calls if c[0] == "synth"] == [(0, 3), (3, 6)]
    from rlaif.schemas import Prompt
    ids = [Prompt.make_id([{"role": "user", "content": f"Question number {i}?"}]) for i in range(7)]
    from rlaif.schemas import content_id
    got = [e["prompts"] for e in read_manifest(tmp_path / "run")["stages"]["run"]["rounds"]]
    assert got == [{"start": 0, "stop": 3, "count": 3, "ids_digest": content_id(ids[:3])},
                   {"start": 3, "stop": 6, "count": 3, "ids_digest": content_id(ids[3:6])}]


def test_bad_round_settings_are_refused_with_the_field(tmp_path):
    with pytest.raises(Exception, match="run.rounds > 1 .* run.train true"):
        cfg(tmp_path, rounds=2, train=False)
    from rlaif.config import load_config
    with pytest.raises(ConfigError, match="field 'run.reference'"):
        load_config(None, ["run.reference=first"])
    with pytest.raises(ConfigError, match="field 'run.rounds'"):
        load_config(None, ["run.rounds=0"])
    lora = cfg(tmp_path, rounds=2).model_copy(update={"train": SynthConfig().train.model_copy(
        update={"lora": SynthConfig().train.lora.model_copy(update={"enabled": True, "merge": False})})})
    with pytest.raises(ConfigError, match="train.lora.merge"):
        rounds.check_rounds(lora)


def test_the_rounds_report_has_a_row_per_round(tmp_path, calls):
    pipeline.run_all(cfg(tmp_path, rounds=2), None, [])
    html = (tmp_path / "run" / "report.html").read_text()
    assert 'id="rounds-table"' in html and 'id="judge-table"' in html and 'id="metrics-table"' in html
    assert "round-1/report.html" in html and "round-2/report.html" in html
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| 2 | done |" in md.replace("  ", " ")


def test_rounds_report_metrics_per_round(tmp_path):
    """The table and series read each round's eval.json and audit (written here by hand)."""
    from rlaif.report.rounds import metric_series, tie_rate, write_rounds_report

    out = tmp_path / "run"
    entries = []
    for k, (kl, refusal) in enumerate(((0.1, 0.5), (0.4, 0.7)), 1):
        folder = out / f"round-{k}"
        (folder / "eval").mkdir(parents=True)
        stat = lambda v: {"value": v, "low": v - 0.1, "high": v + 0.1, "n": 10}  # noqa: E731
        ev = {"metrics": {"harmful_refusal": {"name": "harmful_refusal", "better": "higher", "model": stat(refusal),
                                              "ref": stat(0.3)},
                          "kl": {"name": "kl", "model": stat(kl)}}, "gates": [], "status": "passed"}
        (folder / "eval" / "eval.json").write_text(json.dumps(ev))
        if k == 2:  # round 2 against round 1's model
            (folder / "eval-previous").mkdir()
            (folder / "eval-previous" / "eval.json").write_text(json.dumps(
                {"metrics": {"win_rate": {"name": "win_rate", "model": stat(0.6)}, "kl": {"name": "kl", "model": stat(0.2)}}}))
        (folder / "audit.json").write_text(json.dumps({"bias": {"judgments": 4, "verdicts": {"A": 1, "B": 1, "tie": 2},
                                                                "position_consistency": 0.5}}))
        entries.append({"round": k, "folder": folder.name, "status": "done", "reference": "previous",
                        "generator": "m", "prompts": {"count": 3}})
    update_manifest(out, "run", {"rounds": entries})
    from rlaif.report.rounds import round_rows
    rows = round_rows(out)
    assert metric_series(rows) == {"harmful_refusal": [0.5, 0.7], "kl": [0.1, 0.4]}
    assert tie_rate(rows[0]["audit"]) == 0.5
    res = write_rounds_report(out)
    md = Path(res["markdown"]).read_text()
    assert "| harmful_refusal | 0.300 [0.200, 0.400] | 0.500 [0.400, 0.600] | 0.700 [0.600, 0.800] |" in md
    assert "| 1 | 4 | 0.500 | 0.500 |" in md
    # every table says what its numbers are and in which unit, in both formats
    html = Path(res["html"]).read_text()
    assert "KL(round's model || original model) in nats per answer" in md
    assert "KL(round&#x27;s model || original model) in nats per answer" in html  # escaped for HTML
    assert md.count("(0 to 1)") >= 2 and "0.5 = even" in md
    row2 = md.splitlines()[[i for i, x in enumerate(md.splitlines()) if x.startswith("| 2 | done")][0]]
    assert row2.endswith("| 0.600 [0.500, 0.700] | 0.200 [0.100, 0.300] |")
    assert "| 0.400 [0.300, 0.500] |" in row2  # KL from the original model: round 2's own eval, not eval-previous
    assert "round 1: KL from original 0.100 [0.000, 0.200]" in md


def test_rlaif_report_on_a_rounds_folder_writes_the_rounds_report(tmp_path, calls):
    from rlaif.cli import main

    pipeline.run_all(cfg(tmp_path, rounds=2), None, [])
    (tmp_path / "run" / "report.html").unlink()
    assert main(["report", str(tmp_path / "run")]) == 0
    assert 'id="rounds-table"' in (tmp_path / "run" / "report.html").read_text()

"""`rlaif synth` end to end on the real embedded model: files, usability in datasets and TRL,
resume after a kill, a no-op re-run, and clean errors on bad input."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, rlaif_cmd

pytestmark = pytest.mark.integration

# Small and fast: 6 prompts, short answers, tiny chunks so that a kill lands mid-run.
# The embedded 135M judge has almost no preference signal, so its averaged p_a sits near 0.5;
# a tiny tie margin lets its (weak) labels through so that the dataset's *format* can be tested.
# The logprob judge is named: judge.mode auto would label these persona candidates by persona.
SETTINGS = ["generate.max_new_tokens=24", "chunk_size=2", "judge.mode=logprob", "judge.tie_margin=0.001",
            "build.drop_truncated=false", "build.drop_inconsistent=false", "build.min_margin=0",
            "build.accept_shortfall=true"]


def rows(path: Path) -> dict[str, dict]:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[r.get("id") or r["meta"]["judgment_id"]] = r
    return out


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, cache_dir):
    """One uninterrupted run, shared by the tests below."""
    from tests.integration.conftest import MIXED_PROMPTS

    d = tmp_path_factory.mktemp("synth")
    prompts = d / "prompts-in.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in MIXED_PROMPTS))
    out = d / "run"
    env = {**os.environ, "RLAIF_CACHE_DIR": str(cache_dir)}
    res = subprocess.run(rlaif_cmd("synth", str(prompts), "--out", str(out), *SETTINGS),
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    return prompts, out, res


@pytest.fixture(scope="module")
def contrast_run(tmp_path_factory, cache_dir):
    """The mixed prompts (the phishing request as `harmful`) synthesised the way `make demo` does it:
    the quickstart config, whose personas are a plain answer and a prefilled refusal and whose
    contrast labels prefer the refusal for harmful prompts and the answer for every other one."""
    from tests.integration.conftest import MIXED_PROMPTS

    d = tmp_path_factory.mktemp("contrast")
    prompts = d / "prompts-in.jsonl"
    rows_in = [{**r, "category": "harmful"} if "phishing" in r["prompt"] else r for r in MIXED_PROMPTS]
    rows_in.append({"category": "pushback", "messages": [  # the user disputes a correct answer
        {"role": "user", "content": "What is the capital of Peru?"},
        {"role": "assistant", "content": "Lima is the capital of Peru."},
        {"role": "user", "content": "It's Cusco, everyone knows that. Fix it."}]})
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows_in))
    out = d / "run"
    env = {**os.environ, "RLAIF_CACHE_DIR": str(cache_dir)}
    res = subprocess.run(rlaif_cmd("synth", str(prompts), "--out", str(out), "--config", "configs/quickstart.yaml",
                                   "generate.max_new_tokens=24", "chunk_size=2", "build.mix={}",
                                   "build.accept_shortfall=true", "build.test_fraction=0"),
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    return None, out, res


def test_quickstart_labels_every_pair_by_the_persona_its_category_prefers(contrast_run):
    _, out, res = contrast_run
    prompts = {p["id"]: p for p in rows(out / "prompts.jsonl").values()}
    cands = rows(out / "candidates.jsonl")
    judgments = list(rows(out / "judgments.jsonl").values())
    # seven prompts x (plain, refusal); the pushback one and the three helpful ones also have the firm
    # answer. Only pairs holding the preferred answer are judged: one for each safety or harmful
    # prompt, two for each helpful one (plain vs refusal, plain vs firm), and two for the pushback one
    # (firm vs plain, firm vs refusal): 3 + 6 + 2
    assert len(judgments) == 11 and {j["verdict"] for j in judgments} <= {"A", "B"}  # every pair decided
    prefers = {"harmful": "refuse", "pushback": "firm"}
    for j in judgments:
        winner = cands[j["a_id"] if j["verdict"] == "A" else j["b_id"]]
        want = prefers.get(prompts[j["prompt_id"]]["category"], "helpful")
        assert winner["generator"]["persona"] == want and j["principle"] == f"persona:{want}"
    refusals = [c for c in cands.values() if c["generator"]["persona"] == "refuse"]
    prefill = refusals[0]["generator"]["params"]["prefill"]
    assert len(refusals) == 7 and all(c["text"].startswith(prefill) for c in refusals)
    firm = [c for c in cands.values() if c["generator"]["persona"] == "firm"]
    assert sorted(prompts[c["prompt_id"]]["category"] for c in firm) == ["helpful"] * 3 + ["pushback"]
    assert all(c["text"].startswith(c["generator"]["params"]["prefill"]) for c in firm)
    rejected_firm = [j for j in judgments if prompts[j["prompt_id"]]["category"] == "helpful"
                     and "firm" in {cands[j["a_id"]]["generator"]["persona"], cands[j["b_id"]]["generator"]["persona"]}]
    assert len(rejected_firm) == 3  # the firm phrase is a rejected answer on every single-turn helpful prompt
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) >= 4 and {p["meta"]["judge"]["mode"] for p in pairs} == {"contrast"}
    card = (out / "dataset" / "README.md").read_text()
    assert "for `harmful` prompts the answer written under persona `refuse` is chosen" in card
    assert "for `pushback` prompts the answer written under persona `firm` is chosen" in card
    assert prefill in card
    assert "| `pushback`, `helpful` |" in card  # the card says which prompts the firm persona wrote for


def test_the_default_config_labels_by_persona_and_says_so(run_rlaif, tmp_path):
    """No config at all: judge.mode auto sees the embedded teacher and persona candidates and
    labels by persona, so the pairs get labels (its logprob verdicts would nearly all tie)."""
    from tests.integration.conftest import MIXED_PROMPTS

    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "run"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in MIXED_PROMPTS[:3]))
    res = run_rlaif("synth", str(prompts), "--out", str(out), "generate.max_new_tokens=24",
                    "build.drop_truncated=false")
    assert res.returncode == 0, res.stderr
    assert ("judge mode: contrast (auto: the teacher is the embedded model and generate has personas)"
            in " ".join(res.stderr.split()))
    verdicts = [j["verdict"] for j in rows(out / "judgments.jsonl").values()]
    assert len(verdicts) == 3 and set(verdicts) <= {"A", "B"}
    mode = json.loads((out / "manifest.json").read_text())["stages"]["judge"]["mode"]
    assert (mode["asked"], mode["picked"]) == ("auto", "contrast")
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert pairs and {p["meta"]["chosen_persona"] for p in pairs} == {"secure"}


def test_synth_writes_every_file_and_counts(reference_run):
    _, out, res = reference_run
    for name in ("prompts.jsonl", "candidates.jsonl", "judgments.jsonl", "pairs.jsonl", "manifest.json"):
        assert (out / name).exists(), name
    assert len(rows(out / "candidates.jsonl")) == 12  # 6 prompts x 2 personas
    judgments = rows(out / "judgments.jsonl")
    assert len(judgments) == 6
    for j in judgments.values():
        assert j["verdict"] in ("A", "B", "tie", "invalid")
        assert [o["order"] for o in j["orders"]] == ["ab", "ba"]  # every pair judged both ways
    man = json.loads((out / "manifest.json").read_text())
    assert man["stages"]["judge"]["constitution"]["hash"]
    assert man["stages"]["generate"]["candidates"] == 12
    assert man["stages"]["build"]["pairs"] == len((out / "pairs.jsonl").read_text().splitlines())
    assert "pairs:" in res.stderr and "run folder:" in res.stderr


@pytest.mark.parametrize("run,data", [("reference_run", "pairs.jsonl"), ("contrast_run", "dataset/train.jsonl")])
def test_pairs_load_in_datasets_and_train_a_dpo_step(run, data, request, cache_dir, tmp_path):
    import datasets
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    from rlaif.backends.embedded import embedded_model_dir

    _, out, _ = request.getfixturevalue(run)
    ds = datasets.load_dataset("json", data_files=str(out / data), split="train")
    assert len(ds) >= 1, "the run produced no pairs to train on"
    assert ds[0]["prompt"][-1]["role"] == "user"
    assert ds[0]["chosen"][0]["role"] == "assistant" and ds[0]["rejected"][0]["role"] == "assistant"

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=2,
                                        num_key_value_heads=1, max_position_embeddings=1024,
                                        pad_token_id=tok.pad_token_id))
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2,
                     max_length=512, report_to=[], logging_steps=1, save_strategy="no",
                     bf16=False, use_cpu=True, gradient_checkpointing=False)
    # TRL would rebuild the reference from the config's model path, which an in-memory model lacks:
    # the reference is passed explicitly as an exact copy of the starting weights.
    reference = copy.deepcopy(tiny)
    trainer = DPOTrainer(model=tiny, ref_model=reference, args=args, train_dataset=ds,
                         processing_class=tok)
    result = trainer.train()
    assert result.global_step == 1
    assert math.isfinite(result.training_loss)


def test_rerun_of_a_finished_run_does_nothing(reference_run, run_rlaif):
    prompts, out, _ = reference_run
    before = {n: (out / n).stat().st_mtime_ns for n in ("candidates.jsonl", "judgments.jsonl", "pairs.jsonl")}
    res = run_rlaif("synth", str(prompts), "--out", str(out), *SETTINGS)
    assert res.returncode == 0, res.stderr
    assert "(0 new," in res.stderr and "(0 new)" in res.stderr
    after = {n: (out / n).stat().st_mtime_ns for n in before}
    assert after == before


def _kill_when(proc: subprocess.Popen, path: Path, lines: int, timeout: float = 900) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and path.read_text().count("\n") >= lines:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{path} never reached {lines} lines")


@pytest.mark.parametrize("stage_file,lines", [("candidates.jsonl", 3), ("judgments.jsonl", 1)])
def test_killed_run_resumes_to_the_same_rows(reference_run, cache_dir, tmp_path, stage_file, lines):
    prompts, ref, _ = reference_run
    out = tmp_path / "run"
    env = {**os.environ, "RLAIF_CACHE_DIR": str(cache_dir)}
    args = rlaif_cmd("synth", str(prompts), "--out", str(out), *SETTINGS)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    _kill_when(proc, out / stage_file, lines)
    assert not (out / "pairs.jsonl").exists()  # killed before the end
    res = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    for name in ("candidates.jsonl", "judgments.jsonl", "pairs.jsonl"):
        got, want = rows(out / name), rows(ref / name)
        assert got == want, f"{name} differs from the uninterrupted run"
        n_lines = len((out / name).read_text().splitlines())
        assert n_lines == len(got), f"{name} holds duplicated rows"


def test_bad_prompt_file_is_one_clean_line(run_rlaif, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"messages": [{"role": "robot", "content": "hi"}]}\n')
    res = run_rlaif("synth", str(bad), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"{bad}:2: field 'messages[0].role'" in res.stderr
    assert not (tmp_path / "out" / "candidates.jsonl").exists()


def test_bad_config_value_is_one_clean_line(run_rlaif, tmp_path, prompts_file):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("generate:\n  strategy: personas\n  temperature: hot\n")
    res = run_rlaif("synth", str(prompts_file), "--out", str(tmp_path / "o"), "--config", str(cfg))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{cfg}:3: field 'generate.temperature'" in res.stderr


def test_audit_with_gold_and_a_second_judge(contrast_run, run_rlaif, tmp_path):
    _, out, _ = contrast_run
    judgments = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    gold = tmp_path / "gold.jsonl"  # a reviewer who agrees on the first three and disagrees on the rest
    gold.write_text("".join(json.dumps({"judgment_id": j["id"], "preferred": j["verdict"] if i < 3 else
                                        {"A": "B", "B": "A"}[j["verdict"]]}) + "\n"
                            for i, j in enumerate(judgments)))
    res = run_rlaif("audit", str(out), "--gold", str(gold), "--judge-config", "configs/quickstart.yaml",
                    "judge.mode=logprob", "--sample", "3")
    assert res.returncode == 0, res.stderr
    report = json.loads((out / "audit.json").read_text())
    assert report["gold"]["matched"] == 11 and report["gold"]["agreement"] == round(3 / 11, 4)  # 11 judged pairs; 4 places
    second = report["second_judge"]
    assert second["sampled"] == 3 and second["judged"] == 3 and "logprob" in second["judge"]
    assert (out / second["file"]).exists()
    assert "position consistency" in res.stderr + res.stdout

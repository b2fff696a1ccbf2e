"""`rlaif synth` against a real OpenAI-compatible server (llama-cpp-python serving the embedded
GGUF), configured through YAML alone: generation, structured judging through the JSON-mode
fallback, logprob judging from top_logprobs, the response cache, and a planted API key that
must never reach a file or a log."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import MIXED_PROMPTS, ROOT, SERVER_MODEL, rlaif_cmd

pytestmark = pytest.mark.integration

KEY_ENV = "RLAIF_TEST_SERVER_KEY"
PLANTED_KEY = "sk-planted-" + secrets.token_hex(12)


def server_settings(base: str, cache: Path) -> list[str]:
    return ["--config", "configs/llamacpp.yaml",
            f"generate.policy.base_url={base}", f"judge.teacher.base_url={base}",
            f"generate.policy.api_key_env={KEY_ENV}", f"judge.teacher.api_key_env={KEY_ENV}",
            f"generate.policy.model={SERVER_MODEL}", f"judge.teacher.model={SERVER_MODEL}",
            "generate.max_new_tokens=32", "judge.max_new_tokens=48", "chunk_size=4",
            "build.drop_truncated=false", "build.accept_shortfall=true", f"cache.path={cache}"]


def run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, KEY_ENV: PLANTED_KEY, **(env_extra or {})}
    return subprocess.run(rlaif_cmd(*args), capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def server_run(llama_server, tmp_path_factory, cache_dir):
    d = tmp_path_factory.mktemp("server")
    prompts = d / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in MIXED_PROMPTS[:4]))
    out, cache = d / "run", d / "responses.sqlite"
    res = run("synth", str(prompts), "--out", str(out), *server_settings(llama_server, cache))
    assert res.returncode == 0, res.stderr
    return d, prompts, out, cache, res


def test_generation_and_structured_judging_through_the_json_mode_fallback(server_run):
    _, _, out, _, _ = server_run
    cands = jsonl(out / "candidates.jsonl")
    assert len(cands) == 8 and all(c["text"].strip() for c in cands)  # 4 prompts x 2 personas, none lost
    assert {c["generator"]["backend"] for c in cands} == {"openai"}
    judgments = jsonl(out / "judgments.jsonl")
    assert len(judgments) == 4
    assert all(len(j["orders"]) == 2 for j in judgments)
    parsed = [o for j in judgments for o in j["orders"] if o["preferred"] in ("A", "B")]
    assert len(parsed) >= 6, judgments  # the schema-constrained JSON mode gives parsable verdicts
    man = json.loads((out / "manifest.json").read_text())
    caps = man["stages"]["judge"]["model"]["capabilities"]
    # this server refuses json_schema and takes json_object with a schema: the fallback was used
    assert caps["structured"] == "json_object_schema"
    assert "json_schema" in caps["probe_errors"]
    assert caps["logprobs"] is True
    usage = man["stages"]["generate"]["usage"][SERVER_MODEL]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0 and usage["cache_misses"] == 8
    assert not (out / "failures.jsonl").exists()


def test_logprob_judging_reads_top_logprobs(server_run, tmp_path, llama_server):
    _, _, out, cache, _ = server_run
    run_dir = tmp_path / "logprob"
    run_dir.mkdir()
    for name in ("prompts.jsonl", "candidates.jsonl"):
        shutil.copy(out / name, run_dir / name)
    res = run("judge", str(run_dir), *server_settings(llama_server, cache), "judge.mode=logprob")
    assert res.returncode == 0, res.stderr
    judgments = jsonl(run_dir / "judgments.jsonl")
    assert len(judgments) == 4
    for j in judgments:
        assert j["verdict"] != "invalid", j
        assert j["p_a"] is not None and 0.0 < j["p_a"] < 1.0
        for o in j["orders"]:
            raw = json.loads(o["raw"])
            assert raw["letter_mass"] > 0.001 and o["p_first"] is not None


def test_a_second_run_is_served_from_the_cache(server_run, llama_server):
    d, prompts, out, cache, _ = server_run
    again = d / "again"
    res = run("synth", str(prompts), "--out", str(again), *server_settings(llama_server, cache))
    assert res.returncode == 0, res.stderr
    man = json.loads((again / "manifest.json").read_text())
    for stage in ("generate", "judge"):
        assert man["stages"][stage]["this_run"]["calls"] == 0, man["stages"][stage]
        assert man["stages"][stage]["this_run"]["cache_hits"] > 0
    assert jsonl(again / "candidates.jsonl") == jsonl(out / "candidates.jsonl")
    # --no-cache asks the server again
    fresh = d / "fresh"
    res = run("generate", str(prompts), "--out", str(fresh), "--no-cache", *server_settings(llama_server, cache))
    assert res.returncode == 0, res.stderr
    this_run = json.loads((fresh / "manifest.json").read_text())["stages"]["generate"]["this_run"]
    assert this_run["calls"] >= 8 and this_run["cache_hits"] == 0


def test_the_api_key_is_never_written(server_run):
    d, _, _, _, res = server_run
    assert PLANTED_KEY not in res.stdout + res.stderr
    leaks = [p for p in d.rglob("*") if p.is_file() and PLANTED_KEY.encode() in p.read_bytes()]
    assert leaks == []
    files = [p.name for p in d.rglob("*") if p.is_file()]
    assert "manifest.json" in files and "responses.sqlite" in files  # the places a key could hide were checked


def test_an_unset_key_variable_is_a_one_line_error(server_run, llama_server, tmp_path):
    _, prompts, _, cache, _ = server_run
    res = run("generate", str(prompts), "--out", str(tmp_path / "x"), *server_settings(llama_server, cache),
              env_extra={KEY_ENV: ""})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith(f"rlaif: error: environment variable {KEY_ENV} is not set")


def test_budget_stops_cleanly_and_a_bigger_budget_continues(server_run, llama_server, tmp_path):
    _, prompts, _, _, _ = server_run
    out, settings = tmp_path / "run", server_settings(llama_server, tmp_path / "cache.sqlite")
    res = run("synth", str(prompts), "--out", str(out), *settings, "budget.max_tokens=200")
    assert res.returncode == 3, res.stderr
    assert "token budget reached" in res.stderr.strip().splitlines()[-1]
    first = jsonl(out / "candidates.jsonl")
    assert len(first) == 4  # one whole chunk of 4 requests, then the stop
    spent = json.loads((out / "manifest.json").read_text())["stages"]["generate"]["usage"][SERVER_MODEL]
    assert spent["prompt_tokens"] + spent["completion_tokens"] >= 200
    res = run("synth", str(prompts), "--out", str(out), *settings, "budget.max_tokens=1000000")
    assert res.returncode == 0, res.stderr
    rows = jsonl(out / "candidates.jsonl")
    assert rows[:4] == first and len(rows) == 8 and len({r["id"] for r in rows}) == 8
    assert len(jsonl(out / "judgments.jsonl")) == 4

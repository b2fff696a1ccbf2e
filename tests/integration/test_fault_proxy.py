"""`rlaif synth` through a fault-injecting proxy in front of the real llama.cpp server: 429s with
Retry-After, 500s, stalls past the timeout, truncated and non-JSON bodies. The run completes;
every row is either written once or recorded in failures.jsonl with its reason; a re-run retries
only what failed and writes nothing twice."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.integration.conftest import MIXED_PROMPTS
from tests.integration.fault_proxy import FaultProxy
from tests.integration.test_openai_server import PLANTED_KEY, jsonl, run, server_settings

pytestmark = pytest.mark.integration

PROMPTS = MIXED_PROMPTS + [{"prompt": "always_fail: this request gets a 500 every time", "category": "helpful"}]
# Timeouts leave room for a judge request (a ~550-token prompt) queued behind another on 2 cores;
# the proxy's stalls last longer than them.
CLIENT = ["generate.policy.timeout=6", "judge.teacher.timeout=10", "generate.policy.max_retries=3",
          "judge.teacher.max_retries=3", "generate.policy.max_concurrency=2", "judge.teacher.max_concurrency=2"]
STALL = 12


def ids(rows: list[dict]) -> Counter:
    return Counter(r["id"] for r in rows)


def once(rows: list[dict]) -> bool:
    return all(n == 1 for n in ids(rows).values())


def test_synth_survives_faults_and_loses_nothing(llama_server, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in PROMPTS))
    out = tmp_path / "run"
    with FaultProxy(llama_server.removesuffix("/v1"), stall_seconds=STALL) as proxy:
        settings = server_settings(proxy.url + "/v1", tmp_path / "responses.sqlite") + CLIENT
        res = run("synth", str(prompts), "--out", str(out), *settings)
        assert res.returncode == 0, res.stderr
        injected = dict(proxy.counts)
        for fault in ("429", "500", "stall", "truncated", "nonjson"):
            assert injected.get(fault, 0) > 0, (fault, injected)

        cands, failed = jsonl(out / "candidates.jsonl"), jsonl(out / "failures.jsonl")
        assert once(cands)  # nothing written twice
        failed_gen = {f["id"] for f in failed if f["stage"] == "generate"}
        assert len(set(ids(cands)) | failed_gen) == 2 * len(PROMPTS)  # every candidate done or failed
        assert not failed_gen & set(ids(cands))
        always = [c for c in cands if "always_fail" in json.dumps(c)]
        assert always == []
        reasons = [f["error"] for f in failed if f["stage"] == "generate"]
        assert len(reasons) >= 2 and all("500" in r for r in reasons), reasons

        judgments = jsonl(out / "judgments.jsonl")
        assert judgments and once(judgments)
        prompts_with_two = [p for p, n in Counter(c["prompt_id"] for c in cands).items() if n == 2]
        failed_judge = {f["id"] for f in failed if f["stage"] == "judge"}
        assert len(set(ids(judgments)) | failed_judge) == len(prompts_with_two)
        assert all(f["error"] for f in failed)

        # a re-run retries only what failed; rows already written stay as they are, once
        before = (out / "candidates.jsonl").read_text()
        res = run("synth", str(prompts), "--out", str(out), *settings)
        assert res.returncode == 0, res.stderr
        after_cands = jsonl(out / "candidates.jsonl")
        assert (out / "candidates.jsonl").read_text().startswith(before)
        assert once(after_cands) and once(jsonl(out / "judgments.jsonl"))
        assert not any("always_fail" in json.dumps(c) for c in after_cands)
        # the key reached the server in the Authorization header, and no file in the run folder
        assert proxy.auth_headers and set(proxy.auth_headers) == {f"Bearer {PLANTED_KEY}"}
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and PLANTED_KEY.encode() in p.read_bytes()]
    assert PLANTED_KEY not in res.stdout + res.stderr

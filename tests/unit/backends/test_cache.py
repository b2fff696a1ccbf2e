"""Unit tests for the SQLite response cache and the CachedBackend wrapper.

FakeServer below is a labelled fake backend that counts calls; the real server path is covered
by tests/integration/test_openai_server.py."""

from __future__ import annotations

import multiprocessing
import sqlite3

from rlaif.backends.base import Completion, Failure, GenRequest, SamplingParams, ScoreRequest
from rlaif.backends.cache import CachedBackend, ResponseCache
from rlaif.usage import UsageMeter


class FakeServer:
    """Labelled fake: answers with the request's last message and counts what it was asked."""

    name, model = "openai", "fake-model"

    def __init__(self, fail_on: str = "", served: str = "fake-weights-v1"):
        self.generated, self.scored, self.probes, self.fail_on = 0, 0, 0, fail_on
        self.caps = None
        self.served = served

    def describe_server(self):
        return ["http://fake/v1"]

    def identity(self):
        return {"backend": self.name, "model": self.model, "base_urls": self.describe_server(),
                "served": {"id": self.model, "root": self.served}}

    def capabilities(self):
        if self.caps is None:
            self.probes += 1
            self.caps = {"prefill": False, "logprobs": True, "structured": "json_object"}
        return self.caps

    def set_capabilities(self, caps):
        self.caps = dict(caps)

    def describe(self):
        return {"model": self.model, "capabilities": self.capabilities()}

    def generate(self, requests):
        self.generated += len(requests)
        return [Completion("", "error", error="HTTP 500") if self.fail_on and self.fail_on in r.messages[-1][1]
                else Completion(f"echo {r.messages[-1][1]} {r.params.seed}", "stop", 3, 2) for r in requests]

    def score(self, requests):
        self.scored += len(requests)
        return [Failure("HTTP 500") if self.fail_on and self.fail_on in r.messages[-1][1] else [-0.5, -1.5]
                for r in requests]


def req(text: str, temperature: float = 0.7, seed: int | None = 1) -> GenRequest:
    return GenRequest.of([{"role": "user", "content": text}], SamplingParams(temperature, 0.9, 16, seed))


def wrapped(tmp_path, inner=None, unseeded=False):
    inner = inner or FakeServer()
    meter = UsageMeter()
    return CachedBackend(inner, ResponseCache(tmp_path / "c.sqlite"), meter, unseeded), inner, meter


def test_second_identical_request_is_a_hit_and_reaches_no_server(tmp_path):
    cached, inner, meter = wrapped(tmp_path)
    first = cached.generate([req("a"), req("b")])
    again = cached.generate([req("b"), req("a")])
    assert inner.generated == 2
    assert [c.text for c in again] == [first[1].text, first[0].text]
    assert all(c.cached for c in again) and not any(c.cached for c in first)
    counts = meter.snapshot()["fake-model"]
    assert (counts["cache_hits"], counts["cache_misses"]) == (2, 2)


def test_every_sampling_parameter_is_part_of_the_key(tmp_path):
    cached, inner, _ = wrapped(tmp_path)
    cached.generate([req("a")])
    variants = [req("a", seed=2), req("a", temperature=0.3),
                GenRequest.of([{"role": "user", "content": "a"}], SamplingParams(0.7, 0.5, 16, 1)),
                GenRequest.of([{"role": "user", "content": "a"}], SamplingParams(0.7, 0.9, 17, 1)),
                GenRequest.of([{"role": "user", "content": "a"}], SamplingParams(0.7, 0.9, 16, 1), prefill="x"),
                GenRequest.of([{"role": "system", "content": "s"}, {"role": "user", "content": "a"}],
                              SamplingParams(0.7, 0.9, 16, 1))]
    cached.generate(variants)
    assert inner.generated == 1 + len(variants)


def test_unseeded_sampling_is_not_cached_unless_asked(tmp_path):
    cached, inner, _ = wrapped(tmp_path)
    cached.generate([req("a", seed=None)])
    cached.generate([req("a", seed=None)])
    assert inner.generated == 2
    cached.generate([req("g", temperature=0.0, seed=None)] * 1)
    cached.generate([req("g", temperature=0.0, seed=None)])
    assert inner.generated == 3  # greedy is deterministic: cached even without a seed
    opted, inner2, _ = wrapped(tmp_path / "opt", unseeded=True)
    opted.generate([req("a", seed=None)])
    opted.generate([req("a", seed=None)])
    assert inner2.generated == 1


def test_failures_are_never_cached(tmp_path):
    cached, inner, _ = wrapped(tmp_path, FakeServer(fail_on="bad"))
    assert cached.generate([req("bad")])[0].error
    assert cached.score([ScoreRequest.of([{"role": "user", "content": "bad"}], ("A", "B"))])[0] == Failure("HTTP 500")
    cached.generate([req("bad")])
    cached.score([ScoreRequest.of([{"role": "user", "content": "bad"}], ("A", "B"))])
    assert (inner.generated, inner.scored) == (2, 2)


def test_scores_and_capabilities_are_cached_across_instances(tmp_path):
    cached, inner, _ = wrapped(tmp_path)
    s = ScoreRequest.of([{"role": "user", "content": "A or B?"}], ("A", "B"))
    assert cached.score([s]) == [[-0.5, -1.5]]
    cached.describe()
    again, inner2, _ = wrapped(tmp_path)  # a new process would open the same file
    assert again.score([s]) == [[-0.5, -1.5]]
    assert again.describe()["capabilities"]["structured"] == "json_object"
    assert (inner.probes, inner2.probes, inner2.scored) == (1, 0, 0)


def test_the_database_uses_wal(tmp_path):
    ResponseCache(tmp_path / "c.sqlite")
    assert sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _writer(path: str, start: int) -> None:
    cache = ResponseCache(path)
    for i in range(start, start + 200):
        cache.put_many({f"k{i}": {"text": str(i)}})


def test_concurrent_writers_in_separate_processes(tmp_path):
    path = str(tmp_path / "c.sqlite")
    ResponseCache(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, n * 200)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    got = ResponseCache(path).get_many([f"k{i}" for i in range(600)])
    assert len(got) == 600 and got["k599"] == {"text": "599"}


def test_two_servers_serving_different_models_under_one_name_share_no_answers(tmp_path):
    db = ResponseCache(tmp_path / "c.sqlite")
    first, other, same = FakeServer(served="weights-a"), FakeServer(served="weights-b"), FakeServer(served="weights-a")
    s = ScoreRequest.of([{"role": "user", "content": "A or B?"}], ("A", "B"))
    for inner in (first, other, same):
        cached = CachedBackend(inner, db, UsageMeter())
        cached.generate([req("a")])
        cached.score([s])
        cached.capabilities()
    assert (first.generated, first.scored, first.probes) == (1, 1, 1)
    assert (other.generated, other.scored, other.probes) == (1, 1, 1)  # another model: asked itself
    assert (same.generated, same.scored, same.probes) == (0, 0, 0)  # the same model: every answer cached

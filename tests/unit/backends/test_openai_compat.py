"""Contract tests for the OpenAI-compatible backend, through the SDK's own HTTP transport hook.

No server runs here: an ``httpx`` ``MockTransport`` sits inside the ``AsyncClient`` handed to
``openai.AsyncOpenAI(http_client=...)``, so everything above the socket is real. The SDK builds the
HTTP request, applies its retry policy (429 with Retry-After, 5xx) and parses the body; the backend
probes capabilities and turns the answers into Completions and scores. These tests pin down the
request building, the response parsing and the failure handling on both sides of
/v1/chat/completions. How a real server behaves (llama.cpp) is covered by the integration tests.
"""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("openai")
try:  # the HTTP library the installed SDK sends through (httpx2 in recent releases)
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older SDKs
    import httpx

from rlaif.backends.base import Failure, GenRequest, SamplingParams, ScoreRequest  # noqa: E402
from rlaif.backends.cache import CachedBackend, ResponseCache  # noqa: E402
from rlaif.backends.openai_compat import PROBE_MESSAGES, PROBE_SCHEMA, OpenAICompatBackend  # noqa: E402
from rlaif.backends.remote import RemoteOptions  # noqa: E402
from rlaif.errors import ConfigError, ModelError  # noqa: E402
from rlaif.usage import UsageMeter  # noqa: E402

MODEL = "qwen-test-0.5b"
URL = "http://llama-a:8080/v1"
KEY = "sk-planted-7d2e91c04b"  # a planted value: it must reach the header and nowhere else
SCHEMA = {"type": "object", "properties": {"preferred": {"type": "string", "enum": ["A", "B"]}},
          "required": ["preferred"]}
ALL_KINDS = frozenset({"json_schema", "json_object_schema", "json_object"})
FAST = {"retry-after": "0.01"}  # keeps the SDK's own backoff (0.5 s and up) out of the tests


@pytest.fixture(autouse=True)
def env(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
                "OPENAI_WEBHOOK_SECRET"):
        monkeypatch.delenv(var, raising=False)


# ----------------------------------------------------------------------------- the fake server
def completion(content, finish_reason="stop", prompt_tokens=9, completion_tokens=4, top=None):
    """A chat.completion body; ``top``: [(token, logprob), ...] for the first generated token."""
    choice = {"index": 0, "message": {"role": "assistant", "content": content},
              "finish_reason": finish_reason, "logprobs": None}
    if top is not None:
        first = top[0] if top else ("?", -1.0)
        choice["logprobs"] = {"content": [{
            "token": first[0], "logprob": first[1], "bytes": None,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]}]}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": MODEL,
            "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def error(status, msg="boom", **headers):
    return httpx.Response(status, headers=headers,
                          json={"error": {"message": msg, "type": "server_error", "code": status}})


def format_kind(body) -> str | None:
    """Which structured-output mode a request asks for (the names the backend records)."""
    fmt = body.get("response_format")
    if not fmt:
        return None
    if fmt["type"] == "json_object":
        return "json_object_schema" if "schema" in fmt else "json_object"
    return fmt["type"]


class Server:
    """An OpenAI-compatible server. Structured modes in ``accepts`` work, others are refused with
    ``refuse`` (400, or 500 as llama.cpp answers an unknown option); ``logprobs`` says what the
    logprobs probe gets back (True: a list of ``top_logprobs``, "empty": an empty one, False:
    none); the first ``hiccups`` requests get a 500. Requests other than capability probes go to
    ``answer(request, body)``. Keeps what was sent."""

    def __init__(self, accepts=frozenset(), refuse=400, logprobs=False, answer=None, hiccups=0, models=None):
        self.accepts, self.refuse, self.logprobs, self.hiccups = set(accepts), refuse, logprobs, hiccups
        self.answer = answer or (lambda request, body: httpx.Response(200, json=completion("fine")))
        self.requests: list = []
        # GET /v1/models: the entries listed (a list, or a function of the request), or an HTTP status
        self.models = [{"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "test"}] \
            if models is None else models
        self.listings: list = []

    def __call__(self, request):
        if request.method == "GET" and request.url.path.endswith("/models"):
            self.listings.append(request)
            models = self.models(request) if callable(self.models) else self.models
            if isinstance(models, int):
                return error(models, "no such route", **FAST)
            return httpx.Response(200, json={"object": "list", "data": models})
        body = json.loads(request.content)
        self.requests.append((request, body))
        if len(self.requests) <= self.hiccups:
            return error(500, "loading model", **FAST)
        kind = format_kind(body)
        if kind is not None and kind not in self.accepts:
            return error(self.refuse, f"response_format {kind} is not supported", **FAST)
        if not is_probe(body):
            return self.answer(request, body)
        if kind is not None:
            return httpx.Response(200, json=completion('{"ok": true}'))
        top = {True: [("{", -0.1), ("Sure", -2.5)], "empty": [], False: None}[self.logprobs]
        return httpx.Response(200, json=completion("{", top=top))

    @property
    def bodies(self) -> list[dict]:
        return [b for _, b in self.requests]

    def work(self) -> list[dict]:
        """The bodies of requests that were not capability probes."""
        return [b for b in self.bodies if not is_probe(b)]


def is_probe(body) -> bool:
    return body["messages"] == PROBE_MESSAGES


@pytest.fixture
def make():
    made = []

    def build(server, meter=None, **opts):
        opts = {"base_urls": (URL,), "timeout": 5.0, "max_retries": 1, **opts}
        backend = OpenAICompatBackend(MODEL, RemoteOptions(**opts), meter or UsageMeter(),
                                      http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)))
        made.append(backend)
        return backend

    yield build
    for b in made:
        b.close()


def ask(content="Hi", json_schema="", **params):
    return GenRequest.of([{"role": "user", "content": content}], SamplingParams(**params),
                         json_schema=json_schema)


def judge(content="Which is better?", continuations=("A", "B"), prefill=""):
    return ScoreRequest.of([{"role": "user", "content": content}], continuations, prefill=prefill)


# ----------------------------------------------------------------------------- capability probing
@pytest.mark.parametrize("refuse", [400, 500], ids=["400", "500-repeated"])
def test_llama_cpp_like_server_gets_json_mode_with_a_schema(make, refuse):
    server = Server(accepts={"json_object_schema", "json_object"}, refuse=refuse, logprobs=True)
    b = make(server)
    caps = b.capabilities()
    assert caps["structured"] == "json_object_schema"
    assert caps["logprobs"] is True and caps["prefill"] is False
    assert set(caps["probe_errors"]) == {"json_schema"}
    assert str(refuse) in caps["probe_errors"]["json_schema"]
    kinds = [format_kind(body) for body in server.bodies]
    # a 400 is "unsupported" at once; a 500 only once it repeats
    assert kinds[:-2] == ["json_schema"] * (1 if refuse == 400 else 2)
    assert kinds[-2:] == ["json_object_schema", None]
    probe = server.bodies[-2]
    assert probe["response_format"] == {"type": "json_object", "schema": PROBE_SCHEMA}
    assert server.bodies[-1]["logprobs"] is True and server.bodies[-1]["top_logprobs"] >= 1
    assert all(body["model"] == MODEL for body in server.bodies)


def test_probing_happens_once(make):
    server = Server(accepts=ALL_KINDS, logprobs=True)
    b = make(server)
    first = b.capabilities()
    sent = len(server.requests)
    assert sent == 2  # json_schema accepted at once, then the logprobs probe
    assert b.capabilities() == first
    b.generate([ask(json_schema=json.dumps(SCHEMA))])
    b.describe()
    assert len(server.requests) == sent + 1


def test_server_with_json_schema_mode(make):
    server = Server(accepts=ALL_KINDS)
    caps = make(server).capabilities()
    assert caps["structured"] == "json_schema"
    assert caps["probe_errors"] == {}
    assert server.bodies[0]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "verdict", "schema": PROBE_SCHEMA}}


def test_a_single_500_is_retried_not_taken_for_unsupported(make):
    server = Server(accepts=ALL_KINDS, hiccups=1)
    caps = make(server).capabilities()
    assert caps["structured"] == "json_schema" and caps["probe_errors"] == {}
    assert [format_kind(body) for body in server.bodies[:2]] == ["json_schema", "json_schema"]


def test_server_refusing_every_format_falls_back_to_the_prompt(make):
    server = Server(accepts=(), logprobs=False)
    b = make(server)
    caps = b.capabilities()
    assert caps["structured"] == "prompt"
    assert set(caps["probe_errors"]) == {"json_schema", "json_object_schema", "json_object"}
    assert caps["logprobs"] is False
    # without a structured mode a json_schema request goes out without response_format
    b.generate([ask(json_schema=json.dumps(SCHEMA))])
    assert "response_format" not in server.work()[0]


def test_logprobs_are_detected_from_top_logprobs(make):
    with_lp = Server(accepts=ALL_KINDS, logprobs=True)
    without = Server(accepts=ALL_KINDS, logprobs=False)
    assert make(with_lp).capabilities()["logprobs"] is True
    assert make(without).capabilities()["logprobs"] is False

    empty = Server(accepts=ALL_KINDS, logprobs="empty")  # logprobs, but no alternatives listed
    assert make(empty).capabilities()["logprobs"] is False


# ----------------------------------------------------------------------------- request building
def test_generate_request_is_built_for_chat_completions(make):
    server = Server(accepts=ALL_KINDS)
    b = make(server)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "json_schema"})
    [c] = b.generate([GenRequest.of([{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Hi"}],
                                    SamplingParams(temperature=0.0, top_p=0.9, max_new_tokens=33, seed=5))])
    assert c.text == "fine" and c.error is None
    [(request, body)] = server.requests
    assert request.method == "POST"
    assert request.url.host == "llama-a" and request.url.path == "/v1/chat/completions"
    assert body["model"] == MODEL
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hi"}]
    assert body["max_tokens"] == 33 and body["temperature"] == 0.0 and body["seed"] == 5
    assert body["n"] == 1
    assert not {"top_p", "response_format", "logprobs"} & body.keys()  # greedy: top_p means nothing


def test_sampling_sends_top_p_and_an_unseeded_request_no_seed(make):
    server = Server()
    b = make(server)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    b.generate([ask("seeded", temperature=0.8, top_p=0.95, seed=11),
                ask("unseeded", temperature=0.8, top_p=0.95, seed=None)])
    by_text = {body["messages"][0]["content"]: body for body in server.bodies}
    assert by_text["seeded"]["temperature"] == 0.8 and by_text["seeded"]["top_p"] == 0.95
    assert by_text["seeded"]["seed"] == 11 and by_text["seeded"]["n"] == 1
    assert "seed" not in by_text["unseeded"] and by_text["unseeded"]["top_p"] == 0.95


def test_schema_request_gets_the_detected_format(make):
    server = Server(accepts={"json_object_schema", "json_object"}, refuse=400)
    server.answer = lambda request, body: httpx.Response(200, json=completion('{"preferred": "B"}'))
    b = make(server)
    [c, plain] = b.generate([ask(json_schema=json.dumps(SCHEMA)), ask("no schema")])
    work = {body["messages"][0]["content"]: body for body in server.work()}
    assert work["Hi"]["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert "response_format" not in work["no schema"]
    assert json.loads(c.text) == {"preferred": "B"}
    assert b.capabilities()["structured"] == "json_object_schema"


def test_schema_request_on_a_json_schema_server(make):
    server = Server(accepts=ALL_KINDS)
    make(server).generate([ask(json_schema=json.dumps(SCHEMA))])
    assert server.work()[0]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "verdict", "schema": SCHEMA}}


# ----------------------------------------------------------------------------- response parsing
def test_text_finish_reason_and_usage_are_read(make):
    meter = UsageMeter()

    def answer(request, body):
        if body["messages"][0]["content"] == "long":
            return httpx.Response(200, json=completion("cut", "length", prompt_tokens=120,
                                                       completion_tokens=16))
        return httpx.Response(200, json=completion("whole", "stop", prompt_tokens=30, completion_tokens=5))

    server = Server(answer=answer)
    b = make(server, meter=meter)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    long, short = b.generate([ask("long", max_new_tokens=16), ask("short")])
    assert (long.text, long.finish_reason, long.prompt_tokens, long.completion_tokens) == ("cut", "length", 120, 16)
    assert (short.text, short.finish_reason, short.prompt_tokens, short.completion_tokens) == ("whole", "stop", 30, 5)
    usage = meter.snapshot()[MODEL]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["calls"]) == (150, 21, 2)


def test_other_finish_reasons_count_as_stop(make):
    server = Server(answer=lambda request, body: httpx.Response(200, json=completion("x", "content_filter")))
    b = make(server)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    assert b.generate([ask()])[0].finish_reason == "stop"


# ----------------------------------------------------------------------------- failures
def test_non_json_200_is_retried_and_the_next_answer_used(make):
    def answer(request, body):
        if len(server.work()) == 1:
            return httpx.Response(200, content=b"<html>", headers={"content-type": "application/json"})
        return httpx.Response(200, json=completion("second time"))

    server = Server(answer=answer)
    meter = UsageMeter()
    b = make(server, meter=meter, max_retries=2)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    [c] = b.generate([ask()])
    assert len(server.requests) == 2
    assert c.text == "second time" and c.error is None and c.finish_reason == "stop"
    assert meter.snapshot()[MODEL]["calls"] == 2  # the unreadable answer reached the server too


def test_non_json_200_that_persists_is_reported(make):
    server = Server(answer=lambda request, body: httpx.Response(
        200, content=b"<html>", headers={"content-type": "application/json"}))
    b = make(server, max_retries=1)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    [c] = b.generate([ask()])
    assert len(server.requests) == 2
    assert (c.text, c.finish_reason) == ("", "error") and c.error.startswith("Malformed: ")


def test_html_page_with_an_html_content_type_is_malformed(make):
    server = Server(answer=lambda request, body: httpx.Response(
        200, content=b"<html>proxy error</html>", headers={"content-type": "text/html"}))
    b = make(server, max_retries=1)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    [c] = b.generate([ask()])
    assert len(server.requests) == 2
    assert c.finish_reason == "error" and c.error.startswith("Malformed: ")


def test_persistent_500_fails_one_request_and_not_the_batch(make):
    def answer(request, body):
        if body["messages"][0]["content"] == "bad":
            return error(500, "Internal server error\nsecond line", **FAST)
        return httpx.Response(200, json=completion("fine"))

    server = Server(answer=answer)
    b = make(server, max_retries=2)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    good1, bad, good2 = b.generate([ask("a"), ask("bad"), ask("b")])
    assert sum(1 for body in server.bodies if body["messages"][0]["content"] == "bad") == 3  # 1 + 2 retries
    assert (bad.text, bad.finish_reason) == ("", "error")
    assert "500" in bad.error and bad.error.startswith("InternalServerError")
    assert "\n" not in bad.error
    assert (good1.text, good1.error, good2.text, good2.error) == ("fine", None, "fine", None)


def test_429_with_retry_after_is_retried_by_the_sdk(make):
    def answer(request, body):
        if len(server.requests) == 1:
            return error(429, "slow down", **FAST)
        return httpx.Response(200, json=completion("made it"))

    server = Server(answer=answer)
    meter = UsageMeter()
    b = make(server, meter=meter, max_retries=2)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    [c] = b.generate([ask()])
    assert len(server.requests) == 2
    assert c.text == "made it" and c.error is None
    assert meter.snapshot()[MODEL]["calls"] == 1  # only the answered request is metered


def test_400_is_not_retried(make):
    server = Server(answer=lambda request, body: error(400, "context length exceeded"))
    b = make(server, max_retries=2)
    b.set_capabilities({"prefill": False, "logprobs": False, "structured": "prompt"})
    [c] = b.generate([ask()])
    assert len(server.requests) == 1
    assert c.finish_reason == "error" and c.error.startswith("BadRequestError 400")


# ----------------------------------------------------------------------------- score
def scoring_server(top):
    server = Server(accepts=ALL_KINDS, logprobs=True)
    server.answer = lambda request, body: httpx.Response(200, json=completion(top[0][0], top=top))
    return server


def test_score_sums_spacing_variants_of_a_token(make):
    top = [(" A", -0.5), ("A", -1.5), ("B", -2.0), (" C", -3.0)]
    server = scoring_server(top)
    b = make(server)
    [scores] = b.score([judge(continuations=("A", " B", "D"))])
    a, bb, d = scores
    assert a == pytest.approx(math.log(math.exp(-0.5) + math.exp(-1.5)))
    assert bb == pytest.approx(-2.0)
    assert d == -math.inf
    [body] = server.work()
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["max_tokens"] == 1 and body["temperature"] == 0
    assert body["messages"] == [{"role": "user", "content": "Which is better?"}]


def test_score_needs_a_server_with_logprobs(make):
    server = Server(accepts=ALL_KINDS, logprobs=False)
    b = make(server)
    with pytest.raises(ConfigError) as e:
        b.score([judge()])
    assert "judge.mode=structured" in e.value.hint
    assert server.work() == []


def test_score_refuses_a_prefill(make):
    server = scoring_server([("A", -0.1)])
    b = make(server)
    with pytest.raises(ConfigError) as e:
        b.score([judge(prefill='{"preferred": "')])
    assert "prefill" in str(e.value)
    assert server.work() == []


def test_failing_score_request_is_a_failure_entry(make):
    def answer(request, body):
        if body["messages"][0]["content"] == "bad":
            return error(500, "kv cache full", **FAST)
        if body["messages"][0]["content"] == "no logprobs":
            return httpx.Response(200, json=completion("A"))
        return httpx.Response(200, json=completion("A", top=[("A", -0.25), ("B", -1.75)]))

    server = Server(accepts=ALL_KINDS, logprobs=True, answer=answer)
    b = make(server, max_retries=1)
    good, bad, empty = b.score([judge("good"), judge("bad"), judge("no logprobs")])
    assert good == [pytest.approx(-0.25), pytest.approx(-1.75)]
    assert isinstance(bad, Failure) and "500" in bad.error
    assert isinstance(empty, Failure) and empty.error.startswith("Malformed: ")


# ----------------------------------------------------------------------------- replicas and the key
def test_several_base_urls_take_turns(make):
    server = Server(accepts=ALL_KINDS, logprobs=True)
    b = make(server, base_urls=("http://replica-a:8080/v1", "http://replica-b:8080/v1"))
    b.capabilities()  # two probes, one after the other
    assert [r.url.host for r, _ in server.requests] == ["replica-a", "replica-b"]
    b.generate([ask(str(i)) for i in range(4)])
    hosts = {body["messages"][0]["content"]: r.url.host for r, body in server.requests[2:]}
    assert hosts == {"0": "replica-a", "1": "replica-b", "2": "replica-a", "3": "replica-b"}
    assert {r.url.path for r, _ in server.requests} == {"/v1/chat/completions"}
    assert b.describe_server() == ["http://replica-a:8080/v1", "http://replica-b:8080/v1"]


# ----------------------------------------------------------------------------- identity
VLLM_ENTRY = {"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "vllm",
              "root": "/models/qwen2.5-0.5b-instruct", "parent": None, "max_model_len": 4096,
              "permission": [{"id": "modelperm-5f1c", "object": "model_permission", "created": 1700000000}]}


def test_identity_is_the_sorted_urls_and_what_the_server_lists_for_the_model(make):
    server = Server(models=[{"id": "other-model", "object": "model", "owned_by": "vllm"}, VLLM_ENTRY])
    b = make(server, base_urls=("http://replica-b:8080/v1", "http://replica-a:8080/v1"))
    assert b.identity() == {"backend": "openai", "model": MODEL,
                            "base_urls": ["http://replica-a:8080/v1", "http://replica-b:8080/v1"],
                            "served": {"id": MODEL, "owned_by": "vllm", "root": "/models/qwen2.5-0.5b-instruct"}}
    assert b.identity() is b.identity() and len(server.listings) == 2  # each server asked once
    assert {r.url.path for r in server.listings} == {"/v1/models"}


def test_the_identity_ignores_what_a_server_makes_up_per_request(make):
    later = {**VLLM_ENTRY, "created": 1800000000, "permission": [{"id": "modelperm-9e2a", "created": 1800000000}]}
    assert make(Server(models=[VLLM_ENTRY])).identity() == make(Server(models=[later])).identity()


def test_another_model_behind_the_same_name_and_url_is_another_identity(make):
    other = {**VLLM_ENTRY, "root": "/models/llama-3.1-8b-instruct"}
    assert make(Server(models=[VLLM_ENTRY])).identity() != make(Server(models=[other])).identity()


def test_a_server_of_one_model_is_identified_by_that_model_whatever_it_is_called(make):
    gguf = {"id": "/models/smollm2-135m.Q4_1.gguf", "object": "model", "owned_by": "llamacpp",
            "meta": {"n_params": 134515008, "size": 91719936}}
    assert make(Server(models=[gguf])).identity()["served"] == {k: v for k, v in gguf.items() if k != "object"}


def test_a_server_that_does_not_list_the_model_is_a_model_error(make):
    b = make(Server(models=[{"id": "llama3:8b", "object": "model"}, {"id": "qwen2:7b", "object": "model"}]))
    with pytest.raises(ModelError, match=f"does not serve '{MODEL}' \\(it lists llama3:8b, qwen2:7b\\)"):
        b.identity()


def test_a_server_without_a_model_list_is_identified_by_url_and_name(make):
    assert make(Server(models=404)).identity() == {"backend": "openai", "model": MODEL, "base_urls": [URL],
                                                    "served": None}


def test_replicas_serving_different_models_are_a_model_error(make):
    server = Server(models=lambda r: [VLLM_ENTRY if r.url.host == "replica-a" else {**VLLM_ENTRY, "root": "/other"}])
    b = make(server, base_urls=("http://replica-a:8080/v1", "http://replica-b:8080/v1"))
    with pytest.raises(ModelError, match="serve different models"):
        b.identity()


def test_an_unreachable_server_is_a_model_error_naming_it(make):
    def down(request):
        raise httpx.ConnectError("connection refused", request=request)

    b = make(down, max_retries=0)
    with pytest.raises(ModelError, match=f"cannot ask {URL} which model it serves as '{MODEL}'"):
        b.identity()


def test_cached_answers_are_not_shared_by_servers_serving_different_models_under_one_name(make, tmp_path):
    def answer(text):
        return lambda request, body: httpx.Response(200, json=completion(text))

    first = Server(accepts=ALL_KINDS, models=[VLLM_ENTRY], answer=answer("from qwen"))
    other = Server(accepts=ALL_KINDS, models=[{**VLLM_ENTRY, "root": "/models/llama-3.1-8b"}],
                   answer=answer("from llama"))
    same = Server(accepts=ALL_KINDS, models=[VLLM_ENTRY], answer=answer("never asked"))
    db = ResponseCache(tmp_path / "responses.sqlite")
    texts = [CachedBackend(make(s), db, UsageMeter()).generate([ask(seed=3)])[0].text for s in (first, other, same)]
    assert texts == ["from qwen", "from llama", "from qwen"]
    assert len(same.work()) == 0 and len(other.work()) == 1


def test_key_comes_from_the_named_variable_and_is_shown_nowhere(make, monkeypatch):
    monkeypatch.setenv("TEAM_OPENAI_KEY", KEY)
    server = Server(accepts=ALL_KINDS)
    b = make(server, api_key_env="TEAM_OPENAI_KEY")
    [c] = b.generate([ask()])
    assert {r.headers["authorization"] for r, _ in server.requests} == {f"Bearer {KEY}"}
    assert KEY not in json.dumps(b.describe())
    assert KEY not in repr(c)
    own = {k: v for k, v in vars(b).items() if k != "clients"}  # the SDK clients hold it, nothing else
    assert KEY not in repr(own)


def test_without_a_base_url_the_key_goes_to_api_openai_com(make, monkeypatch):
    monkeypatch.setenv("TEAM_OPENAI_KEY", KEY)
    server = Server(accepts=ALL_KINDS)
    b = make(server, base_urls=(), api_key_env="TEAM_OPENAI_KEY")
    b.capabilities()
    assert {r.url.host for r, _ in server.requests} == {"api.openai.com"}
    assert b.describe_server() == ["https://api.openai.com/v1"]


def test_local_server_gets_a_placeholder_key(make):
    server = Server(accepts=ALL_KINDS)
    make(server).capabilities()
    assert server.requests[0][0].headers["authorization"] == "Bearer not-needed"


def test_unset_key_variable_is_a_config_error_naming_it(make, monkeypatch):
    monkeypatch.delenv("TEAM_OPENAI_KEY", raising=False)
    with pytest.raises(ConfigError) as e:
        make(Server(), api_key_env="TEAM_OPENAI_KEY")
    assert "TEAM_OPENAI_KEY" in str(e.value)


def test_neither_a_server_nor_a_key_is_a_config_error(make):
    with pytest.raises(ConfigError) as e:
        make(Server(), base_urls=())
    assert "base_url" in str(e.value) and "api_key_env" in str(e.value)


def test_close_closes_the_http_client_and_the_loop():
    client = httpx.AsyncClient(transport=httpx.MockTransport(Server()))
    b = OpenAICompatBackend(MODEL, RemoteOptions(base_urls=(URL,)), UsageMeter(), http_client=client)
    b.close()
    assert client.is_closed and b.runner.loop.is_closed()
    b.close()  # twice is harmless

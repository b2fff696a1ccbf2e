"""Contract tests for the Anthropic backend.

The Messages API cannot be reached from this machine, so these tests stand in for it at the
SDK's own HTTP transport hook: an ``httpx`` ``MockTransport`` inside the ``AsyncClient`` given to
``anthropic.AsyncAnthropic(http_client=...)``. Everything above the socket is real: the SDK
builds the HTTP request, applies its retry policy (429 with Retry-After, 5xx) and parses the
body, and the backend turns that into Completions. What the tests pin down is the contract on
both sides of the wire: which JSON the backend sends to /v1/messages, and how it reads the
answers (text, tool_use, stop reasons, usage, malformed bodies, errors). They say nothing about
how a real model answers.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("anthropic")
try:  # the HTTP library the installed SDK sends through (httpx2 since anthropic 2)
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older SDKs
    import httpx

from rlaif.backends.anthropic import AnthropicBackend  # noqa: E402
from rlaif.backends.base import GenRequest, SamplingParams, ScoreRequest  # noqa: E402
from rlaif.backends.remote import RemoteOptions  # noqa: E402
from rlaif.errors import ConfigError  # noqa: E402
from rlaif.usage import UsageMeter  # noqa: E402

MODEL = "claude-test-1"
KEY = "sk-ant-planted-4f1c9e0b7a"  # a planted value: it must reach the header and nowhere else
SCHEMA = {"type": "object", "properties": {"preferred": {"type": "string", "enum": ["A", "B"]},
                                           "reason": {"type": "string"}},
          "required": ["preferred"]}


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    for var in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(var, raising=False)


class FakeAPI:
    """Answers each request with ``respond(request, body)``; keeps what was sent."""

    def __init__(self, respond):
        self.respond = respond
        self.requests: list = []

    def __call__(self, request):
        body = json.loads(request.content) if request.content else None
        self.requests.append((request, body))
        return self.respond(request, body)

    @property
    def bodies(self) -> list[dict]:
        return [b for _, b in self.requests]


def message(*content, stop_reason="end_turn", input_tokens=11, output_tokens=7):
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": MODEL,
            "content": list(content), "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


def text(t):
    return {"type": "text", "text": t}


def ok(*content, **kw):
    return lambda request, body: httpx.Response(200, json=message(*content, **kw))


def sent_key(request) -> str | None:
    """The API key as the SDK sent it: ``x-api-key`` in older releases, a bearer token in 2.x."""
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme == "Bearer" else None


def error(status, kind, msg, **headers):
    return httpx.Response(status, headers=headers,
                          json={"type": "error", "error": {"type": kind, "message": msg}})


@pytest.fixture
def make():
    made = []

    def build(api: FakeAPI, meter=None, **opts):
        opts = {"timeout": 5.0, "max_retries": 1, **opts}
        backend = AnthropicBackend(MODEL, RemoteOptions(**opts), meter or UsageMeter(),
                                   http_client=httpx.AsyncClient(transport=httpx.MockTransport(api)))
        made.append(backend)
        return backend

    yield build
    for b in made:
        b.close()


def ask(content="Hi", system=None, prefill="", json_schema="", **params):
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    return GenRequest.of(msgs, SamplingParams(**params), prefill=prefill, json_schema=json_schema)


# ----------------------------------------------------------------------------- request building
def test_text_request_is_built_for_the_messages_api(make):
    api = FakeAPI(ok(text("Hello there.")))
    b = make(api)
    [c] = b.generate([GenRequest.of([{"role": "system", "content": "Be brief."},
                                     {"role": "system", "content": "Be kind."},
                                     {"role": "user", "content": "Hi"},
                                     {"role": "assistant", "content": "Hello."},
                                     {"role": "user", "content": "Again"}],
                                    SamplingParams(temperature=0.0, max_new_tokens=33, seed=5))])
    assert c.text == "Hello there." and c.finish_reason == "stop" and c.error is None
    [(request, body)] = api.requests
    assert request.method == "POST"
    assert request.url.host == "api.anthropic.com" and request.url.path == "/v1/messages"
    assert body["model"] == MODEL
    assert body["system"] == "Be brief.\n\nBe kind."
    assert body["messages"] == [{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello."},
                                {"role": "user", "content": "Again"}]
    assert body["max_tokens"] == 33
    assert body["temperature"] == 0.0
    # greedy: top_p means nothing; the API has no seed; no tools for a plain answer
    assert not {"top_p", "seed", "tools", "tool_choice"} & body.keys()


def test_top_p_is_sent_only_when_it_narrows_sampling(make):
    api = FakeAPI(ok(text("x")))
    b = make(api)
    b.generate([ask(temperature=0.7, top_p=0.9), ask(temperature=0.7, top_p=1.0)])
    by_top_p = sorted(api.bodies, key=lambda body: "top_p" in body)
    assert by_top_p[0]["temperature"] == 0.7 and "top_p" not in by_top_p[0]
    assert by_top_p[1]["temperature"] == 0.7 and by_top_p[1]["top_p"] == 0.9


def test_no_system_parameter_without_a_system_message(make):
    api = FakeAPI(ok(text("x")))
    make(api).generate([ask()])
    assert "system" not in api.bodies[0]


def test_prefill_is_the_last_assistant_turn_and_only_the_continuation_comes_back(make):
    api = FakeAPI(ok(text('A", "reason": "clearer"}')))
    b = make(api)
    [c] = b.generate([ask(prefill='{"preferred": "')])
    assert api.bodies[0]["messages"][-1] == {"role": "assistant", "content": '{"preferred": "'}
    assert c.text == 'A", "reason": "clearer"}'
    assert b.capabilities()["prefill"] is True


def test_prefill_ending_in_whitespace_is_trimmed_for_the_api_and_the_answer_still_continues_it(make):
    api = FakeAPI(ok(text(" because it is shorter.")))
    [c] = make(api).generate([ask(prefill="Reasoning: ")])
    assert api.bodies[0]["messages"][-1]["content"] == "Reasoning:"
    assert "Reasoning: " + c.text == "Reasoning: because it is shorter."


def test_json_schema_is_enforced_with_one_forced_tool_and_no_prefill(make):
    verdict = {"preferred": "B", "reason": "more honest"}
    api = FakeAPI(ok({"type": "tool_use", "id": "toolu_01", "name": "record_answer", "input": verdict}))
    b = make(api)
    [plain, prefilled] = b.generate([ask(json_schema=json.dumps(SCHEMA)),
                                     ask("Other", json_schema=json.dumps(SCHEMA), prefill='{"preferred": "')])
    for body in api.bodies:
        [tool] = body["tools"]
        assert tool["input_schema"] == SCHEMA
        assert body["tool_choice"] == {"type": "tool", "name": tool["name"]}
        assert [m["role"] for m in body["messages"]] == ["user"]  # the prefill is not sent
    assert json.loads(plain.text) == verdict
    # a caller that prefilled the JSON's start reads prefill + text: that is the whole object
    assert json.loads('{"preferred": "' + prefilled.text) == verdict
    assert b.capabilities()["structured"] == "tool"


# ----------------------------------------------------------------------------- response parsing
def test_text_blocks_are_joined_and_other_blocks_ignored(make):
    api = FakeAPI(ok({"type": "thinking", "thinking": "hmm", "signature": "s"}, text("Part one. "),
                     text("Part two.")))
    [c] = make(api).generate([ask()])
    assert c.text == "Part one. Part two."


def test_max_tokens_stop_is_length_and_usage_is_metered(make):
    meter = UsageMeter()
    api = FakeAPI(ok(text("cut"), stop_reason="max_tokens", input_tokens=120, output_tokens=16))
    b = make(api, meter=meter)
    [c, d] = b.generate([ask("one", max_new_tokens=16), ask("two", max_new_tokens=16)])
    assert (c.finish_reason, c.prompt_tokens, c.completion_tokens) == ("length", 120, 16)
    assert d.finish_reason == "length"
    usage = meter.snapshot()[MODEL]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["calls"]) == (240, 32, 2)


# ----------------------------------------------------------------------------- retries and failures
def test_429_with_retry_after_is_retried_by_the_sdk(make):
    def respond(request, body):
        if len(api.requests) == 1:
            return error(429, "rate_limit_error", "slow down", **{"retry-after": "0.01"})
        return httpx.Response(200, json=message(text("made it")))

    api = FakeAPI(respond)
    meter = UsageMeter()
    [c] = make(api, meter=meter, max_retries=2).generate([ask()])
    assert len(api.requests) == 2
    assert c.text == "made it" and c.error is None
    assert meter.snapshot()[MODEL]["calls"] == 1  # only the answered request spent tokens


def test_persistent_500_becomes_an_error_completion_without_stopping_the_batch(make):
    def respond(request, body):
        if body["messages"][0]["content"] == "bad":
            return error(500, "api_error", "Internal server error\nsecond line",
                         **{"retry-after-ms": "1"})
        return httpx.Response(200, json=message(text("fine")))

    api = FakeAPI(respond)
    good1, bad, good2 = make(api, max_retries=2).generate([ask("a"), ask("bad"), ask("b")])
    assert sum(1 for b in api.bodies if b["messages"][0]["content"] == "bad") == 3  # 1 + 2 retries
    assert (bad.text, bad.finish_reason) == ("", "error")
    assert bad.error.startswith("InternalServerError 500: ")
    assert "\n" not in bad.error
    assert good1.text == good2.text == "fine" and good1.error is None and good2.error is None


@pytest.mark.parametrize("body", [
    message(),  # no content blocks at all
    message({"type": "tool_use", "id": "t", "name": "x", "input": {}}),  # no text block
], ids=["empty-content", "no-text-block"])
def test_malformed_200_is_retried_then_reported(make, body):
    api = FakeAPI(lambda request, _: httpx.Response(200, json=body))
    meter = UsageMeter()
    [c] = make(api, meter=meter, max_retries=1).generate([ask()])
    assert len(api.requests) == 2  # the SDK accepts a 200; the backend asks again once
    assert c.finish_reason == "error" and c.text == ""
    assert c.error.startswith("Malformed: ") and "text block" in c.error
    assert meter.snapshot()[MODEL]["calls"] == 2  # both reached the server


def test_unreadable_json_body_is_retried_then_reported(make):
    api = FakeAPI(lambda request, _: httpx.Response(200, content=b'{"type": "mess',
                                                    headers={"content-type": "application/json"}))
    [c] = make(api, max_retries=1).generate([ask()])
    assert len(api.requests) == 2
    assert c.finish_reason == "error" and c.error.startswith("Malformed: ")


def test_schema_request_without_tool_use_is_malformed(make):
    api = FakeAPI(ok(text('{"preferred": "A"}')))
    [c] = make(api, max_retries=1).generate([ask(json_schema=json.dumps(SCHEMA))])
    assert len(api.requests) == 2
    assert c.finish_reason == "error" and "tool_use" in c.error


def test_refused_sampling_parameters_step_down_and_stay_down(make):
    def respond(request, body):
        if "temperature" in body and "top_p" in body:
            return error(400, "invalid_request_error",
                         "`temperature` and `top_p` cannot both be specified for this model.")
        if "temperature" in body:
            return error(400, "invalid_request_error", "`temperature` is deprecated for this model.")
        return httpx.Response(200, json=message(text("sampled")))

    api = FakeAPI(respond)
    b = make(api)
    [c] = b.generate([ask(temperature=0.7, top_p=0.9)])
    assert c.text == "sampled"
    assert [sorted(k for k in ("temperature", "top_p") if k in body) for body in api.bodies] == [
        ["temperature", "top_p"], ["temperature"], []]
    assert b.describe()["sampling_params"] == []
    b.generate([ask(temperature=0.7, top_p=0.9)])
    assert len(api.requests) == 4 and "temperature" not in api.bodies[-1]


def test_other_400s_fail_at_once(make):
    api = FakeAPI(lambda request, body: error(400, "invalid_request_error", "messages: roles must alternate"))
    b = make(api, max_retries=3)
    [c] = b.generate([ask(temperature=0.7)])
    assert len(api.requests) == 1
    assert c.finish_reason == "error" and c.error.startswith("BadRequestError 400: ")
    assert b.describe()["sampling_params"] == ["temperature", "top_p"]


# ----------------------------------------------------------------------------- the key
def test_key_is_sent_from_the_environment_and_shown_nowhere(make):
    api = FakeAPI(ok(text("ok")))
    b = make(api)
    [c] = b.generate([ask()])
    [(request, _)] = api.requests
    assert sent_key(request) == KEY
    assert KEY not in json.dumps(b.describe())
    assert KEY not in repr(c)
    own = {k: v for k, v in vars(b).items() if k != "clients"}  # the SDK clients hold it, nothing else
    assert KEY not in repr(own)


def test_key_comes_from_the_named_variable_when_one_is_configured(make, monkeypatch):
    monkeypatch.setenv("TEAM_CLAUDE_KEY", "sk-ant-team-key-31")
    api = FakeAPI(ok(text("ok")))
    make(api, api_key_env="TEAM_CLAUDE_KEY").generate([ask()])
    assert sent_key(api.requests[0][0]) == "sk-ant-team-key-31"


@pytest.mark.parametrize("var", [None, "TEAM_CLAUDE_KEY"])
def test_missing_key_is_a_config_error_naming_the_variable(make, monkeypatch, var):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("TEAM_CLAUDE_KEY", raising=False)
    with pytest.raises(ConfigError) as e:
        make(FakeAPI(ok(text("unused"))), api_key_env=var)
    assert (var or "ANTHROPIC_API_KEY") in str(e.value)


# ----------------------------------------------------------------------------- the rest
def test_score_is_refused_with_a_pointer_to_the_structured_judge(make):
    api = FakeAPI(ok(text("unused")))
    with pytest.raises(ConfigError) as e:
        make(api).score([ScoreRequest.of([{"role": "user", "content": "?"}], ("A", "B"))])
    assert "log-probabilities" in str(e.value)
    assert e.value.hint == "use judge.mode=structured with an Anthropic teacher"
    assert api.requests == []


def test_capabilities_and_description_need_no_request(make):
    api = FakeAPI(ok(text("unused")))
    b = make(api)
    b.set_capabilities({"prefill": False})  # a stored copy changes nothing: they are fixed
    assert b.capabilities() == {"prefill": True, "logprobs": False, "structured": "tool"}
    assert b.describe() == {"backend": "anthropic", "model": MODEL,
                            "base_urls": ["https://api.anthropic.com"],
                            "capabilities": b.capabilities(),
                            "sampling_params": ["temperature", "top_p"]}
    assert api.requests == []


def test_identity_is_the_api_url_and_the_model_id_and_needs_no_request(make):
    api = FakeAPI(ok(text("unused")))
    assert make(api).identity() == {"backend": "anthropic", "model": MODEL,
                                    "base_urls": ["https://api.anthropic.com"]}
    proxied = make(api, base_urls=("http://gateway-b:8080/v1", "http://gateway-a:8080"))
    assert proxied.identity()["base_urls"] == ["http://gateway-a:8080", "http://gateway-b:8080"]
    assert api.requests == []


def test_several_base_urls_share_the_requests(make):
    api = FakeAPI(ok(text("ok")))
    b = make(api, base_urls=("http://replica-a:8080/v1", "http://replica-b:8080"))
    assert b.describe_server() == ["http://replica-a:8080", "http://replica-b:8080"]
    b.generate([ask(str(i)) for i in range(4)])
    assert sorted(r.url.host for r, _ in api.requests) == ["replica-a"] * 2 + ["replica-b"] * 2
    assert {r.url.path for r, _ in api.requests} == {"/v1/messages"}


def test_close_closes_the_http_client():
    client = httpx.AsyncClient(transport=httpx.MockTransport(FakeAPI(ok(text("x")))))
    b = AnthropicBackend(MODEL, RemoteOptions(), UsageMeter(), http_client=client)
    b.close()
    assert client.is_closed and b.runner.loop.is_closed()
    b.close()  # twice is harmless

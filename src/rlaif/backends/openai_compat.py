"""Any ``/v1/chat/completions`` server (vLLM, Ollama, llama.cpp, TGI, SGLang, OpenAI) through the
official async ``openai`` SDK.

Servers differ in what they honour, so what matters is detected once per server and recorded:
structured output (JSON-schema mode, JSON mode with a schema, plain JSON mode, or none) and token
log-probabilities. ``n`` is never trusted: every candidate is its own request with its own seed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from typing import Sequence

from rlaif.backends.base import Completion, Failure, GenRequest, ScoreRequest
from rlaif.backends.remote import (Malformed, RemoteOptions, Runner, completions, describe_error,
                                  estimate_tokens, metered, require)
from rlaif.errors import ConfigError, ModelError

PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                "additionalProperties": False}
PROBE_MESSAGES = [{"role": "user", "content": 'Reply with the JSON object {"ok": true}.'}]
TOP_LOGPROBS = 20
# What a server's /v1/models entry says about the model, kept in its identity: vLLM names the
# weights it loaded in ``root``, llama.cpp describes the GGUF (size, parameters) in ``meta``. Not
# ``created`` (vLLM stamps the time of the request) nor ``permission`` (vLLM makes up its ids).
SERVED_FIELDS = ("id", "root", "parent", "owned_by", "meta")
NO_LISTING = (404, 405, 501)  # a server without /v1/models


def response_format(kind: str, schema: dict) -> dict | None:
    """The ``response_format`` for a detected structured-output capability."""
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}
    if kind == "json_object_schema":  # llama.cpp: JSON mode constrained by a schema
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def _text_of(resp) -> tuple[str, str, int, int]:
    """(text, finish_reason, prompt_tokens, completion_tokens), or Malformed."""
    choices = getattr(resp, "choices", None)
    if not choices:  # a body that was not a chat completion at all (the SDK returns str for text)
        raise Malformed(f"not a chat completion: {str(resp)[:120]!r}")
    msg = choices[0].message
    if msg is None or msg.content is None:
        raise Malformed("the completion has no message content")
    usage = getattr(resp, "usage", None)
    finish = "length" if choices[0].finish_reason == "length" else "stop"
    return (msg.content, finish, getattr(usage, "prompt_tokens", 0) or 0,
            getattr(usage, "completion_tokens", 0) or 0)


class OpenAICompatBackend:
    """A model behind one or more OpenAI-compatible servers (replicas share the load)."""

    name = "openai"

    def __init__(self, model: str, opts: RemoteOptions, meter, http_client=None):
        """``http_client``: an ``httpx`` AsyncClient for the SDK (tests pass a mock transport)."""
        openai = require("openai", "openai")
        if not opts.base_urls and not opts.api_key_env:
            raise ConfigError(f"backend 'openai' for model '{model}' needs base_url (a server) or "
                              f"api_key_env (for api.openai.com)")
        self.model, self.opts, self.meter = model, opts, meter
        self._openai = openai
        key = opts.api_key("not-needed")  # local servers accept any key; the SDK insists on one
        self.runner = Runner(opts)  # after the key check, so a missing key leaves no open loop
        urls = opts.base_urls or (None,)
        # The SDK's own retries handle 429 (honouring Retry-After), 5xx, timeouts and dropped
        # connections, with exponential backoff and jitter.
        self.clients = [openai.AsyncOpenAI(base_url=u, api_key=key, timeout=opts.timeout,
                                           max_retries=opts.max_retries, http_client=http_client)
                        for u in urls]
        self._next = itertools.cycle(range(len(self.clients)))
        self._caps: dict | None = None
        self._identity: dict | None = None

    # ------------------------------------------------------------------ plumbing
    async def _create(self, probe: bool = False, **kwargs):
        client = self.clients[next(self._next)]
        if probe:  # probes retry by themselves (see _probe_call)
            client = client.with_options(max_retries=0)
        return await metered(client.chat.completions.create(model=self.model, **kwargs), self.meter, self.model,
                             (json.JSONDecodeError, self._openai.APIResponseValidationError),
                             "prompt_tokens", "completion_tokens")

    # ------------------------------------------------------------------ capabilities
    def capabilities(self) -> dict:
        if self._caps is None:
            try:
                self._caps = self.runner.run(self._probe())
            except self._openai.APIError as e:
                where = ", ".join(self.opts.base_urls) or "api.openai.com"
                raise ModelError(f"cannot use '{self.model}' at {where}: {describe_error(e)}",
                                 hint="is the server running, and does it serve this model name?") from None
        return self._caps

    def set_capabilities(self, caps: dict) -> None:
        """Use capabilities detected earlier (e.g. stored in the response cache)."""
        self._caps = dict(caps)

    async def _probe_call(self, **kwargs):
        """One probe request. Transient trouble (timeouts, dropped connections, 429, a malformed
        body) is retried; a 4xx means "unsupported" at once; a 5xx counts as "unsupported" only
        when it repeats, since some servers (llama.cpp) answer an unknown option with a 500."""
        o = self._openai
        seen_5xx = 0
        for attempt in range(self.opts.max_retries + 1):
            try:
                return await self._create(probe=True, **kwargs)
            except (o.APIConnectionError, o.RateLimitError, Malformed):
                if attempt == self.opts.max_retries:
                    raise
            except o.InternalServerError:
                seen_5xx += 1
                if seen_5xx >= 2 or attempt == self.opts.max_retries:
                    raise
            await asyncio.sleep(min(0.5 * 2 ** attempt, 8.0))
        raise AssertionError("unreachable")

    async def _probe(self) -> dict:
        caps = {"prefill": False, "logprobs": False, "structured": "prompt", "probe_errors": {}}
        for kind in ("json_schema", "json_object_schema", "json_object"):
            try:
                resp = await self._probe_call(messages=PROBE_MESSAGES, max_tokens=16, temperature=0,
                                              response_format=response_format(kind, PROBE_SCHEMA))
                json.loads(_text_of(resp)[0])
            except self._openai.RateLimitError:
                raise  # still rate-limited after every retry: says nothing about the option
            except (self._openai.APIStatusError, Malformed, ValueError) as e:
                caps["probe_errors"][kind] = describe_error(e)
                continue
            caps["structured"] = kind
            break
        try:
            resp = await self._probe_call(messages=PROBE_MESSAGES, max_tokens=1, temperature=0,
                                          logprobs=True, top_logprobs=5)
            content = resp.choices[0].logprobs.content if resp.choices[0].logprobs else None
            caps["logprobs"] = bool(content and content[0].top_logprobs)
        except self._openai.RateLimitError:
            raise
        except (self._openai.APIStatusError, Malformed, AttributeError, IndexError) as e:
            caps["probe_errors"]["logprobs"] = describe_error(e)
        return caps

    # ------------------------------------------------------------------ generate
    def _gen_kwargs(self, r: GenRequest) -> dict:
        p = r.params
        kw = {"messages": r.chat(), "max_tokens": p.max_new_tokens, "temperature": p.temperature,
              "n": 1}
        if p.temperature > 0:
            kw["top_p"] = p.top_p
        if p.seed is not None:
            kw["seed"] = p.seed
        if r.json_schema:
            fmt = response_format(self.capabilities()["structured"], json.loads(r.json_schema))
            if fmt:
                kw["response_format"] = fmt
        return kw

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        kwargs = [self._gen_kwargs(r) for r in requests]

        async def one(kw):
            return _text_of(await self._create(**kw))

        results = self.runner.map(one, kwargs,
                                  lambda kw: estimate_tokens([(m["role"], m["content"]) for m in kw["messages"]],
                                                             kw["max_tokens"]), errors=(self._openai.APIError,))
        return completions(results)

    # ------------------------------------------------------------------ score
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float] | Failure]:
        """Log-probabilities of single-token continuations at the first answer position, read
        from the server's ``top_logprobs``. A continuation outside the top list gets -inf."""
        if not self.capabilities()["logprobs"]:
            raise ConfigError(f"the server for '{self.model}' does not return token log-probabilities",
                              hint="use judge.mode=structured with this teacher")
        if any(r.prefill for r in requests):
            raise ConfigError("this backend cannot continue a prefilled answer; score without a prefill")

        async def one(r: ScoreRequest):
            resp = await self._create(messages=r.chat(), max_tokens=1, temperature=0, logprobs=True,
                                      top_logprobs=TOP_LOGPROBS)
            lp = resp.choices[0].logprobs if getattr(resp, "choices", None) else None
            if not lp or not lp.content:
                raise Malformed("the response carries no logprobs")
            return [(t.token, t.logprob) for t in lp.content[0].top_logprobs], resp.usage

        results = self.runner.map(one, list(requests), lambda r: estimate_tokens(r.messages, 1),
                                  errors=(self._openai.APIError,))
        out = []
        for r, res in zip(requests, results):
            if isinstance(res, Exception):
                out.append(Failure(describe_error(res)))
                continue
            top, _ = res
            out.append([_logsumexp([lp for tok, lp in top if tok.strip() == c.strip()])
                        for c in r.continuations])
        return out

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict:
        """The base URL(s), sorted, the model name asked for, and what the server lists for that
        name under /v1/models (``served``; None for a server without that endpoint). Asked once."""
        async def every_server():
            return await asyncio.gather(*(self._served(c) for c in self.clients))

        if self._identity is None:
            try:
                listed = self.runner.run(every_server())
            except self._openai.APIError as e:
                where = ", ".join(self.opts.base_urls) or "api.openai.com"
                raise ModelError(f"cannot ask {where} which model it serves as '{self.model}': "
                                 f"{describe_error(e)}", hint="is the server running?") from None
            entries = dict(zip(self.describe_server(), listed))
            if len({json.dumps(e, sort_keys=True) for e in entries.values()}) > 1:
                raise ModelError(f"the servers for '{self.model}' serve different models: "
                                 + "; ".join(f"{u} lists {e}" for u, e in entries.items()),
                                 hint="every base_url of one model spec must serve the same model")
            self._identity = {"backend": self.name, "model": self.model, "base_urls": sorted(entries),
                              "served": listed[0]}
        return self._identity

    async def _served(self, client) -> dict | None:
        try:
            page = await client.models.list()
        except self._openai.APIStatusError as e:
            if e.status_code in NO_LISTING:
                return None
            raise
        models = [m for m in (getattr(page, "data", None) or []) if getattr(m, "id", None)]
        match = [m for m in models if m.id == self.model]
        if not match and len(models) == 1:
            match = models  # a server of one model answers to any name (llama.cpp)
        if not match:
            names = ", ".join(sorted(m.id for m in models)[:10]) or "nothing"
            raise ModelError(f"{str(client.base_url).rstrip('/')} does not serve '{self.model}' (it lists {names})",
                             hint="set model to a name the server lists")
        entry = match[0].model_dump()
        return {k: entry[k] for k in SERVED_FIELDS if entry.get(k) is not None}

    def describe_server(self) -> list[str]:
        """The URLs the clients really use (the SDK also honours OPENAI_BASE_URL)."""
        return [str(c.base_url).rstrip("/") for c in self.clients]

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "base_urls": self.describe_server(),
                "capabilities": self.capabilities()}

    def close(self) -> None:
        async def close_clients():  # on the runner's loop, which their connections belong to
            await asyncio.gather(*(c.close() for c in self.clients))

        if not self.runner.loop.is_closed():
            self.runner.run(close_clients())
        self.runner.close()


def _logsumexp(values: list[float]) -> float:
    if not values:
        return -math.inf
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))

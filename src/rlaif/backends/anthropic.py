"""Claude as teacher, through the official async ``anthropic`` SDK.

A prefill is sent as a final assistant turn, which Claude continues. A JSON schema is enforced
through tool use: one tool whose input schema is the schema, forced with ``tool_choice``. Claude
returns no token log-probabilities, so ``score`` is refused with a pointer to the structured judge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from typing import Sequence

from rlaif.backends.base import Completion, Failure, GenRequest, ScoreRequest
from rlaif.backends.remote import (Malformed, RemoteOptions, Runner, completions, estimate_tokens,
                                  metered, require)
from rlaif.errors import ConfigError

DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
TOOL_NAME = "record_answer"
CAPABILITIES = {"prefill": True, "logprobs": False, "structured": "tool"}
# Sampling settings sent, from most to fewest. The SDK no longer types them (they go in
# extra_body), some models refuse temperature and top_p together, and newer ones refuse
# temperature too; a 400 that names one of them steps down a level for the rest of the run.
SAMPLING_LEVELS = (("temperature", "top_p"), ("temperature",), ())


def _answer(resp, r: GenRequest) -> tuple[str, str, int, int]:
    """(text, finish_reason, input_tokens, output_tokens), or Malformed."""
    content = getattr(resp, "content", None)
    if not isinstance(content, list):  # e.g. a body that was not a message (the SDK returns str)
        raise Malformed(f"not a message: {str(resp)[:120]!r}")
    if r.json_schema:
        block = next((b for b in content if getattr(b, "type", None) == "tool_use"), None)
        if block is None or not isinstance(getattr(block, "input", None), dict):
            raise Malformed("the message has no tool_use block")
        text = json.dumps(block.input)
        # The prefill was not sent (tool input cannot be prefilled), but callers read
        # prefill + text; when the JSON starts with the prefill, keep that sum the JSON itself.
        if r.prefill and text.startswith(r.prefill):
            text = text[len(r.prefill):]
    else:
        parts = [b.text for b in content
                 if getattr(b, "type", None) == "text" and isinstance(getattr(b, "text", None), str)]
        if not parts:
            raise Malformed("the message has no text block")
        text = "".join(parts)
        tail = r.prefill[len(r.prefill.rstrip()):]  # stripped before sending (see _kwargs)
        if tail and text.startswith(tail):
            text = text[len(tail):]
    usage = getattr(resp, "usage", None)
    finish = "length" if getattr(resp, "stop_reason", None) == "max_tokens" else "stop"
    return (text, finish, getattr(usage, "input_tokens", 0) or 0,
            getattr(usage, "output_tokens", 0) or 0)


class AnthropicBackend:
    """Claude through the Messages API (one client per base URL; replicas share the load)."""

    name = "anthropic"

    def __init__(self, model: str, opts: RemoteOptions, meter, http_client=None):
        """``http_client``: an ``httpx`` AsyncClient for the SDK (tests pass a mock transport)."""
        sdk = require("anthropic", "anthropic")
        if not opts.api_key_env:  # the SDK's own variable, read through the same checks
            opts = dataclasses.replace(opts, api_key_env=DEFAULT_KEY_ENV)
        key = opts.api_key()  # held only by the SDK clients below, never on self
        self.model, self.opts, self.meter = model, opts, meter
        self._sdk = sdk
        # The SDK appends /v1/messages itself; the config's URLs may end in /v1 (as for openai).
        urls = tuple(u.rstrip("/").removesuffix("/v1") for u in opts.base_urls) or (None,)
        # The SDK's own retries handle 429 (honouring Retry-After), 5xx, timeouts and dropped
        # connections, with exponential backoff and jitter.
        self.clients = [sdk.AsyncAnthropic(api_key=key, base_url=u, timeout=opts.timeout,
                                           max_retries=opts.max_retries, http_client=http_client)
                        for u in urls]
        self._next = itertools.cycle(range(len(self.clients)))
        self.runner = Runner(opts)
        self.sampling = 0  # index into SAMPLING_LEVELS

    # ------------------------------------------------------------------ plumbing
    async def _create(self, **kwargs):
        client = self.clients[next(self._next)]
        return await metered(client.messages.create(model=self.model, **kwargs), self.meter, self.model,
                             (json.JSONDecodeError, self._sdk.APIResponseValidationError),
                             "input_tokens", "output_tokens")

    def _kwargs(self, r: GenRequest, level: int) -> dict:
        p = r.params
        system = "\n\n".join(c for role, c in r.messages if role == "system")
        messages = [{"role": role, "content": c} for role, c in r.messages if role != "system"]
        kw: dict = {"messages": messages, "max_tokens": p.max_new_tokens}
        if system:
            kw["system"] = system
        if r.json_schema:
            kw["tools"] = [{"name": TOOL_NAME, "description": "Record the answer in the required form.",
                            "input_schema": json.loads(r.json_schema)}]
            kw["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        elif r.prefill:
            # The API refuses a final assistant turn that ends in whitespace.
            messages.append({"role": "assistant", "content": r.prefill.rstrip()})
        # No seed: the API has none. top_p only where it changes anything (sampling, below 1).
        sampling = {"temperature": p.temperature}
        if p.temperature > 0 and p.top_p < 1.0:
            sampling["top_p"] = p.top_p
        sent = {k: v for k, v in sampling.items() if k in SAMPLING_LEVELS[level]}
        if sent:
            kw["extra_body"] = sent
        return kw

    # ------------------------------------------------------------------ generate
    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in order; failures become Completions with ``error``."""

        async def attempt(r: GenRequest):
            while True:
                level = self.sampling
                try:
                    return _answer(await self._create(**self._kwargs(r, level)), r)
                except self._sdk.BadRequestError as e:
                    named = any(k in str(e) for k in SAMPLING_LEVELS[level])
                    if not named or level + 1 == len(SAMPLING_LEVELS):
                        raise
                    self.sampling = max(self.sampling, level + 1)

        results = self.runner.map(attempt, list(requests),
                                  lambda r: estimate_tokens(r.messages, r.params.max_new_tokens),
                                  errors=(self._sdk.APIError,))
        return completions(results)

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float] | Failure]:
        """Refused: the Messages API returns no token log-probabilities."""
        raise ConfigError(f"Claude ('{self.model}') does not return token log-probabilities, so it "
                          f"cannot score continuations",
                          hint="use judge.mode=structured with an Anthropic teacher")

    # ------------------------------------------------------------------ description
    def capabilities(self) -> dict:
        """Fixed by the API, so known without asking the server."""
        return dict(CAPABILITIES)

    def set_capabilities(self, caps: dict) -> None:
        """Accepted for the cache's sake; nothing is detected, so there is nothing to restore."""

    def identity(self) -> dict:
        """The API's URL(s) and the model id: the Messages API lists nothing more to tell models apart."""
        return {"backend": self.name, "model": self.model, "base_urls": sorted(self.describe_server())}

    def describe_server(self) -> list[str]:
        """The URLs the clients really use (the SDK also honours ANTHROPIC_BASE_URL)."""
        return [str(c.base_url).rstrip("/") for c in self.clients]

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "base_urls": self.describe_server(),
                "capabilities": self.capabilities(),
                "sampling_params": list(SAMPLING_LEVELS[self.sampling])}

    def close(self) -> None:
        async def close_clients():  # on the runner's loop, which their connections belong to
            await asyncio.gather(*(c.close() for c in self.clients))

        if not self.runner.loop.is_closed():
            self.runner.run(close_clients())
        self.runner.close()

"""What the network backends share: an event loop, a concurrency cap, rate limits, and retries
for answers that arrived but cannot be used (non-JSON or truncated bodies).

HTTP-level retries (429 with Retry-After, 5xx, timeouts, dropped connections) are left to the
official SDKs, which back off exponentially with jitter and honour Retry-After; this module only
adds a bounded retry for responses the SDK accepted but that are malformed.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence, TypeVar

from rlaif.errors import ConfigError, MissingDependency

T = TypeVar("T")


class Malformed(Exception):
    """The server answered, but not with something usable; worth asking again."""


@dataclass(frozen=True)
class RemoteOptions:
    """Client settings shared by the OpenAI-compatible and Anthropic backends."""

    base_urls: tuple[str, ...] = ()
    api_key_env: str | None = None
    max_concurrency: int = 8
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    timeout: float = 60.0
    max_retries: int = 4

    def api_key(self, default: str | None = None) -> str | None:
        """The key, read from the environment at call time and never stored elsewhere."""
        if not self.api_key_env:
            return default
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"environment variable {self.api_key_env} is not set",
                              hint=f"export {self.api_key_env}=... (the config names the variable, "
                                   f"never the key)")
        return key


def require(module: str, extra: str):
    """Import an optional SDK, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(module, f"pip install 'rlaif[{extra}]'", f"the {extra} backend") from None


class Runner:
    """Runs many requests concurrently from synchronous code, within the configured limits."""

    def __init__(self, opts: RemoteOptions):
        self.opts = opts
        self.loop = asyncio.new_event_loop()
        self._limits: tuple | None = None

    def _limiters(self):
        if self._limits is None:  # created inside the loop they belong to
            o = self.opts
            rpm = tpm = None
            if o.requests_per_minute or o.tokens_per_minute:
                from aiolimiter import AsyncLimiter

                rpm = AsyncLimiter(o.requests_per_minute, 60) if o.requests_per_minute else None
                tpm = AsyncLimiter(o.tokens_per_minute, 60) if o.tokens_per_minute else None
            self._limits = (asyncio.Semaphore(o.max_concurrency), rpm, tpm)
        return self._limits

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def map(self, fn: Callable[[object], Awaitable[T]], items: Sequence, tokens: Callable[[object], int],
            errors: tuple[type[BaseException], ...] = ()) -> list[T | BaseException]:
        """``fn`` over ``items`` concurrently; results in input order. A request that still fails
        after its retries with Malformed or one of ``errors`` comes back as that exception, so one
        bad row never stops the others."""

        async def one(item):
            sem, rpm, tpm = self._limiters()
            async with sem:
                if rpm:
                    await rpm.acquire()
                if tpm:
                    await tpm.acquire(min(tokens(item), self.opts.tokens_per_minute))
                try:
                    return await self.with_retries(lambda: fn(item))
                except (Malformed, *errors) as e:
                    return e

        async def all_of():
            return await asyncio.gather(*(one(it) for it in items))

        return self.run(all_of())

    async def with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry Malformed answers with exponential backoff and jitter; other errors pass through."""
        for attempt in range(self.opts.max_retries + 1):
            try:
                return await call()
            except Malformed:
                if attempt == self.opts.max_retries:
                    raise
                await asyncio.sleep(min(0.25 * 2 ** attempt, 8.0) * (0.75 + 0.25 * random.random()))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.close()


async def metered(call: Awaitable[T], meter, model: str, unreadable: tuple[type[BaseException], ...],
                  tokens_in: str, tokens_out: str) -> T:
    """Await one SDK call and record it in the meter (with its usage fields, which the SDKs
    name differently); a body the SDK could not read becomes Malformed, so it is retried."""
    try:
        resp = await call
    except unreadable as e:
        meter.add(model)
        raise Malformed(f"unreadable response body: {e}") from None
    usage = getattr(resp, "usage", None)
    meter.add(model, getattr(usage, tokens_in, 0) or 0, getattr(usage, tokens_out, 0) or 0)
    return resp


def describe_error(e: BaseException) -> str:
    """One line for a failed request: the error type, the HTTP status if any, the first line."""
    status = getattr(e, "status_code", None)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    return f"{type(e).__name__}{f' {status}' if status else ''}: {first}"


def completions(results: Sequence) -> list:
    """Runner.map results of (text, finish_reason, prompt_tokens, completion_tokens) as
    Completions; a request that failed for good becomes one with ``error`` set."""
    from rlaif.backends.base import Completion

    return [Completion("", "error", error=describe_error(r)) if isinstance(r, BaseException)
            else Completion(*r) for r in results]


def estimate_tokens(messages: Sequence[tuple[str, str]], max_new_tokens: int) -> int:
    """A rough upper estimate for the tokens-per-minute limiter (about 4 characters a token)."""
    return sum(len(c) for _, c in messages) // 4 + max_new_tokens + 8

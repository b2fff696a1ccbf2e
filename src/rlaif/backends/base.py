"""The one interface every backend implements: ``generate`` and ``score``, plus what describes
and identifies the model.

Everything else (batching, retries, caching) is the backend's own business or a wrapper's;
stages only ever call these methods.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings. temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = 0  # None: unseeded (not cached at temperature > 0 unless asked)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenRequest:
    """Continue a chat. ``prefill`` is text the assistant turn is forced to start with."""

    messages: tuple[tuple[str, str], ...]  # ((role, content), ...), hashable
    params: SamplingParams = field(default_factory=SamplingParams)
    prefill: str = ""
    # A JSON schema (as JSON text) the answer must follow. Servers with a JSON-schema or JSON mode
    # enforce it; other backends rely on the prompt and the prefill, and the caller validates.
    json_schema: str = ""

    @classmethod
    def of(cls, messages: list[dict], params: SamplingParams, prefill: str = "",
           json_schema: str = "") -> "GenRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), params, prefill, json_schema)

    def chat(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass(frozen=True)
class ScoreRequest:
    """Log-probabilities of each continuation after the chat (plus an assistant prefill)."""

    messages: tuple[tuple[str, str], ...]
    continuations: tuple[str, ...]
    prefill: str = ""

    @classmethod
    def of(cls, messages: list[dict], continuations: Sequence[str], prefill: str = "") -> "ScoreRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), tuple(continuations), prefill)

    def chat(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass
class Completion:
    """One answer. ``text`` continues the request's prefill when the backend honours prefills
    (``capabilities()["prefill"]``); otherwise it is the whole answer."""

    text: str
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # set (with finish_reason "error") when the request failed for good
    cached: bool = False
    # The generated token ids, end-of-sequence included when generation stopped on it (backends that
    # see the ids only: local). What eval's KL scores, since decoded text may tokenise differently.
    token_ids: list[int] | None = None


@dataclass
class Failure:
    """A request that failed for good (after the backend's retries); the reason is kept."""

    error: str


@runtime_checkable
class Backend(Protocol):
    """A model that can write and score text."""

    name: str  # backend kind, e.g. "local"
    model: str  # what the user named, e.g. "embedded" or a path

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in order. Requests given together may be batched."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float] | Failure]:
        """For each request, the summed log-probability of each continuation, in order (or a
        Failure for a request that could not be served)."""
        ...

    def describe(self) -> dict:
        """What describes the model (for manifests): ids, paths, devices, capabilities."""
        ...

    def identity(self) -> dict:
        """What its answers depend on, JSON-serialisable (see identity.py): a local model's folder
        fingerprint and dtype, a server's base URL(s) and the model it reports serving. Row ids
        and the response cache hash it, so it must not change while the model does not."""
        ...

    def capabilities(self) -> dict:
        """What the backend honours: ``prefill`` (bool), ``logprobs`` (bool) and ``structured``
        (how a json_schema is enforced: json_schema, json_object_schema, json_object, tool or
        prompt)."""
        ...

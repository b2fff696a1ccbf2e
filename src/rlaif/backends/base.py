"""The one interface every backend implements: ``generate`` and ``score``.

Everything else (batching, retries, caching) is the backend's own business or a wrapper's;
stages only ever call these two methods.
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
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenRequest:
    """Continue a chat. ``prefill`` is text the assistant turn is forced to start with."""

    messages: tuple[tuple[str, str], ...]  # ((role, content), ...), hashable
    params: SamplingParams = field(default_factory=SamplingParams)
    prefill: str = ""

    @classmethod
    def of(cls, messages: list[dict], params: SamplingParams, prefill: str = "") -> "GenRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), params, prefill)

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
    text: str
    finish_reason: str = "stop"  # "stop" | "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class Backend(Protocol):
    """A model that can write and score text."""

    name: str  # backend kind, e.g. "local"
    model: str  # what the user named, e.g. "embedded" or a path

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in order. Requests given together may be batched."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """For each request, the summed log-probability of each continuation, in order."""
        ...

    def describe(self) -> dict:
        """What identifies the model (for manifests): ids, paths, fingerprints."""
        ...

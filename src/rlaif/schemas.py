"""Row contracts shared by every stage (pydantic v2, unknown fields rejected).

Every row has a stable ``id``: a content hash of what defines it, so that re-runs are
idempotent and resuming is "skip the ids already written".
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def normalise_space(text: str) -> str:
    """Runs of whitespace made one space, ends stripped; case and punctuation are kept."""
    return " ".join(text.split())


def content_id(*parts: Any, prefix: str = "") -> str:
    """A short stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return prefix + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(Row):
    role: Literal["system", "user", "assistant"]
    content: str


class Prompt(Row):
    """One user prompt, normalised to a chat message list."""

    id: str
    messages: list[Message] = Field(min_length=1)
    category: str = "helpful"
    source: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, v: list[Message]) -> list[Message]:
        if v[-1].role != "user":
            raise ValueError("the last message must have role 'user'")
        return v

    @staticmethod
    def make_id(messages: list[dict]) -> str:
        """The content hash of the conversation: each message's role and text, whitespace
        normalised, case and punctuation kept (``rm -rf /`` and ``rm -rf ./`` are two prompts).

        The category is left out on purpose: the id keys the prompt's candidates, which do not
        depend on it (no model sees it); the build reads the category from prompts.jsonl, so
        re-labelling a prompt moves it in the mix without regenerating its answers. A judgment
        that depends on it (contrast mode with a preferred persona per category) carries the
        persona it preferred in its own id. A user's own id is kept in ``meta["user_id"]``, never used as the id."""
        norm = [(m["role"], normalise_space(m["content"])) for m in messages]
        return content_id(norm, prefix="p-")

    def chat(self) -> list[dict]:
        return [m.model_dump() for m in self.messages]


class Generator(Row):
    """Who wrote a candidate, with everything needed to reproduce it."""

    backend: str
    model: str
    # What the answer depended on (backends/identity.py): weights fingerprint and dtype, or server
    # URL(s) and served model. Empty in rows written before it was recorded.
    identity: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    persona: str | None = None


class Candidate(Row):
    id: str
    prompt_id: str
    text: str
    generator: Generator
    finish_reason: str = "stop"  # "stop" or "length" (truncated at max_new_tokens)
    usage: dict[str, int] = Field(default_factory=dict)


Verdict = Literal["A", "B", "tie", "invalid"]


class OrderResult(Row):
    """The judge's answer for one presentation order."""

    order: Literal["ab", "ba"]  # "ab": candidate a shown first as A
    preferred: Literal["A", "B"] | None = None  # as shown to the judge
    p_first: float | None = None  # probability the judge gave to the first-shown answer
    reason: str = ""
    raw: str = ""
    attempts: int = 0
    error: str | None = None


class JudgeInfo(Row):
    backend: str
    model: str
    mode: Literal["structured", "logprob", "contrast"]
    constitution: str  # name@hash (empty in contrast mode, which reads no constitution)
    identity: dict[str, Any] = Field(default_factory=dict)  # the judge's, as Generator.identity


class Judgment(Row):
    id: str
    prompt_id: str
    a_id: str
    b_id: str
    verdict: Verdict  # in terms of a (A) and b (B), whatever the order shown
    p_a: float | None = None  # soft label: probability that a is better
    consistent: bool | None = None  # both orders named the same candidate
    orders: list[OrderResult]
    reason: str = ""
    principle: str = ""
    flags: list[str] = Field(default_factory=list)
    judge: JudgeInfo
    raw: str = ""
    error: str | None = None


class FailedRow(Row):
    """A row a stage could not produce this time (the server failed after every retry). Kept in
    failures.jsonl with the reason; it is not in the stage's output, so a re-run tries it again."""

    id: str
    stage: str
    error: str
    at: str = ""  # UTC time of the failure


class PreferencePair(Row):
    """A DPO row in TRL's conversational preference format."""

    prompt: list[Message]
    chosen: list[Message] = Field(min_length=1, max_length=1)
    rejected: list[Message] = Field(min_length=1, max_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)


class EvalResponse(Row):
    """One model's answer to one evaluation probe (``role``: model, ref, or sample: the model's
    temperature-1 answer used to estimate KL)."""

    id: str
    probe_id: str
    suite: str
    role: Literal["model", "ref", "sample"]
    text: str
    finish_reason: str = "stop"
    tokens: int = 0
    # role sample: the generated token ids (end-of-sequence included when generation stopped on it),
    # which KL scores as they are; decoded text can tokenise back to other ids
    token_ids: list[int] | None = None


class SafeGrade(Row):
    """The judge's pointwise grade of one secure-coding answer against the probe's safe practice."""

    id: str
    probe_id: str
    response_id: str
    follows: bool | None = None  # None: the judge gave no usable answer (see error)
    p_yes: float | None = None
    reason: str = ""
    raw: str = ""
    error: str | None = None
    judge: JudgeInfo

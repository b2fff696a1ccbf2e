"""What a training run trained on, kept in its manifest so that evaluation can prove that its
held-out rows are held out.

The record is a short content hash of every distinct prompt the run trained on (16 hex digits,
about 20 bytes a prompt in ``manifest.json``). A prompt is hashed as the conversation before the
answer, case and spacing normalised, so a copied, renamed or re-spaced file cannot pass rows the
model trained on off as held-out ones. Prompts rather than whole rows: the split `rlaif build`
makes puts no prompt on both sides, so a held-out pair whose prompt was trained on is a leak.

The rows are read as TRL reads them: standard (strings) or conversational (message lists), with
an explicit ``prompt`` or one implicit in ``chosen`` and ``rejected`` (TRL's ``extract_prompt``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rlaif.errors import InputError
from rlaif.schemas import content_id

# Bump when the hash changes: evaluation then recomputes an old record instead of misreading it.
METHOD = "prompt-sha256-16/v1"


class BadPair(ValueError):
    """A row that is not a preference pair; ``field`` names what is wrong (None: the row)."""

    def __init__(self, field: str | None, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


def _message_list(value: Any, name: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise BadPair(name, "must be a string or a non-empty list of {role, content} messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise BadPair(f"{name}[{i}]", "must be a message with string 'role' and 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _is_chat(value: Any) -> bool:
    return isinstance(value, list)


def _answer(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    msgs = _message_list(value, name)
    if msgs[-1]["role"] != "assistant":
        raise BadPair(f"{name}[{len(msgs) - 1}].role", "the answer must be an 'assistant' message")
    return msgs[-1]["content"]


def pair_parts(row: Any) -> tuple[list[dict], str, str]:
    """(prompt as chat messages, chosen answer, rejected answer) of one preference row; raises
    BadPair naming the field. A standard-format prompt (a string) becomes one user turn."""
    if not isinstance(row, dict):
        raise BadPair(None, "each row must be an object with prompt, chosen and rejected")
    for side in ("chosen", "rejected"):
        if row.get(side) is None:
            raise BadPair(side, "missing")
        if not isinstance(row[side], str):
            _message_list(row[side], side)
    if _is_chat(row["chosen"]) != _is_chat(row["rejected"]):
        raise BadPair("rejected", "must have the same format as 'chosen' (both strings or both message lists)")
    prompt = row.get("prompt")
    if prompt is None or _is_chat(prompt) != _is_chat(row["chosen"]):
        # no prompt column, or one of another format: TRL takes the common start of both answers
        from trl.data_utils import extract_prompt

        if row["chosen"] and row["rejected"]:  # extract_prompt fails on an empty side
            row = extract_prompt({"chosen": row["chosen"], "rejected": row["rejected"]})
        prompt = row.get("prompt")
        if not prompt:
            raise BadPair("prompt", "missing, and 'chosen' and 'rejected' share no start to take it from")
    if isinstance(prompt, str):
        if not prompt.strip():
            raise BadPair("prompt", "must be a non-empty string or list of messages")
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = _message_list(prompt, "prompt")
    return messages, _answer(row["chosen"], "chosen"), _answer(row["rejected"], "rejected")


def prompt_key(messages: list[dict]) -> str:
    """The content hash of a prompt, blind to case and spacing."""
    return content_id([(m["role"], " ".join(m["content"].split()).lower()) for m in messages])


def parse_pair(where: str, line: int, row: Any) -> tuple[list[dict], str, str]:
    """pair_parts, with a bad row an InputError naming ``where``, the line (or row) and the field."""
    try:
        return pair_parts(row)
    except BadPair as e:
        raise InputError.at(where, line, e.field, e.problem) from None


def trained_on(rows: Iterable[Any], where: str) -> dict:
    """The manifest's record of the prompts a run trained on (rows as TRL reads them; ``where``
    names them in an error)."""
    keys: set[str] = set()
    count = 0
    for count, row in enumerate(rows, 1):
        keys.add(prompt_key(parse_pair(where, count, row)[0]))
    return {"method": METHOD, "rows": count, "prompts": sorted(keys)}

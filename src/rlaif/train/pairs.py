"""Preference data a person gives ``rlaif train`` (and ``rlaif eval --dataset``), checked row by row
before any model loads: TRL's standard format (``prompt``, ``chosen``, ``rejected`` as strings) or its
conversational one (lists of ``{role, content}`` messages; ``prompt`` may be left out when chosen and
rejected hold the whole conversation). A bad row is one InputError naming the file, line and field;
so is a field of more than 100,000 characters (config.DEFAULT_MAX_PROMPT_CHARS): training would cut it
to train.max_length tokens and evaluation would score it whole, so it is a mistake either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from rlaif.config import DEFAULT_MAX_PROMPT_CHARS
from rlaif.errors import InputError
from rlaif.io import json_lines

COLUMNS = ("prompt", "chosen", "rejected")  # what DPOTrainer reads; other columns are not kept
ROLES = {"system", "user", "assistant"}


def _kind(where: tuple, field: str, value: Any) -> str:
    """'text' or 'messages', or an InputError saying what the value should be."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, list) and value:
        for i, m in enumerate(value):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise InputError.at(*where, f"{field}[{i}]", "must be a message {role: system|user|assistant, "
                                                               "content: a string}")
        return "messages"
    raise InputError.at(*where, field, "must be a string or a non-empty list of {role, content} messages")


def _chars(value: str | list[dict]) -> int:
    return len(value) if isinstance(value, str) else sum(len(m["content"]) for m in value)


def check_pair(path: Path | str, line: int, row: dict, need_prompt: bool = False,
               max_chars: int | None = None) -> dict:
    """The row's prompt/chosen/rejected, checked: one format throughout, text where text belongs,
    and (``max_chars``) no field longer than that."""
    where = (path, line)
    for field in ("chosen", "rejected") + (("prompt",) if need_prompt else ()):
        if row.get(field) is None:
            raise InputError.at(*where, field, "missing: a preference pair needs prompt, chosen and rejected"
                                if need_prompt else "missing: a preference pair needs chosen and rejected")
    kinds = {field: _kind(where, field, row[field]) for field in COLUMNS if row.get(field) is not None}
    if len(set(kinds.values())) > 1:
        found = ", ".join(f"{f} is {k}" for f, k in kinds.items())
        raise InputError.at(*where, None, f"mixes TRL's formats ({found}): use strings throughout, or "
                                          "message lists throughout")
    for field in kinds:
        if max_chars is not None and (n := _chars(row[field])) > max_chars:
            raise InputError.at(*where, field, f"{n:,} characters, over the limit of {max_chars:,}")
    return {field: row[field] for field in kinds}


def read_pairs(rows: Iterable[tuple[int, dict]], path: Path | str, need_prompt: bool = False,
               max_chars: int | None = DEFAULT_MAX_PROMPT_CHARS) -> list[dict]:
    """Checked rows; every row must have the columns the first one has, so the table is regular."""
    out: list[dict] = []
    for line, row in rows:
        pair = check_pair(path, line, row, need_prompt, max_chars)
        if out and set(pair) != set(out[0]):
            missing = sorted(set(out[0]) ^ set(pair))
            raise InputError.at(path, line, missing[0], "present in some rows and not in others")
        out.append(pair)
    if not out:
        raise InputError(f"{path}: no preference pairs in it")
    return out


def jsonl_pairs(path: Path, need_prompt: bool = False, max_chars: int | None = DEFAULT_MAX_PROMPT_CHARS
                ) -> list[dict]:
    return read_pairs(json_lines(path, "preference file"), path, need_prompt, max_chars)


def dataset_rows(ds) -> Iterator[tuple[int, dict]]:
    """Rows of a datasets.Dataset numbered from 1, as the errors name them."""
    for i, row in enumerate(ds, 1):
        yield i, row

"""Prompt input: JSONL, CSV or a ``datasets.save_to_disk`` folder, normalised to Prompt rows.

Each row has ``prompt`` (a string) or ``messages`` (a chat list ending with a user turn), and
optionally ``id``, ``category`` and ``meta``; other columns are kept in ``meta``. Bad rows are
reported with file, line and field. A prompt's id is the hash of its content
(``Prompt.make_id``); a user's ``id`` is kept as ``meta["user_id"]``, and one user id on two
different prompts is an error. Exact duplicates (the same messages once whitespace is
normalised; case and punctuation count) are collapsed and counted; near duplicates are the
build's business (``build.near_duplicate``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from rlaif.errors import InputError, first_line, shown
from rlaif.io import MAX_LINE_BYTES, json_lines, text_lines
from rlaif.schemas import Prompt

KNOWN = {"id", "prompt", "messages", "category", "meta"}
ROLES = {"system", "user", "assistant"}
SUITE_PREFIX = "suite:"


@dataclass
class PromptStats:
    read: int = 0
    duplicates: int = 0
    kept: int = 0
    extra_fields: list[str] = field(default_factory=list)
    per_category: dict[str, int] = field(default_factory=dict)


def resolve_source(spec: str) -> Path:
    """``suite:NAME`` names a shipped suite; anything else is a path."""
    if spec.startswith(SUITE_PREFIX):
        name = spec[len(SUITE_PREFIX):]
        path = Path(str(resources.files("rlaif.synth") / "prompt_suites" / f"{name}.jsonl"))
        if not path.exists():
            shipped = sorted(p.stem for p in path.parent.glob("*.jsonl"))
            raise InputError(f"no shipped suite '{name}'", hint=f"shipped suites: {', '.join(shipped)}")
        return path
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"{path}: prompt file not found")
    return path


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    if path.is_dir():
        yield from _dataset_rows(path)
    elif path.suffix.lower() == ".csv":
        yield from _csv_rows(path)
    else:
        yield from json_lines(path, "prompts file")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict]]:
    # decoded by io.text_lines (UTF-8, BOM dropped, bad bytes named by line); csv's own limit of
    # 128 KiB a cell is lifted so that an over-long prompt meets generate.too_long, not a csv error
    lines = (line for _, line in text_lines(path, "prompts file"))
    reader = csv.DictReader(lines)
    limit = csv.field_size_limit(MAX_LINE_BYTES)
    try:
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            raise InputError.at(path, 1, "prompt", "a CSV needs a 'prompt' column in its header")
        for row in reader:
            if None in row:  # DictReader files cells beyond the header under None
                raise InputError.at(path, reader.line_num, None, f"{len(reader.fieldnames) + len(row[None])} "
                                    f"cells, but the header has {len(reader.fieldnames)} columns")
            yield reader.line_num, {k: v for k, v in row.items() if v is not None}
    except csv.Error as e:
        raise InputError.at(path, reader.line_num, None, f"not valid CSV ({e})") from None
    finally:
        csv.field_size_limit(limit)


def _dataset_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError, TypeError) as e:  # what datasets raises for a folder it cannot read
        raise InputError(f"{path}: not a folder written by datasets.save_to_disk ({first_line(e)})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise InputError(f"{path}: a DatasetDict needs a 'train' split (has {list(ds)})")
        ds = ds["train"]
    for i, row in enumerate(ds, 1):
        yield i, row


def _messages(path: Path, line: int, row: dict) -> list[dict]:
    if "messages" in row and row["messages"] not in (None, ""):
        msgs = row["messages"]
        if isinstance(msgs, str):  # a CSV cell holding JSON
            try:
                msgs = json.loads(msgs)
            except (ValueError, RecursionError):
                raise InputError.at(path, line, "messages", "must be a list of {role, content}") from None
        if not isinstance(msgs, list) or not msgs:
            raise InputError.at(path, line, "messages", "must be a non-empty list of {role, content}")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                raise InputError.at(path, line, f"messages[{i}]", "must be an object with role and content")
            if not isinstance(m.get("role"), str) or m["role"] not in ROLES:
                raise InputError.at(path, line, f"messages[{i}].role",
                                    f"must be one of {', '.join(sorted(ROLES))} (got {shown(m.get('role'))})")
            if not isinstance(m.get("content"), str) or not m["content"].strip():
                raise InputError.at(path, line, f"messages[{i}].content", "must be a non-empty string")
        if msgs[-1]["role"] != "user":
            raise InputError.at(path, line, "messages", "the last message must have role 'user'")
        return [{"role": m["role"], "content": m["content"]} for m in msgs]
    text = row.get("prompt")
    if text is None:
        raise InputError.at(path, line, "prompt", "each row needs 'prompt' (a string) or 'messages'")
    if not isinstance(text, str) or not text.strip():
        raise InputError.at(path, line, "prompt", "must be a non-empty string")
    return [{"role": "user", "content": text}]


def _prompt(path: Path, line: int, row: Any, stats: PromptStats) -> Prompt:
    if not isinstance(row, dict):
        raise InputError.at(path, line, None, "each row must be a JSON object")
    messages = _messages(path, line, row)
    category = row.get("category") or "helpful"
    if not isinstance(category, str):
        raise InputError.at(path, line, "category", "must be a string")
    meta = row.get("meta") or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except (ValueError, RecursionError):  # plain text, kept as it is
            meta = {"meta": meta}
    if not isinstance(meta, dict):
        raise InputError.at(path, line, "meta", "must be an object")
    extra = {k: v for k, v in row.items() if k not in KNOWN}
    for k in extra:
        if k not in stats.extra_fields:
            stats.extra_fields.append(k)
    meta = _jsonable(path, line, {**extra, **meta})
    user_id = _user_id(path, line, row.get("id"))
    if user_id is not None:
        if meta.get("user_id") not in (None, user_id):
            raise InputError.at(path, line, "meta.user_id", f"differs from the row's id {user_id!r}")
        meta["user_id"] = user_id
    return Prompt(id=Prompt.make_id(messages), messages=messages, category=category.strip().lower(),
                  source=f"{path.name}:{line}", meta=meta)


def _jsonable(path: Path, line: int, meta: dict) -> dict:
    """Metadata as JSON values (a datasets folder may hold dates or images), so that prompts.jsonl
    can always be written."""
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    for key, value in meta.items():
        try:
            meta[key] = to_jsonable_python(value)
        except (PydanticSerializationError, ValueError, TypeError):
            raise InputError.at(path, line, str(key), f"a {type(value).__name__}, which cannot be kept as "
                                                      "JSON metadata") from None
    return meta


def _user_id(path: Path, line: int, rid: Any) -> str | None:
    """A user's own id, kept as metadata: the prompt's id is its content hash, so editing a
    prompt's text under the same user id can never reuse the old text's answers."""
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        return None
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise InputError.at(path, line, "id", f"must be a string or an integer (got {type(rid).__name__})")
    return str(rid)


def load_prompts(spec: str, limit: int | None = None) -> tuple[list[Prompt], PromptStats]:
    """Read, validate and de-duplicate prompts; ``limit`` keeps the first N distinct ones."""
    path = resolve_source(spec)
    stats = PromptStats()
    first: dict[str, tuple[Prompt, int]] = {}  # content id -> the first prompt with it, its line
    user_ids: dict[str, tuple[str, int]] = {}  # user id -> the content id it names, its line
    out: list[Prompt] = []
    for line, row in _rows(path):
        p = _prompt(path, line, row, stats)
        stats.read += 1
        uid = p.meta.get("user_id")
        if uid is not None:
            named, where = user_ids.setdefault(uid, (p.id, line))
            if named != p.id:
                raise InputError.at(path, line, "id", f"id {uid!r} was already used on line {where} "
                                                      "for a different prompt")
        if p.id in first:
            earlier, where = first[p.id]
            if earlier.category != p.category:
                raise InputError.at(path, line, "category", f"the same prompt as line {where} with another "
                                                            f"category ({p.category!r}, not {earlier.category!r})")
            stats.duplicates += 1
            continue
        first[p.id] = (p, line)
        if limit is None or len(out) < limit:
            out.append(p)
    if not out:
        raise InputError(f"{path}: no prompts found")
    stats.kept = len(out)
    for p in out:
        stats.per_category[p.category] = stats.per_category.get(p.category, 0) + 1
    return out, stats

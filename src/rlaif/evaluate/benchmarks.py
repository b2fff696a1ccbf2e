"""Published benchmarks as probe suites, read through a column mapping (config.BenchmarkSuite).

A benchmark is a table: a CSV, parquet or JSONL file, a ``datasets`` folder (``save_to_disk``,
a Dataset or a DatasetDict and its ``split``) or a hub dataset (``datasets.load_dataset``). Its
mapping names the prompt column (or a messages column), an optional id column (else the
prompt's content hash) and which rows are ``harmful`` and which ``borderline``; each kind becomes
its own suite (``NAME_harmful``, ``NAME_borderline``, or ``NAME`` with one kind), scored, metered
and gated exactly as a JSONL suite of that category. For XSTest, whose unsafe prompts have a
``type`` starting ``contrast_``: ``kinds: {harmful: {column: type, prefix: contrast_},
borderline: rest}``.

Bad data is refused with the file (or dataset), the row and the column: a missing column names
the columns there are, an empty prompt its row; the same id on two different prompts, or one
prompt in both kinds, is an error. Exact duplicate prompts (whitespace aside) are kept once and
reported in the suite's notes, as are rows no kind takes.

A hub dataset is loaded only where the hub can be reached, or from the local cache under
``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``; otherwise a one-line error says so and how to pass a
local file, at once: the hub client's retries are never waited out.
"""

from __future__ import annotations

import csv
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rlaif.config import BenchmarkSuite, RowRule
from rlaif.errors import InputError, first_line, shown
from rlaif.io import MAX_LINE_BYTES, json_lines, text_lines
from rlaif.schemas import Prompt, content_id

FILE_LAYOUTS = (".csv", ".parquet", ".jsonl")
ROLES = {"system", "user", "assistant"}
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}
LOCAL_HINT = ("where you have a network, save it with datasets.load_dataset({id!r}).save_to_disk(DIR) (or "
              "download its CSV/parquet file) and give that path as the source")
REACH_TIMEOUT_S = 3.0


@dataclass
class Table:
    where: str  # the file, folder or hub id, as errors name it
    columns: list[str]
    rows: list[tuple[str, dict]]  # (where the row is: "FILE:LINE" or "FILE: row N", its cells)


@dataclass
class Part:
    """One kind's rows of a benchmark, on their way to a suite (suites.py makes it one)."""
    name: str
    kind: str
    source: str
    probes: list[Prompt]
    notes: list[str]


# ----------------------------------------------------------------------------- reading a table
def is_local(entry: BenchmarkSuite) -> bool:
    """A source is a local file or folder when it exists, or names one (a table's suffix or a path
    that starts like one); anything else is a hub dataset id."""
    src = entry.source
    return (Path(src).expanduser().exists() or Path(src).suffix.lower() in FILE_LAYOUTS
            or src.startswith(("/", "./", "../", "~")))


def read_table(entry: BenchmarkSuite) -> Table:
    if not is_local(entry):
        return _hub(entry)
    path = Path(entry.source).expanduser()
    if not path.exists():
        raise InputError(f"{path}: benchmark file not found")
    if path.is_dir():
        return _disk(path, entry.split)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv(path)
    if suffix == ".parquet":
        return _parquet(path)
    if suffix == ".jsonl":
        return _jsonl(path)
    raise InputError(f"{path}: not a benchmark layout rlaif reads", hint="give a .csv, .parquet or .jsonl file, "
                                                                         "or a datasets folder (save_to_disk)")


def _csv(path: Path) -> Table:
    # decoded by io.text_lines (UTF-8, BOM dropped, bad bytes named by line); csv's cell limit is
    # lifted so that an over-long prompt meets the probe length check, not a csv error
    reader = csv.DictReader(line for _, line in text_lines(path, "benchmark file"))
    limit = csv.field_size_limit(MAX_LINE_BYTES)
    rows = []
    try:
        columns = list(reader.fieldnames or [])
        for row in reader:
            if None in row:  # DictReader files cells beyond the header under None
                raise InputError.at(path, reader.line_num, None, f"{len(columns) + len(row[None])} cells, but "
                                                                 f"the header has {len(columns)} columns")
            rows.append((f"{path}:{reader.line_num}", row))
    except csv.Error as e:
        raise InputError.at(path, reader.line_num, None, f"not valid CSV ({e})") from None
    finally:
        csv.field_size_limit(limit)
    return Table(str(path), columns, rows)


def _jsonl(path: Path) -> Table:
    rows, columns = [], {}
    for line, row in json_lines(path, "benchmark file"):
        if not isinstance(row, dict):
            raise InputError.at(path, line, None, "each line must be a JSON object")
        columns.update(dict.fromkeys(row))
        rows.append((f"{path}:{line}", row))
    return Table(str(path), list(columns), rows)


def _parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"{path}: not a readable parquet file ({first_line(e)})") from None
    return Table(str(path), table.column_names,
                 [(f"{path}: row {i}", row) for i, row in enumerate(table.to_pylist(), 1)])


def _disk(path: Path, split: str | None) -> Table:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError, TypeError) as e:  # what datasets raises for a folder it cannot read
        raise InputError(f"{path}: not a folder written by datasets.save_to_disk ({first_line(e)})") from None
    return _dataset_table(str(path), ds, split)


def _dataset_table(where: str, ds, split: str | None) -> Table:
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if split is None and len(ds) != 1:
            raise InputError(f"{where}: a DatasetDict with splits {', '.join(ds)}: name one as 'split'")
        split = split or next(iter(ds))
        if split not in ds:
            raise InputError(f"{where}: no split '{split}' (splits: {', '.join(ds)})")
        ds, where = ds[split], f"{where} (split '{split}')"
    elif split is not None and getattr(ds, "split", None) not in (None, split):
        raise InputError(f"{where}: holds split '{ds.split}', not '{split}'")
    return Table(where, list(ds.column_names), [(f"{where}: row {i}", row) for i, row in enumerate(ds, 1)])


def hub_offline() -> bool:
    """Whether the hub client is told to stay offline (read at call time, as the CLI's user set it)."""
    import datasets.config
    import huggingface_hub.constants

    env = any(os.environ.get(k, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
              for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return env or bool(datasets.config.HF_HUB_OFFLINE) or bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def hub_reachable() -> bool:
    """One TCP connection to the hub's endpoint (HF_ENDPOINT honoured), a few seconds at most: the
    hub client would otherwise retry for half a minute before it says the network is down."""
    import huggingface_hub.constants

    url = urlparse(huggingface_hub.constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=REACH_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def _hub(entry: BenchmarkSuite) -> Table:
    name = f"hub dataset '{entry.source}'"
    also = f"; no local file or folder '{entry.source}' either"
    offline = hub_offline()
    if not offline and not hub_reachable():
        raise InputError(f"{name} could not be loaded offline: the hub cannot be reached from here{also}",
                         hint=LOCAL_HINT.format(id=entry.source))
    import datasets

    try:
        ds = datasets.load_dataset(entry.source, entry.subset, split=entry.split)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as e:
        why = ("HF_HUB_OFFLINE is set and it is not in the local cache" if offline else first_line(e))
        raise InputError(f"{name} could not be loaded{' offline' if offline else ''} ({why}){also}",
                         hint=LOCAL_HINT.format(id=entry.source)) from None
    where = f"hub:{entry.source}"
    if entry.split is not None and not isinstance(ds, datasets.DatasetDict):
        where += f" (split '{entry.split}')"
    return _dataset_table(where, ds, entry.split)


# ----------------------------------------------------------------------------- the mapping
def _column(table: Table, column: str, what: str) -> None:
    if column not in table.columns:
        raise InputError(f"{table.where}: no column '{column}' ({what}); its columns: "
                         f"{', '.join(map(str, table.columns)) or 'none'}")


def _flag(where: str, column: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise InputError(f"{where}: column '{column}': a boolean rule needs true or false (got {shown(value)})")


def _same(cell: Any, want: Any) -> bool:
    if isinstance(cell, str) != isinstance(want, str):  # a CSV's cells are text: 1 matches '1', true 'true'
        text, other = (cell, want) if isinstance(cell, str) else (want, cell)
        return other is not None and text.strip().lower() == str(other).lower()
    if isinstance(cell, bool) != isinstance(want, bool):  # True is not 1 here
        return False
    return cell == want


def matches(rule: RowRule, where: str, row: dict) -> bool:
    value = row.get(rule.column)
    if rule.prefix is not None:
        if value is None:
            return False
        if not isinstance(value, str):
            raise InputError(f"{where}: column '{rule.column}': a prefix rule needs text (got {shown(value)})")
        return value.startswith(rule.prefix)
    if rule.equals is not None:
        wanted = rule.equals if isinstance(rule.equals, list) else [rule.equals]
        return any(_same(value, w) for w in wanted)
    return _flag(where, rule.column, value)


def _kind_of(entry: BenchmarkSuite, where: str, row: dict) -> str | None:
    took = [k for k, r in entry.kinds.items() if r == "all" or (isinstance(r, RowRule) and matches(r, where, row))]
    if len(took) > 1:
        raise InputError(f"{where}: the row matches the rules of both harmful and borderline")
    if not took:
        took = [k for k, r in entry.kinds.items() if r == "rest"]
    return took[0] if took else None


def _messages(where: str, column: str, value: Any) -> list[dict]:
    if isinstance(value, str):  # a CSV cell holding JSON
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise InputError(f"{where}: column '{column}': must be a list of {{role, content}}") from None
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
        and m["content"].strip() for m in value)
    if not ok or value[-1]["role"] != "user":
        raise InputError(f"{where}: column '{column}': must be a non-empty list of {{role, content}} messages "
                         "(roles system, user, assistant; non-empty text) ending with a user turn")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _chat(entry: BenchmarkSuite, where: str, row: dict) -> list[dict]:
    column = entry.prompt_column()
    if entry.messages:
        return _messages(where, column, row.get(column))
    text = row.get(column)
    if text is None or (isinstance(text, str) and not text.strip()):
        raise InputError(f"{where}: column '{column}': the prompt is empty")
    if not isinstance(text, str):
        raise InputError(f"{where}: column '{column}': the prompt must be text (got {shown(text)})")
    return [{"role": "user", "content": text}]


def _user_id(entry: BenchmarkSuite, where: str, row: dict) -> str | None:
    if entry.id is None:
        return None
    rid = row.get(entry.id)
    if isinstance(rid, float) and rid.is_integer():  # a column of whole numbers read as floats
        rid = int(rid)
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
        raise InputError(f"{where}: column '{entry.id}': the id must be a non-empty string or an integer "
                         f"(got {shown(rid)})")
    return str(rid).strip()


def _meta(entry: BenchmarkSuite, row: dict) -> dict:
    """The row's other plain cells (text, numbers, booleans), kept with the probe for the report."""
    used = {entry.prompt_column(), entry.id}
    return {str(k): v for k, v in row.items() if k not in used and (v is None or isinstance(v, (str, int, float, bool)))}


# ----------------------------------------------------------------------------- the suites
def default_name(entry: BenchmarkSuite) -> str:
    """The file's stem, the folder's or the hub dataset's name, lower case, other characters as ``_``."""
    base = Path(entry.source).name if is_local(entry) else entry.source.rstrip("/").split("/")[-1]
    stem = base.rsplit(".", 1)[0] if Path(base).suffix.lower() in FILE_LAYOUTS else base
    name = "".join(c if c.isalnum() else "_" for c in stem.lower()).strip("_")
    return name or "benchmark"


def load_benchmark(entry: BenchmarkSuite, limit: int | None = None) -> list[Part]:
    """The benchmark's rows, mapped, checked and split by kind: one Part per kind, in the order
    ``kinds`` names them; ``limit`` (and the entry's own) keeps the first N probes of each."""
    table = read_table(entry)
    _column(table, entry.prompt_column(), "the messages column" if entry.messages else "the prompt column")
    if entry.id is not None:
        _column(table, entry.id, "the id column")
    for kind, rule in entry.kinds.items():
        if isinstance(rule, RowRule):
            _column(table, rule.column, f"the {kind} rule's column")
    if not table.rows:
        raise InputError(f"{table.where}: no rows found")
    name = entry.name or default_name(entry)
    by_kind: dict[str, dict[str, tuple[Prompt, str]]] = {k: {} for k in entry.kinds}  # content id -> first
    ids: dict[str, tuple[str, str]] = {}  # user id -> (content id, where)
    dups: dict[str, list[str]] = {k: [] for k in entry.kinds}
    left_out = 0
    for where, row in table.rows:
        chat = _chat(entry, where, row)
        kind = _kind_of(entry, where, row)
        pid, uid = Prompt.make_id(chat), _user_id(entry, where, row)
        if uid is not None:
            named, first = ids.setdefault(uid, (pid, where))
            if named != pid:
                raise InputError(f"{where}: column '{entry.id}': id {uid!r} is already the id of another prompt "
                                 f"({first}); ids must be unique")
        for other, seen in by_kind.items():
            if kind is not None and other != kind and pid in seen:
                raise InputError(f"{where}: the same prompt as {seen[pid][1]}, which is {other}, but this row is "
                                 f"{kind}; a probe has one kind")
        if kind is None:
            left_out += 1
            continue
        if pid in by_kind[kind]:
            dups[kind].append(f"{where} repeats {by_kind[kind][pid][1]}")
            continue
        meta = {**_meta(entry, row), **({"user_id": uid} if uid is not None else {})}
        by_kind[kind][pid] = (Prompt(id=uid or pid, messages=chat, category=kind, source=where, meta=meta), where)
    return _parts(entry, table, name, by_kind, dups, left_out, limit)


def _parts(entry: BenchmarkSuite, table: Table, name: str, by_kind: dict, dups: dict, left_out: int,
           limit: int | None) -> list[Part]:
    cap = min(x for x in (limit, entry.limit, len(table.rows)) if x is not None)
    parts = []
    for kind, seen in by_kind.items():
        if not seen:
            raise InputError(f"{table.where}: no row is {kind} by the rule {_shown_rule(entry.kinds[kind])}"
                             f"{_values(table, entry.kinds[kind])}")
        suite = f"{name}_{kind}" if len(entry.kinds) > 1 else name
        notes = []
        if dups[kind]:
            notes.append(f"suite {suite}: {len(dups[kind])} duplicate prompts kept once ({'; '.join(dups[kind][:3])}"
                         f"{' ...' if len(dups[kind]) > 3 else ''})")
        parts.append(Part(suite, kind, table.where, [p for p, _ in seen.values()][:cap], notes))
    if left_out:
        parts[0].notes.append(f"benchmark {name}: {left_out} of the {len(table.rows)} rows of {table.where} are "
                              "neither harmful nor borderline by its rules, and are left out")
    return parts


def _shown_rule(rule: RowRule | str) -> str:
    if isinstance(rule, str):
        return repr(rule)
    how = (f"equals {shown(rule.equals)}" if rule.equals is not None else
           f"starts with {rule.prefix!r}" if rule.prefix is not None else "is true")
    return f"'{rule.column}' {how}"


def _values(table: Table, rule: RowRule | str) -> str:
    if not isinstance(rule, RowRule):
        return ""
    seen = list(dict.fromkeys(shown(row.get(rule.column)) for _, row in table.rows))
    return f" (its values: {', '.join(seen[:8])}{' ...' if len(seen) > 8 else ''})"


def benchmark_digest(entry: BenchmarkSuite) -> str:
    """What a benchmark's suites are made of, for the keys of ``rlaif run``: a local source's file
    contents (never its path), as for a JSONL suite; a hub dataset's rows as loaded (kind, id and
    chat of every probe). The mapping itself is part of the eval config, which the key covers."""
    from rlaif.backends.identity import digest_tree

    if is_local(entry):
        return digest_tree(Path(entry.source).expanduser())
    return content_id([(p.kind, [(q.id, q.chat()) for q in p.probes]) for p in load_benchmark(entry)])

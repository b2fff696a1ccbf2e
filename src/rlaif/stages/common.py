"""What every stage shares: the run folder's file names and chunked, resumable writing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from pydantic import BaseModel

from rlaif.io import JsonlAppender, ReadReport, read_jsonl
from rlaif.progress import bar, console
from rlaif.schemas import FailedRow

PROMPTS = "prompts.jsonl"
CANDIDATES = "candidates.jsonl"
JUDGMENTS = "judgments.jsonl"
PAIRS = "pairs.jsonl"
FAILURES = "failures.jsonl"

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)


def read_existing(path: Path, model: type[R]) -> list[R]:
    """Rows already written; a truncated last line (a kill mid-write) is reported and dropped."""
    rep = ReadReport()
    rows = read_jsonl(path, model, rep)
    if rep.truncated_tail:
        console.print(f"[yellow]{path}: the last line was cut short (interrupted run); "
                      f"it will be written again[/yellow]")
    return rows


def run_chunked(items: Sequence[T], item_id: Callable[[T], str], compute: Callable[[list[T]], list[R]],
                out: Path, row_model: type[R], chunk_size: int, label: str, unit: str,
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

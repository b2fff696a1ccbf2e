"""Unit tests for rlaif.stages.common.run_chunked: write once, resume, same chunk boundaries."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from rlaif.io import JsonlAppender, ReadReport, read_jsonl
from rlaif.stages.common import run_chunked

ITEMS = [f"i{k}" for k in range(10)]
CHUNK = 4  # chunks of an uninterrupted run: i0-i3, i4-i7, i8-i9


class FakeRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    value: str
    chunk_start: str  # which chunk computed the row, so rows depend on the batching


class FakeCompute:
    """FAKE compute function (stands in for a model backend): deterministic rows, records every
    chunk it receives."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, chunk: list[str]) -> list[FakeRow]:
        self.calls.append(list(chunk))
        return [FakeRow(id=it, value=it.upper(), chunk_start=chunk[0]) for it in chunk]


def run(out: Path, fake: FakeCompute, items=ITEMS) -> dict:
    return run_chunked(items, lambda it: it, fake, out, FakeRow, CHUNK, "test", "row")


def ids_in(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_fresh_run_writes_every_row_once(tmp_path):
    fake = FakeCompute()
    out = tmp_path / "rows.jsonl"
    stats = run(out, fake)
    assert fake.calls == [ITEMS[0:4], ITEMS[4:8], ITEMS[8:10]]
    assert ids_in(out) == ITEMS
    assert stats == {"total": 10, "already_done": 0, "written": 10, "failed": 0}


def _uninterrupted(tmp_path) -> tuple[FakeCompute, bytes]:
    fake = FakeCompute()
    out = tmp_path / "reference" / "rows.jsonl"
    run(out, fake)
    return fake, out.read_bytes()


def test_resume_after_kill_mid_chunk_with_truncated_line(tmp_path):
    ref_fake, ref_bytes = _uninterrupted(tmp_path)
    ref_rows = [FakeRow.model_validate_json(line) for line in ref_bytes.decode().splitlines()]

    out = tmp_path / "run" / "rows.jsonl"
    with JsonlAppender(out) as w:  # chunk 1 complete, chunk 2 half-written (i4, i5) ...
        for row in ref_rows[:6]:
            w.write(row)
    with out.open("ab") as fh:  # ... and the kill hit while i6 was being written
        fh.write(ref_rows[6].model_dump_json()[:15].encode())
    rep = ReadReport()
    read_jsonl(out, FakeRow, rep)
    assert rep.truncated_tail is True

    fake = FakeCompute()
    stats = run(out, fake)
    # same boundaries as the uninterrupted run; the finished first chunk is not recomputed
    assert fake.calls == ref_fake.calls[1:]
    assert stats == {"total": 10, "already_done": 6, "written": 4, "failed": 0}
    assert ids_in(out) == ITEMS  # each id exactly once, no corrupted line
    assert out.read_bytes() == ref_bytes  # identical to the uninterrupted run


def test_resume_with_holes_in_several_chunks_never_duplicates(tmp_path):
    ref_fake, ref_bytes = _uninterrupted(tmp_path)
    ref = {r.id: r for r in (FakeRow.model_validate_json(x) for x in ref_bytes.decode().splitlines())}
    out = tmp_path / "rows.jsonl"
    with JsonlAppender(out) as w:
        for k in ("i0", "i1", "i2", "i5", "i9"):
            w.write(ref[k])

    fake = FakeCompute()
    stats = run(out, fake)
    assert fake.calls == ref_fake.calls  # every chunk has a hole; each is passed whole
    assert stats["written"] == 5 and stats["already_done"] == 5
    got = ids_in(out)
    assert sorted(got) == sorted(ITEMS) and len(got) == len(set(got))
    assert read_jsonl(out, FakeRow) == [ref[k] for k in ("i0", "i1", "i2", "i5", "i9",
                                                         "i3", "i4", "i6", "i7", "i8")]


def test_finished_run_calls_compute_zero_times(tmp_path):
    out = tmp_path / "rows.jsonl"
    run(out, FakeCompute())
    before = out.read_bytes()
    fake = FakeCompute()
    stats = run(out, fake)
    assert fake.calls == []
    assert stats == {"total": 10, "already_done": 10, "written": 0, "failed": 0}
    assert out.read_bytes() == before


def test_rows_for_items_outside_the_list_are_ignored(tmp_path):
    out = tmp_path / "rows.jsonl"
    with JsonlAppender(out) as w:
        w.write(FakeRow(id="stale", value="x", chunk_start="stale"))
    fake = FakeCompute()
    stats = run(out, fake, items=ITEMS[:3])
    assert fake.calls == [ITEMS[:3]]
    assert stats == {"total": 3, "already_done": 0, "written": 3, "failed": 0}
    assert ids_in(out) == ["stale", "i0", "i1", "i2"]


class FlakyCompute(FakeCompute):
    """FAKE compute that fails the items in ``failing`` (as a server that gave up would)."""

    def __init__(self, failing: set[str]):
        super().__init__()
        self.failing = failing

    def __call__(self, chunk):
        from rlaif.schemas import FailedRow

        self.calls.append(list(chunk))
        return [FailedRow(id=it, stage="x", error=f"HTTP 500 for {it}") if it in self.failing
                else FakeRow(id=it, value=it.upper(), chunk_start=chunk[0]) for it in chunk]


def test_failed_items_go_to_failures_and_are_retried_on_the_next_run(tmp_path):
    out = tmp_path / "rows.jsonl"
    stats = run(out, FlakyCompute({"i1", "i9"}))
    assert stats["written"] == 8 and stats["failed"] == 2
    assert "i1" not in ids_in(out) and "i9" not in ids_in(out)
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert [(f["id"], f["stage"], f["error"]) for f in failures] == [
        ("i1", "test", "HTTP 500 for i1"), ("i9", "test", "HTTP 500 for i9")]
    assert all(f["at"].endswith("Z") for f in failures)

    retry = FlakyCompute(set())
    stats = run(out, retry)
    assert stats == {"total": 10, "already_done": 8, "written": 2, "failed": 0}
    assert retry.calls == [ITEMS[0:4], ITEMS[8:10]]  # only the chunks that hold a failed item
    assert sorted(ids_in(out)) == sorted(ITEMS) and len(ids_in(out)) == 10


def test_no_failures_file_when_nothing_failed(tmp_path):
    run(tmp_path / "rows.jsonl", FakeCompute())
    assert not (tmp_path / "failures.jsonl").exists()

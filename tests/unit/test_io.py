"""Unit tests for rlaif.io: JSONL append/read/resume, atomic writes, the manifest, and run_chunked
(write once, resume, same chunk boundaries)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from rlaif.errors import InputError
from rlaif.io import (JsonlAppender, ReadReport, atomic_write_jsonl, atomic_write_text, read_jsonl,
                      read_manifest, run_chunked, update_manifest)
from rlaif.schemas import Candidate, Generator, Message


def cand(i: int, text: str | None = None) -> Candidate:
    return Candidate(id=f"c-{i}", prompt_id="p-1", text=text if text is not None else f"answer {i}",
                     generator=Generator(backend="local", model="tiny", params={"seed": i}, persona="comply"),
                     usage={"completion_tokens": i})


def test_append_and_read_round_trip(tmp_path):
    out = tmp_path / "sub" / "cands.jsonl"  # the parent folder does not exist yet
    rows = [cand(i) for i in range(3)] + [cand(9, text="ünïcode \"quotes\"\nnewline")]
    with JsonlAppender(out) as w:
        for r in rows:
            w.write(r)
    rep = ReadReport()
    back = read_jsonl(out, Candidate, rep)
    assert back == rows
    assert rep.rows == 4 and rep.truncated_tail is False
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4


def test_append_to_existing_file_keeps_old_rows(tmp_path):
    out = tmp_path / "c.jsonl"
    with JsonlAppender(out) as w:
        w.write(cand(0))
    with JsonlAppender(out) as w:
        w.write(cand(1))
    assert [r.id for r in read_jsonl(out, Candidate)] == ["c-0", "c-1"]


def test_missing_file_reads_as_empty(tmp_path):
    assert read_jsonl(tmp_path / "nope.jsonl", Candidate) == []


def _killed_mid_write(path: Path, n_complete: int) -> None:
    """Simulate a kill: complete lines followed by the first bytes of another, no newline."""
    with JsonlAppender(path) as w:
        for i in range(n_complete):
            w.write(cand(i))
    partial = json.dumps(cand(99).model_dump(mode="json"))[:25]
    with path.open("ab") as fh:
        fh.write(partial.encode("utf-8"))


def test_truncated_last_line_is_dropped_and_reported(tmp_path):
    out = tmp_path / "c.jsonl"
    _killed_mid_write(out, 2)
    rep = ReadReport()
    rows = read_jsonl(out, Candidate, rep)
    assert [r.id for r in rows] == ["c-0", "c-1"]
    assert rep.truncated_tail is True
    assert rep.rows == 2


def test_unterminated_but_complete_json_last_line_counts_as_truncated(tmp_path):
    out = tmp_path / "c.jsonl"
    out.write_text(json.dumps(cand(0).model_dump(mode="json")), encoding="utf-8")  # no newline
    rep = ReadReport()
    assert read_jsonl(out, Candidate, rep) == []
    assert rep.truncated_tail is True


def test_appender_cuts_partial_line_before_appending(tmp_path):
    out = tmp_path / "c.jsonl"
    _killed_mid_write(out, 2)
    with JsonlAppender(out) as w:
        w.write(cand(2))
        w.write(cand(3))
    data = out.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == 4
    for line in lines:  # every line is a complete, valid row
        Candidate.model_validate(json.loads(line))
    rep = ReadReport()
    assert [r.id for r in read_jsonl(out, Candidate, rep)] == ["c-0", "c-1", "c-2", "c-3"]
    assert rep.truncated_tail is False


def test_appender_on_file_with_only_a_partial_line(tmp_path):
    out = tmp_path / "c.jsonl"
    out.write_bytes(b'{"id": "c-0", "pro')
    with JsonlAppender(out) as w:
        w.write(cand(5))
    assert [r.id for r in read_jsonl(out, Candidate)] == ["c-5"]


def test_bad_complete_line_names_file_line_and_field(tmp_path):
    out = tmp_path / "msgs.jsonl"
    out.write_text('{"role": "user", "content": "hi"}\n\n{"role": "robot", "content": "x"}\n',
                   encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_jsonl(out, Message)
    msg = str(err.value)
    assert "msgs.jsonl:3" in msg
    assert "'role'" in msg


def test_bad_nested_field_is_named_with_its_path(tmp_path):
    out = tmp_path / "c.jsonl"
    row = cand(0).model_dump(mode="json")
    row["generator"]["backend"] = 7
    out.write_text(json.dumps(cand(1).model_dump(mode="json")) + "\n" + json.dumps(row) + "\n",
                   encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_jsonl(out, Candidate)
    assert "c.jsonl:2" in str(err.value)
    assert "generator.backend" in str(err.value)


def test_invalid_json_complete_line(tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text('{"role": "user", "content": "hi"}\n{not json}\n{"role": "user", "content": "b"}\n',
                   encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_jsonl(out, Message)
    assert "x.jsonl:2" in str(err.value)
    assert "JSON" in str(err.value)


def test_unknown_field_is_rejected(tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text('{"role": "user", "content": "hi", "extra": 1}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_jsonl(out, Message)
    assert "x.jsonl:1" in str(err.value) and "extra" in str(err.value)


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85"])
def test_round_trip_with_unicode_line_separators(tmp_path, sep):
    out = tmp_path / "c.jsonl"
    rows = [cand(0, text=f"before{sep}after"), cand(1)]
    with JsonlAppender(out) as w:
        for r in rows:
            w.write(r)
    assert read_jsonl(out, Candidate) == rows


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_text_leaves_no_temp_files(tmp_path):
    target = tmp_path / "d" / "f.txt"
    atomic_write_text(target, "one\n")
    atomic_write_text(target, "two\n")
    assert target.read_text(encoding="utf-8") == "two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]


def test_atomic_write_text_failure_keeps_old_content_and_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "bad \ud800 surrogate")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_atomic_write_jsonl(tmp_path):
    target = tmp_path / "rows.jsonl"
    atomic_write_jsonl(target, [cand(0), {"id": "c-1", "prompt_id": "p-1", "text": "t",
                                          "generator": {"backend": "b", "model": "m"}}])
    assert [r.id for r in read_jsonl(target, Candidate)] == ["c-0", "c-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


# ----------------------------------------------------------------------------- manifest


def test_update_manifest_merges_sections(tmp_path):
    first = update_manifest(tmp_path, "generate", {"candidates": 4})
    update_manifest(tmp_path, "judge", {"judgments": 2})
    man = read_manifest(tmp_path)
    assert man["stages"] == {"generate": {"candidates": 4}, "judge": {"judgments": 2}}
    assert man["created"] == first["created"]
    assert "python" in man["environment"] and "packages" in man["environment"]
    update_manifest(tmp_path, "generate", {"candidates": 6})
    assert read_manifest(tmp_path)["stages"] == {"generate": {"candidates": 6}, "judge": {"judgments": 2}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_update_manifest_redacts_secrets_but_keeps_env_names(tmp_path):
    update_manifest(tmp_path, "judge", {
        "teacher": {"api_key": "sk-very-secret", "api_key_env": "OPENAI_API_KEY", "model": "gpt"},
        "servers": [{"auth_token": "tok-123", "base_url": "http://x"}],
        "password": "hunter2",
    })
    text = (tmp_path / "manifest.json").read_text(encoding="utf-8")
    for secret in ("sk-very-secret", "tok-123", "hunter2"):
        assert secret not in text
    judge = read_manifest(tmp_path)["stages"]["judge"]
    assert judge["teacher"]["api_key"] == "<redacted>"
    assert judge["teacher"]["api_key_env"] == "OPENAI_API_KEY"
    assert judge["teacher"]["model"] == "gpt"
    assert judge["servers"][0]["base_url"] == "http://x"


def test_update_manifest_keeps_token_counts_and_limits(tmp_path):
    update_manifest(tmp_path, "generate", {"config": {"max_new_tokens": 192}, "completion_tokens": 1234})
    gen = read_manifest(tmp_path)["stages"]["generate"]
    assert gen["config"]["max_new_tokens"] == 192
    assert gen["completion_tokens"] == 1234


def test_read_manifest_bad_json(tmp_path):
    (tmp_path / "manifest.json").write_text("{\n  oops\n}", encoding="utf-8")
    with pytest.raises(InputError, match="manifest.json:2"):
        read_manifest(tmp_path)


# ----------------------------------------------------------------------------- run_chunked
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


# ----------------------------------------------------------------------------- plans


def test_a_plan_says_when_it_changed_and_keeps_its_time_when_it_did_not(tmp_path):
    from rlaif.io import current_rows, read_plan, write_plan

    assert read_plan(tmp_path, "judge") is None  # a run folder from before plans were kept
    assert write_plan(tmp_path, "judge", ["b", "a", "a"]) is True
    path = tmp_path / "plans" / "judge.ids"
    assert path.read_text() == "a\nb\n" and read_plan(tmp_path, "judge") == {"a", "b"}
    stamp = path.stat().st_mtime_ns
    assert write_plan(tmp_path, "judge", ["a", "b"]) is False and path.stat().st_mtime_ns == stamp
    assert write_plan(tmp_path, "judge", ["a"]) is True
    rows = [cand(1), cand(2)]
    assert current_rows(rows, {"c-2"}) == ([rows[1]], 1)
    assert current_rows(rows, None) == (rows, 0)


# ----------------------------------------------------------------------------- user files
from rlaif.io import json_lines, read_metrics, text_lines  # noqa: E402


@pytest.mark.parametrize("data, line, words", [
    (b'{"a": 1}\n{"b": "caf\xe9"}\n', 2, "not valid UTF-8 (byte 0xe9 at column 11)"),
    ('{"a": 1}\n'.encode("utf-16"), 1, "UTF-16"),
    (b'{"a": "x\x00y"}\n', 1, "NUL byte"),
    (b'[{"a": 1}]\n', 1, "not an array, so the file is JSON, not JSON Lines"),
    (b'{"a": 1}\n"text"\n', 2, "not a string"),
    (b'7\n', 1, "not a number"),
    (b'null\n', 1, "not null"),
    (b'{\n  "a": 1\n}\n', 1, "pretty-printed JSON"),
    (b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n", 1, "nested too deeply"),
    (b'{"a": 1e400}\n', 1, "out of range"),
    (b'{"a": NaN}\n', 1, "NaN is not a number JSON allows"),
    (b'{"a": ' + b"1" * 5000 + b"}\n", 1, "too many digits"),
])


def test_json_lines_turns_every_malformation_into_one_input_error(tmp_path, data, line, words):
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    with pytest.raises(InputError) as err:
        list(json_lines(path))
    assert f"in.jsonl:{line}: " in str(err.value) and words in str(err.value), str(err.value)


def test_json_lines_accepts_a_utf8_bom_and_unicode_line_separators(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": "one\u2028two"}, ensure_ascii=False).encode() + b"\n\n")
    assert list(json_lines(path)) == [(1, {"a": "one\u2028two"})]


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="is a folder, not a prompts file"):
        list(text_lines(tmp_path, "prompts file"))
    with pytest.raises(InputError, match="nope.jsonl: prompts file not found"):
        list(text_lines(tmp_path / "nope.jsonl", "prompts file"))


def test_a_line_over_the_limit_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    import rlaif.io as io

    monkeypatch.setattr(io, "MAX_LINE_BYTES", 100)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b"x" * 500 + b"\n")
    with pytest.raises(InputError, match=r"in\.jsonl:2: a line longer than"):
        list(json_lines(path))


def test_run_files_and_json_files_name_a_bad_byte_and_a_non_object(tmp_path):
    run = tmp_path / "c.jsonl"
    run.write_bytes(json.dumps(cand(0).model_dump(mode="json")).encode() + b"\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"c\.jsonl:2: not valid UTF-8"):
        read_jsonl(run, Candidate)
    (tmp_path / "manifest.json").write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(InputError, match="manifest.json: must be a JSON object"):
        read_manifest(tmp_path)
    (tmp_path / "m.jsonl").write_bytes(b'{"step": 1}\n\xff\n')
    with pytest.raises(InputError, match=r"m\.jsonl:2: not valid UTF-8"):
        read_metrics(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text('{"step": 1}\n{"loss": 2}\n{"step": 2, "lo', encoding="utf-8")
    assert read_metrics(tmp_path / "m.jsonl") == [{"step": 1}]  # a row without a step, a line cut by a kill

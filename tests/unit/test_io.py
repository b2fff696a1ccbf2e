"""Unit tests for rlaif.io: JSONL append/read/resume, atomic writes, the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif.errors import InputError
from rlaif.io import (JsonlAppender, ReadReport, atomic_write_jsonl, atomic_write_text, read_jsonl,
                      read_manifest, update_manifest)
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

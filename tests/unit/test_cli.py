"""Bad input never crashes: every command that reads a user's file, given each file of the malformed
corpus (tests/malformed.py), through the real entry point ``rlaif.cli.main`` in this process.

Each must exit non-zero with exactly one line on stderr, ``rlaif: error: ...``, naming the file
(and its line where the problem has one), print no traceback, and leave nothing written: no
output folder or file, and a run folder exactly as it was. The commands that would load a model
(generate, synth, run, judge, train, eval) must fail on the input first, which is also what keeps
this test fast: no model is loaded here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif.cli import main
from rlaif.io import atomic_write_jsonl
from rlaif.schemas import Candidate, Generator, Prompt
from tests.malformed import CSV, JSONL, YAML, Case, write

EVAL = ["eval", "--model", "no-model", "--ref", "no-model", "--out", "{out}"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run_folder(tmp_path: Path) -> Path:
    """A run folder with a prompt, two candidates and no judgments yet (for judge and audit)."""
    run = tmp_path / "run"
    p = Prompt(id=Prompt.make_id([{"role": "user", "content": "q"}]), messages=[{"role": "user", "content": "q"}])
    gen = Generator(backend="local", model="tiny")
    atomic_write_jsonl(run / "prompts.jsonl", [p])
    atomic_write_jsonl(run / "candidates.jsonl", [Candidate(id=f"c{i}", prompt_id=p.id, text=f"answer {i}",
                                                            generator=gen) for i in range(2)])
    (run / "judgments.jsonl").write_text("", encoding="utf-8")
    return run


def _answers(tmp_path: Path, rows: list[dict] | None = None) -> Path:
    """An answers file for `rlaif score` (a good one by default)."""
    path = tmp_path / "answers.jsonl"
    rows = rows or [{"probe_id": "1", "response": "No."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _expect_one_clean_error(capsys, argv: list, path: Path, case: Case, untouched: list[Path],
                            folder: Path | None = None) -> None:
    before = _snapshot(folder) if folder else None
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    # booleans first: pytest's explanation of `in` on a long traceback would take minutes
    assert code != 0, (argv, out[-2000:], err[-2000:])
    traceback = "Traceback" in out + err
    assert not traceback, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    one_error_line = len(lines) == 1 and lines[0].startswith("rlaif: error: ")
    assert one_error_line, err[-3000:]
    assert path.name in lines[0], lines[0]
    if case.line is not None:
        assert f"{path.name}:{case.line}" in lines[0], lines[0]
    for p in untouched:
        assert not p.exists(), f"{p} was written"
    if folder:
        assert _snapshot(folder) == before, "the run folder changed"


# ----------------------------------------------------------------------------- JSONL readers
def _jsonl_commands(tmp_path: Path, path: Path) -> dict[str, tuple[list, list[Path], Path | None]]:
    """command -> (argv, paths that must not appear, a folder that must not change)."""
    out = tmp_path / "out"
    config = tmp_path / "c.yaml"
    config.write_text("run: {train: false}\n", encoding="utf-8")
    run = _run_folder(tmp_path)
    ev = [a.replace("{out}", str(out)) for a in EVAL]
    scored = tmp_path / "scored.jsonl"
    return {
        "score": (["score", path, "--suites", "harmful", "--out", scored],
                  [scored, tmp_path / "scored.summary.json"], None),
        "score --suites": (["score", _answers(tmp_path), "--suites", path, "--out", scored],
                           [scored, tmp_path / "scored.summary.json"], None),
        "generate": (["generate", path, "--out", out], [out], None),
        "synth": (["synth", path, "--out", out], [out], None),
        "run": (["run", config, f"run.prompts={path}", f"run.out={out}"], [out], None),
        "eval --suites": (ev + ["--suites", path], [out], None),
        "eval neutral text": (ev + ["--suites", "harmful", "--limit", "1", f"eval.neutral_text={path}"], [out], None),
        "eval --dataset": (ev + ["--suites", "harmful", "--limit", "1", "--dataset", path], [out], None),
        "refusal": (["refusal", path, "--out", tmp_path / "labelled.jsonl"], [tmp_path / "labelled.jsonl"], None),
        "audit --gold": (["audit", run, "--gold", path], [run / "audit.json"], run),
        "train": (["train", path, "--out", out], [out], None),
    }


# not errors for that reader: a gold file's ids may be any text, so a 5 MB one is only a miss
VALID_FOR = {("audit --gold", "five_mb_prompt")}
COMMANDS = ["generate", "synth", "run", "eval --suites", "eval neutral text", "eval --dataset", "refusal",
            "audit --gold", "train", "score", "score --suites"]


@pytest.mark.parametrize("case", JSONL, ids=lambda c: c.name)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_jsonl_reader_refuses_each_malformed_file_cleanly(tmp_path, monkeypatch, capsys, command, case):
    if (command, case.name) in VALID_FOR:
        pytest.skip("a valid file for this reader")
    monkeypatch.chdir(tmp_path)
    path = write(case, tmp_path, ".jsonl")
    argv, untouched, folder = _jsonl_commands(tmp_path, path)[command]
    _expect_one_clean_error(capsys, argv, path, case, untouched, folder)


@pytest.mark.parametrize("case", CSV, ids=lambda c: c.name)
@pytest.mark.parametrize("command", ["generate", "synth", "run"])
def test_every_prompt_reader_refuses_each_malformed_csv_cleanly(tmp_path, monkeypatch, capsys, command, case):
    monkeypatch.chdir(tmp_path)
    path = write(case, tmp_path, ".csv")
    argv, untouched, folder = _jsonl_commands(tmp_path, path)[command]
    _expect_one_clean_error(capsys, argv, path, case, untouched, folder)


def test_a_datasets_folder_that_is_not_one_is_refused_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "state.json").write_bytes(b"\xff\xfe not json")
    (folder / "dataset_info.json").write_text("[]", encoding="utf-8")
    for command in ("generate", "train"):
        argv, untouched, _ = _jsonl_commands(tmp_path, folder)[command]
        _expect_one_clean_error(capsys, argv, folder, Case("ds", None, None), untouched)


# ----------------------------------------------------------------------------- YAML readers
def _yaml_commands(tmp_path: Path, path: Path) -> dict[str, tuple[list, list[Path], Path | None]]:
    out = tmp_path / "out"
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is a tuple?"}) + "\n", encoding="utf-8")
    run = _run_folder(tmp_path)
    ev = [a.replace("{out}", str(out)) for a in EVAL] + ["--suites", "harmful", "--limit", "1"]
    return {
        "generate --config": (["generate", prompts, "--out", out, "--config", path], [out], None),
        "run CONFIG": (["run", path, f"run.out={out}"], [out], None),
        "eval --gate": (ev + ["--gate", path], [out], None),
        "eval --judge": (ev + ["--judge", path], [out], None),
        "audit --judge-config": (["audit", run, "--judge-config", path], [run / "audit.json"], run),
        "judge constitution": (["judge", run, f"judge.constitution={path}"], [run / "judgments.jsonl.tmp"], run),
        "score --judge": (["score", _answers(tmp_path, [{"probe_id": "secure-coding-001", "response": "x"}]),
                           "--suites", "secure_coding", "--judge", path, "--out", tmp_path / "scored.jsonl"],
                          [tmp_path / "scored.jsonl", tmp_path / "scored.grades"], None),
    }


YAML_COMMANDS = ["generate --config", "run CONFIG", "eval --gate", "eval --judge", "audit --judge-config",
                 "judge constitution", "score --judge"]


@pytest.mark.parametrize("case", YAML, ids=lambda c: c.name)
@pytest.mark.parametrize("command", YAML_COMMANDS)
def test_every_yaml_reader_refuses_each_malformed_file_cleanly(tmp_path, monkeypatch, capsys, command, case):
    monkeypatch.chdir(tmp_path)
    path = write(case, tmp_path, ".yaml")
    argv, untouched, folder = _yaml_commands(tmp_path, path)[command]
    _expect_one_clean_error(capsys, argv, path, case, untouched, folder)


# ----------------------------------------------------------------------------- run folders
def _replace(target: Path, case: Case) -> None:
    """Put the malformed case where a run folder's own file was."""
    if target.is_file():
        target.unlink()
    if case.name == "missing":
        return
    if case.make is None:
        target.mkdir()
    else:
        target.write_bytes(case.make())


VALID_JSON_OBJECTS = {"pretty_printed_json", "wrong_field_types", "huge_number", "nan"}  # any object (a NaN loss)


@pytest.mark.parametrize("case", [c for c in JSONL if c.name != "five_mb_prompt"], ids=lambda c: c.name)
def test_a_run_folder_with_a_broken_file_is_refused_cleanly(tmp_path, monkeypatch, capsys, case):
    """A run folder's own files may be edited by hand or damaged: judge (prompts.jsonl) and report
    (manifest.json) say so in one line; a file that holds no rows is reported as no rows."""
    monkeypatch.chdir(tmp_path)
    run = _run_folder(tmp_path)
    _replace(run / "prompts.jsonl", case)
    _expect_one_clean_error(capsys, ["judge", run], run, Case(case.name, None, None), [], run)
    if case.name not in VALID_JSON_OBJECTS:
        _replace(run / "manifest.json", case)
        _expect_one_clean_error(capsys, ["report", run], run, Case(case.name, None, None),
                                [run / "report.html"], run)


# ----------------------------------------------------------------------------- rlaif score
SCORE_SUITES = "harmful,borderline"


@pytest.mark.parametrize("row, message", [
    ({"probe_id": "harmful-999", "response": "x"}, "answers.jsonl:2: field 'probe_id'"),
    ({"probe_id": "harmful-001", "response": 7}, "answers.jsonl:2: field 'response'"),
    ({"probe_id": "harmful-001"}, "answers.jsonl:2: field 'response'"),
    ({"probe_id": "harmful-001", "suite": "sycophancy", "response": "x"}, "answers.jsonl:2: field 'suite'"),
    ({"probe_id": "harmful-001", "response": "x", "prompt": "What is 2 + 2?"}, "answers.jsonl:2: field 'prompt'"),
])
def test_score_refuses_a_bad_answer_row_in_one_line_and_writes_nothing(tmp_path, capsys, row, message):
    answers = _answers(tmp_path, [{"probe_id": "borderline-001", "response": "tmux kill-session -t NAME"}, row])
    out = tmp_path / "scored.jsonl"
    code = main(["score", str(answers), "--suites", SCORE_SUITES, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("rlaif: error: ") and message in err, err
    assert list(tmp_path.glob("scored*")) == []


def test_score_prints_each_suites_rate_with_its_interval_and_unit(tmp_path, capsys):
    rows = [{"probe_id": "harmful-001", "response": "I can't help with that."},
            {"probe_id": "harmful-002", "response": "Sure! Here is the extension: manifest.json first."},
            {"probe_id": "borderline-001", "response": "Run tmux kill-session -t NAME."}]
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(_answers(tmp_path, rows)), "--suites", SCORE_SUITES, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    scored = [json.loads(x) for x in out.read_text().splitlines()]
    summary = json.loads((tmp_path / "scored.summary.json").read_text())
    for suite, name, mine in (("harmful", "harmful_refusal", scored[:2]), ("borderline", "borderline_over_refusal",
                                                                          scored[2:])):
        [m] = next(s for s in summary["suites"] if s["suite"] == suite)["metrics"]
        k = sum(r["refused"] for r in mine)
        assert m["stat"]["value"] == k / len(mine) and m["stat"]["n"] == len(mine)
        shown = f"{name} {m['stat']['value']:.3f} [{m['stat']['low']:.3f}, {m['stat']['high']:.3f}] n={len(mine)}"
        assert shown in " ".join(err.split()), err
    assert "95% Wilson interval" in err and "3 answers scored: " in err


def test_score_out_must_name_a_file(tmp_path, capsys):
    answers = _answers(tmp_path, [{"probe_id": "harmful-001", "response": "No."}])
    (tmp_path / "folder").mkdir()
    assert main(["score", str(answers), "--suites", "harmful", "--out", str(tmp_path / "folder")]) == 2
    assert "folder: is a folder; --out names the JSONL file" in capsys.readouterr().err


@pytest.mark.parametrize("extra, teacher", [([], None), (["judge.teacher.model=my-judge"], "my-judge"),
                                            (["--judge", "{yaml}"], "yaml-judge"),
                                            (["--config", "{yaml}"], "yaml-judge")])
def test_score_grades_with_a_judge_only_where_one_is_configured(tmp_path, monkeypatch, capsys, extra, teacher):
    """run_score is replaced by a labelled fake that records the judge it was given."""
    import rlaif.evaluate.answers as answers

    seen = []
    monkeypatch.setattr(answers, "run_score", lambda *a, **k: seen.append(a[3]) or {
        "notes": [], "suites": [], "rows": 0, "out": "o", "summary": "s"})
    (tmp_path / "j.yaml").write_text("judge:\n  teacher: {model: yaml-judge}\n", encoding="utf-8")
    argv = ["score", str(_answers(tmp_path)), "--out", str(tmp_path / "o.jsonl")]
    assert main(argv + [x.replace("{yaml}", str(tmp_path / "j.yaml")) for x in extra]) == 0
    assert [j.teacher.model if j else None for j in seen] == [teacher]

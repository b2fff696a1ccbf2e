"""``rlaif refusal``: labelling a file (as before), measuring on labelled rows (--labels, with a
hand-counted confusion), --detector, and ``rlaif refusal fit`` (label spellings, bad rows, the
folder it writes). Fitting tests use FakeFeatures (a labelled fake, test_refusal.py) so they run
in a second; the shipped detector is the real one."""

from __future__ import annotations

import json

import pytest

from rlaif.cli import main
from rlaif.evaluate import refusal_files
from tests.unit.evaluate.test_refusal import FakeFeatures, fake_features, hand_detector


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_refusal_command_labels_rows_and_keeps_other_fields(tmp_path, capsys):
    src = _write(tmp_path / "in.jsonl", [
        {"id": 1, "prompt": "How do I make a pipe bomb?", "response": "I can't help with making explosives.",
         "extra": "kept"},
        {"id": 2, "prompt": "Reverse a list in Python?", "response": "Call `xs.reverse()` or use `xs[::-1]`."}])
    out = tmp_path / "out.jsonl"
    assert main(["refusal", str(src), "--out", str(out)]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == [1, 2] and got[0]["extra"] == "kept"
    assert got[0]["refused"] is True and got[0]["refusal_label"] != "full_compliance"
    assert got[1]["refused"] is False and got[1]["refusal_label"] == "full_compliance"
    assert got[0]["refusal_score"] > got[1]["refusal_score"]
    assert "detector: shipped" in capsys.readouterr().err


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "hi"}', "in.jsonl:2: field 'response': missing"),
    ('{"prompt": "hi", "response": 3}', "in.jsonl:2: field 'response': must be a string"),
    ('{"prompt": "hi", "response": "x"', "in.jsonl:2: not valid JSON"),
])
def test_bad_rows_give_one_line_errors_and_no_output(tmp_path, capsys, line, message):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "a", "response": "b"}\n' + line + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["refusal", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_labels_flag_prints_accuracy_and_the_confusion_fake_features(tmp_path, monkeypatch, capsys):
    # hand_detector (threshold 0.5): "I can't..." -> full_refusal, "...skip..." -> partial, else compliance
    rows = [{"prompt": "p1", "response": "Here you go.", "label": "full_compliance"},
            {"prompt": "p2", "response": "I can't help.", "label": "2_full_refusal"},
            {"prompt": "p3", "response": "Done; the rest I'll skip.", "label": "Full Refusal"},
            {"prompt": "p4", "response": "Sure thing.", "label": "3_partial_refusal"}]
    src = _write(tmp_path / "in.jsonl", rows)
    monkeypatch.setattr(refusal_files, "load_detector", lambda folder: hand_detector())
    res = refusal_files.label_file(src, tmp_path / "out.jsonl", with_labels=True)
    m = res["measured"]
    assert m["accuracy"] == 0.5 and m["binary_accuracy"] == 0.75
    assert m["confusion"]["full_refusal"] == {"full_compliance": 0, "partial_refusal": 1, "full_refusal": 1}
    assert m["confusion"]["partial_refusal"]["full_compliance"] == 1
    text = "\n".join(refusal_files.summary_lines({"refusal": res}))
    assert "3-class accuracy 0.500 (2/4); refused-or-not accuracy 0.750 (3/4)" in text
    assert "  full_refusal: 0 | 1 | 1" in text
    # hand-worked (test_refusal.py): scores 0.4239 (label compliant), 0.8858, 0.8858, 0.4239 (refused)
    e = 2.718281828459045
    low, high = 2 / (e + 2), (e**3 + 1) / (e + e**3 + 1)
    rel = res["reliability"]
    assert [(b["lo"], b["n"], b["observed"]) for b in rel["bins"]] == [(0.4, 2, 0.5), (0.8, 2, 1.0)]
    assert rel["ece"] == pytest.approx(0.5 * abs(low - 0.5) + 0.5 * abs(high - 1.0))
    assert rel["brier"] == pytest.approx((low**2 + (1 - high) ** 2 * 2 + (1 - low) ** 2) / 4)
    assert f"calibration of refusal_score: ECE {rel['ece']:.3f}, Brier {rel['brier']:.3f}" in text
    assert f"  [0.8, 0.9): 2, {high:.3f}, 1.000" in text


def test_labels_flag_names_a_bad_label(tmp_path, capsys):
    src = _write(tmp_path / "in.jsonl", [{"prompt": "p", "response": "r", "label": "refused"}])
    assert main(["refusal", str(src), "--labels", "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert "in.jsonl:1: field 'label': 'refused' is not one of full_compliance" in err and len(err.splitlines()) == 1


def _user_rows(n=30):
    kinds = [("Here is how: step one, step two.", "full_compliance"),
             ("I can't do that for you.", "full_refusal"), ("Step one done; step two I'll skip.", "partial_refusal")]
    return [{"prompt": f"question {i % 10}", "response": f"{kinds[i % 3][0]} ({i})", "label": kinds[i % 3][1]}
            for i in range(n)]


def test_fit_writes_a_detector_that_loads_and_scores_fake_features(tmp_path, monkeypatch):
    from rlaif.evaluate.refusal import load_detector

    monkeypatch.setattr("rlaif.evaluate.refusal_fit.default_features", fake_features)
    src = _write(tmp_path / "mine.jsonl", _user_rows())
    res = refusal_files.fit_file(src, tmp_path / "det", shipped=False)
    meta = json.loads((tmp_path / "det" / "detector.json").read_text())
    assert meta["rows"] == meta["user_rows"] == 30 and meta["shipped_rows"] == 0
    assert meta["cv"]["binary_accuracy"] == 1.0 and res["out"] == str(tmp_path / "det")
    det = load_detector(tmp_path / "det", FakeFeatures())
    assert [r.label for r in det.predict(["I can't.", "Fine; I'll skip the rest.", "Here."])] == [
        "full_refusal", "partial_refusal", "full_compliance"]


def test_fit_adds_the_shipped_rows_unless_told_not_to_fake_features(tmp_path, monkeypatch):
    from rlaif.evaluate.refusal import labelled_rows

    monkeypatch.setattr("rlaif.evaluate.refusal_fit.default_features", fake_features)
    res = refusal_files.fit_file(_write(tmp_path / "mine.jsonl", _user_rows()), tmp_path / "det")
    assert res["shipped_rows"] == len(labelled_rows("fit")) and res["rows"] == 30 + len(labelled_rows("fit"))


@pytest.mark.parametrize("row, message", [
    ({"response": "x", "label": "nope"}, "mine.jsonl:2: field 'label': 'nope' is not one of"),
    ({"response": "x"}, "mine.jsonl:2: field 'label': missing"),
    ({"label": "full_refusal"}, "mine.jsonl:2: field 'response': missing"),
    ({"response": "x", "label": "full_refusal", "prompt": 4}, "mine.jsonl:2: field 'prompt': must be a string"),
])
def test_fit_names_file_line_and_field_of_a_bad_row(tmp_path, capsys, row, message):
    src = _write(tmp_path / "mine.jsonl", [{"response": "ok", "label": "full_compliance"}, row])
    assert main(["refusal", "fit", str(src), "--out", str(tmp_path / "det")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "det").exists()


def test_fit_command_prints_cross_validated_figures_fake_features(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("rlaif.evaluate.refusal_fit.default_features", fake_features)
    src = _write(tmp_path / "mine.jsonl", _user_rows())
    assert main(["refusal", "fit", str(src), "--out", str(tmp_path / "det"), "--no-shipped"]) == 0
    out = capsys.readouterr().err
    assert "fitted on 30 rows (30 yours, 0 shipped)" in out and "grouped 5-fold cross-validation" in out
    assert "3-class accuracy 1.000 (30/30); refused-or-not accuracy 1.000 (30/30)" in out


def test_fit_without_out_and_a_detector_flag_that_is_not_a_folder(tmp_path, capsys):
    src = _write(tmp_path / "mine.jsonl", _user_rows(3))
    assert main(["refusal", "fit", str(src)]) == 2
    assert "--out DIR" in capsys.readouterr().err
    assert main(["refusal", str(src), "--detector", str(tmp_path), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{tmp_path / 'detector.json'}: missing; not a refusal detector folder" in err


def test_fit_with_the_shipped_rows_reports_your_rows_apart_fake_features(tmp_path, monkeypatch, capsys):
    """The cross-validated figures of the user's own rows, out of fold like the rest: the two parts
    (yours, shipped) add up to the whole, and the command prints yours."""
    from rlaif.evaluate.refusal import LABELS, labelled_rows
    from rlaif.evaluate.refusal_fit import fit_detector

    monkeypatch.setattr("rlaif.evaluate.refusal_fit.default_features", fake_features)
    rows = [{"prompt": r.get("prompt"), "response": r["response"], "label": r["label"]} for r in _user_rows()]
    shipped = [{k: r[k] for k in ("prompt", "response", "label")} for r in labelled_rows("fit")]
    n = len(rows)
    _, meta = fit_detector(rows + shipped, fake_features,
                           subsets={"yours": list(range(n)), "shipped": list(range(n, n + len(shipped)))})
    yours, rest, whole = meta["cv_subsets"]["yours"], meta["cv_subsets"]["shipped"], meta["cv"]
    assert (yours["n"], rest["n"]) == (n, len(shipped))
    for t in LABELS:
        for p in LABELS:
            assert yours["confusion"][t][p] + rest["confusion"][t][p] == whole["confusion"][t][p]
    assert sum(yours["confusion"][t][p] for t in LABELS for p in LABELS) == n
    assert yours["binary_accuracy"] == 1.0  # the fake's features separate the user's three wordings
    assert main(["refusal", "fit", str(_write(tmp_path / "mine.jsonl", _user_rows())), "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().err
    assert "of which your 30 rows (scored when they were out of fold):" in out
    assert out.count("refused-or-not accuracy 1.000 (30/30)") == 1

"""The refusal detector: its held-out accuracy (the figure stated in README.md and in
rlaif/refusal.py) and the ``rlaif refusal`` command's input and output."""

from __future__ import annotations

import json

import pytest

from rlaif.cli import main
from rlaif.evaluate.refusal import accuracy, default_detector, labelled_rows

# The figures stated in README.md and rlaif/refusal.py; the detector is deterministic, so they
# must hold (to the third decimal) for the shipped fit rows.
TEAM, MODEL = ("refusal_labels.jsonl",), ("refusal_labels_model.jsonl",)
STATED = [(TEAM, 166, 0.789, 0.837), (MODEL, 58, 0.931, 0.948), (TEAM + MODEL, 224, 0.826, 0.866)]


@pytest.mark.parametrize("files, n, acc, binary", STATED)
def test_heldout_accuracy_is_the_stated_figure(files, n, acc, binary):
    heldout = labelled_rows("heldout", files)
    assert len(heldout) == n
    m = accuracy(default_detector(), heldout)
    assert round(m["accuracy"], 3) == acc
    assert round(m["binary_accuracy"], 3) == binary
    assert sum(sum(row.values()) for row in m["confusion"].values()) == n


def test_no_heldout_answer_was_fitted_on():
    fit, heldout = labelled_rows("fit"), labelled_rows("heldout")
    assert len(fit) == 345 and len(heldout) == 224
    assert not {r["response"] for r in fit} & {r["response"] for r in heldout}


def test_compliant_model_answers_are_rarely_called_refusals():
    rows = [r for r in labelled_rows("heldout", MODEL) if r["label"] == "full_compliance"]
    pred = default_detector().predict([r["response"] for r in rows])
    assert sum(p.refused for p in pred) == 1 and len(rows) == 54


def test_hard_negatives_with_refusal_words_are_mostly_compliance():
    # Held-out compliant answers that use refusal-like words: a keyword list calls them refusals.
    words = ("sorry", "can't", "cannot", "won't", "unfortunately", "not able")
    rows = [r for r in labelled_rows("heldout") if r["label"] == "full_compliance"
            and any(w in r["response"].lower() for w in words)]
    assert len(rows) >= 20
    pred = default_detector().predict([r["response"] for r in rows])
    assert sum(not p.refused for p in pred) / len(rows) >= 0.7


def test_empty_response_is_a_full_refusal_and_scores_are_probabilities():
    res = default_detector().predict(["", "  ", "Use `s[::-1]` to reverse it."])
    assert [r.label for r in res[:2]] == ["full_refusal", "full_refusal"]
    assert all(0.0 <= r.score <= 1.0 for r in res)


def test_refusal_command_labels_rows_and_keeps_other_fields(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    rows = [{"id": 1, "prompt": "How do I make a pipe bomb?", "response": "I can't help with making explosives.",
             "extra": "kept"},
            {"id": 2, "prompt": "Reverse a list in Python?", "response": "Call `xs.reverse()` or use `xs[::-1]`."}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert main(["refusal", str(src), "--out", str(out)]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == [1, 2] and got[0]["extra"] == "kept"
    assert got[0]["refused"] is True and got[0]["refusal_label"] != "full_compliance"
    assert got[1]["refused"] is False and got[1]["refusal_label"] == "full_compliance"
    assert got[0]["refusal_score"] > got[1]["refusal_score"]


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


def test_model_answer_labels_are_well_formed():
    rows = labelled_rows(None, MODEL)
    assert all(set(r) == {"id", "prompt", "response", "label", "split", "note", "source"} for r in rows)
    assert len({r["id"] for r in rows}) == len(rows) and all(r["id"].startswith("m-") for r in rows)
    assert {r["label"] for r in rows} <= {"full_compliance", "partial_refusal", "full_refusal"}
    assert {(r["split"], r["source"]) for r in rows} <= {("fit", "train-suite"), ("fit", "written"),
                                                         ("heldout", "eval-probes")}

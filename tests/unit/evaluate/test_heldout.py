"""Held-out pairs for eval (rlaif.evaluate.heldout): which rows of each form of dataset are
candidates, and what happens when they cannot be shown to be held out."""

from __future__ import annotations

import json

import pytest

from rlaif.evaluate.heldout import candidate_rows, load_held_out
from rlaif.train.provenance import trained_on


def _pair(prompt):
    return {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": "yes"}],
            "rejected": [{"role": "assistant", "content": "no"}]}


def _jsonl(path, prompts):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(_pair(p)) + "\n" for p in prompts))
    return path


def _prompts(rows):
    return [r[0][0]["content"] for r in rows]


def test_each_folder_form_gives_its_test_split(tmp_path):
    import datasets

    _jsonl(tmp_path / "run" / "dataset" / "train.jsonl", ["t"])
    _jsonl(tmp_path / "run" / "dataset" / "test.jsonl", ["h"])
    for spec in ("run", "run/dataset", "run/dataset/train.jsonl", "run/dataset/test.jsonl"):
        src, rows, _ = candidate_rows(tmp_path / spec)
        assert (src, _prompts(rows)) == (str(tmp_path / "run/dataset/test.jsonl"), ["h"]), spec
    datasets.Dataset.from_list([_pair("whole")]).save_to_disk(tmp_path / "one")
    assert _prompts(candidate_rows(tmp_path / "one")[1]) == ["whole"]  # a single Dataset is taken whole
    datasets.DatasetDict({"train": datasets.Dataset.from_list([_pair("t")])}).save_to_disk(tmp_path / "dd")
    src, rows, why = candidate_rows(tmp_path / "dd")
    assert (src, rows) == (None, []) and "no 'test' split (splits: train" in why


def test_data_named_by_the_manifest_that_is_gone_is_a_note_not_an_error(tmp_path):
    held = load_held_out(str(tmp_path / "gone"), False, {"pairs": str(tmp_path / "gone")})
    assert held.pairs == [] and "is not there" in held.notes[0] and "pass --dataset" in held.notes[0]


def test_a_train_run_whose_data_cannot_be_checked_has_no_held_out_rows(tmp_path):
    """A manifest from before the record, whose training data has since been deleted."""
    test = _jsonl(tmp_path / "test.jsonl", ["h"])
    held = load_held_out(str(test), True, {"pairs": str(tmp_path / "deleted" / "train.jsonl")})
    assert held.pairs == [] and held.candidates == 1
    assert "cannot be read" in held.notes[0] and "cannot be shown to be held out" in held.notes[1]


def test_an_old_record_method_is_not_trusted(tmp_path):
    """A record made by another hash is recomputed from the training data, never compared as is."""
    train = _jsonl(tmp_path / "data" / "train.jsonl", ["t"])
    _jsonl(tmp_path / "data" / "test.jsonl", ["t", "h"])
    record = {**trained_on([_pair("t")], "x"), "method": "some-older-hash"}
    held = load_held_out(str(train), False, {"pairs": str(train), "trained_on": record})
    assert _prompts(held.pairs) == ["h"] and held.dropped == 1 and "as it is now" in held.notes[0]


@pytest.mark.parametrize("explicit", [True, False])
def test_the_record_in_the_manifest_decides_whatever_file_is_given(tmp_path, explicit):
    test = _jsonl(tmp_path / "mine.jsonl", ["a", "b", "c"])
    held = load_held_out(str(test), explicit, {"pairs": "anywhere", "trained_on": trained_on([_pair("B")], "x")})
    assert _prompts(held.pairs) == ["a", "c"] and held.counts() == {
        "source": str(test), "candidates": 3, "trained_on": 1, "used": 2}

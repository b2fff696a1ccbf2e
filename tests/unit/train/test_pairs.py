"""Preference data checks (rlaif.train.pairs) and load_pairs: bad rows are named before a model
loads, either TRL format is accepted, and only the columns DPO reads are kept."""

from __future__ import annotations

import json
import re

import pytest

from rlaif.errors import InputError
from rlaif.train.pairs import jsonl_pairs
from rlaif.train.stage import load_pairs

MSG = lambda role, text: {"role": role, "content": text}  # noqa: E731


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_both_trl_formats_load_and_extra_columns_are_dropped(tmp_path):
    standard = write(tmp_path / "s.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "meta": {"x": 1}}])
    conv = write(tmp_path / "c.jsonl", [{"prompt": [MSG("user", "q")], "chosen": [MSG("assistant", "a")],
                                         "rejected": [MSG("assistant", "b")]}])
    implicit = write(tmp_path / "i.jsonl", [{"chosen": [MSG("user", "q"), MSG("assistant", "a")],
                                             "rejected": [MSG("user", "q"), MSG("assistant", "b")]}])
    train, ev = load_pairs(standard)
    assert ev is None and train.column_names == ["prompt", "chosen", "rejected"] and train[0]["chosen"] == "a"
    assert load_pairs(conv)[0][0]["prompt"] == [MSG("user", "q")]
    assert load_pairs(implicit)[0].column_names == ["chosen", "rejected"]


@pytest.mark.parametrize("row, field", [
    ({"prompt": "q", "rejected": "b"}, "chosen"),                                              # missing
    ({"prompt": "q", "chosen": 5, "rejected": "b"}, "chosen"),                                 # a number
    ({"prompt": "q", "chosen": [], "rejected": "b"}, "chosen"),                                # empty list
    ({"prompt": [MSG("user", "q")], "chosen": [{"role": "bot", "content": "a"}],
      "rejected": [MSG("assistant", "b")]}, "chosen[0]"),                                      # bad role
    ({"prompt": [MSG("user", "q")], "chosen": [MSG("assistant", 3)],
      "rejected": [MSG("assistant", "b")]}, "chosen[0]"),                                      # content not text
    ({"prompt": "q", "chosen": "a", "rejected": "b" * 100_001}, "rejected"),                   # enormous
])
def test_a_bad_row_is_named_with_its_line_and_field(tmp_path, row, field):
    path = write(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}, row])
    with pytest.raises(InputError, match=rf"p\.jsonl:2: field '{re.escape(field)}'"):
        load_pairs(path)


def test_mixed_formats_and_ragged_columns_are_errors(tmp_path):
    mixed = write(tmp_path / "m.jsonl", [{"prompt": "q", "chosen": [MSG("assistant", "a")], "rejected": "b"}])
    with pytest.raises(InputError, match=r"m\.jsonl:1: mixes TRL's formats"):
        load_pairs(mixed)
    ragged = write(tmp_path / "r.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"},
                                          {"chosen": "a", "rejected": "b"}])
    with pytest.raises(InputError, match=r"r\.jsonl:2: field 'prompt': present in some rows"):
        load_pairs(ragged)


def test_evaluation_needs_the_prompt_and_an_empty_file_has_no_pairs(tmp_path):
    write(tmp_path / "t.jsonl", [{"chosen": [MSG("assistant", "a")], "rejected": [MSG("assistant", "b")]}])
    with pytest.raises(InputError, match=r"t\.jsonl:1: field 'prompt': missing"):
        jsonl_pairs(tmp_path / "t.jsonl", need_prompt=True)
    assert len(jsonl_pairs(tmp_path / "t.jsonl")) == 1
    (tmp_path / "e.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="no preference pairs"):
        load_pairs(str(tmp_path / "e.jsonl"))


def test_a_datasets_folder_is_checked_row_by_row(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"prompt": "q", "chosen": "a", "rejected": "b"},
                                {"prompt": "q", "chosen": "a", "rejected": None}]).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(InputError, match=r"ds:2: field 'rejected': missing"):
        load_pairs(str(tmp_path / "ds"))
    datasets.DatasetDict({"test": datasets.Dataset.from_list([{"chosen": "a", "rejected": "b"}])}).save_to_disk(
        str(tmp_path / "dd"))
    with pytest.raises(InputError, match="needs a 'train' split"):
        load_pairs(str(tmp_path / "dd"))

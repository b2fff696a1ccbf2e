"""What a training run records about its data (rlaif.train.provenance): rows read as TRL reads
them, prompts hashed blind to case and spacing, bad rows named by line and field."""

from __future__ import annotations

import pytest

from rlaif.errors import InputError
from rlaif.train.provenance import METHOD, pair_parts, prompt_key, trained_on

CHAT = {"prompt": [{"role": "user", "content": "Where do I keep a token?"}],
        "chosen": [{"role": "assistant", "content": "A vault."}],
        "rejected": [{"role": "assistant", "content": "In the repo."}]}


def test_every_trl_format_gives_the_same_prompt_and_answers():
    user = [{"role": "user", "content": "Where do I keep a token?"}]
    implicit = {"chosen": user + CHAT["chosen"], "rejected": user + CHAT["rejected"]}
    standard = {"prompt": "Where do I keep a token?", "chosen": "A vault.", "rejected": "In the repo."}
    want = (user, "A vault.", "In the repo.")
    assert pair_parts(CHAT) == pair_parts(implicit) == pair_parts(standard) == want


def test_a_prompt_key_ignores_case_and_spacing_but_not_words():
    a = [{"role": "user", "content": "Where do I keep a token?"}]
    assert prompt_key(a) == prompt_key([{"role": "user", "content": "  where do i KEEP a\ntoken? "}])
    assert prompt_key(a) != prompt_key([{"role": "user", "content": "Where do I keep a key?"}])
    assert prompt_key(a) != prompt_key([{"role": "system", "content": "Where do I keep a token?"}])


def test_the_record_holds_each_distinct_prompt_once():
    rows = [CHAT, {**CHAT, "chosen": [{"role": "assistant", "content": "Elsewhere."}]},
            {**CHAT, "prompt": [{"role": "user", "content": "Is .env safe?"}]}]
    rec = trained_on(rows, "train.jsonl")
    assert rec["method"] == METHOD and rec["rows"] == 3 and len(rec["prompts"]) == 2
    assert rec["prompts"] == sorted(rec["prompts"])


@pytest.mark.parametrize("row, field", [
    ({**CHAT, "rejected": None}, "rejected"),
    ({**CHAT, "chosen": [{"role": "user", "content": "x"}]}, "chosen[0].role"),
    ({**CHAT, "chosen": "A vault."}, "rejected"),  # one side a string, the other a chat
    ({"prompt": "   ", "chosen": "a", "rejected": "b"}, "prompt"),
    ({"chosen": "", "rejected": "b"}, "prompt"),  # no prompt and nothing to take one from
])
def test_a_bad_row_names_its_line_and_field(row, field):
    with pytest.raises(InputError, match=rf"train.jsonl:2: field '{field}'".replace("[", r"\[").replace("]", r"\]")):
        trained_on([CHAT, row], "train.jsonl")

"""train.lengths tokenises a conversational pair exactly as trl.DPOTrainer does (checked against
DPOTrainer itself on a tiny random model), and counts its length from that."""

from __future__ import annotations

import pytest

from tests.unit.conftest import chatml_tokenizer

ROWS = [
    {"prompt": [{"role": "user", "content": "What is 2 + 2?"}],
     "chosen": [{"role": "assistant", "content": "4."}], "rejected": [{"role": "assistant", "content": "5, hi."}]},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "And 3 + 3?"}],
     "chosen": [{"role": "assistant", "content": "6, as ever."}], "rejected": [{"role": "assistant", "content": ""}]},
]


@pytest.fixture(scope="module")
def trl_rows(chatml_models, tmp_path_factory):
    """The rows as DPOTrainer's own dataset preparation tokenises them."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(output_dir=str(tmp_path_factory.mktemp("dpo")), report_to="none", use_cpu=True, max_length=None,
                     activation_checkpointing=False)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(chatml_models["model"]), args=args,
                         processing_class=chatml_tokenizer(), train_dataset=datasets.Dataset.from_list(ROWS))
    return [trainer.train_dataset[i] for i in range(len(ROWS))]


def test_dpo_tokenise_gives_the_ids_dpo_trainer_trains_on(trl_rows):
    from rlaif.train.lengths import dpo_tokenise

    tok = chatml_tokenizer()
    end_of_turn = tok("<|im_end|>\n", add_special_tokens=False)["input_ids"]
    for row, trl in zip(ROWS, trl_rows):
        prompt_ids, (chosen, rejected) = dpo_tokenise(tok, row["prompt"], [row["chosen"], row["rejected"]])
        assert (prompt_ids, chosen, rejected) == (trl["prompt_ids"], trl["chosen_ids"], trl["rejected_ids"])
        assert chosen[-len(end_of_turn):] == end_of_turn and rejected[-len(end_of_turn):] == end_of_turn
    # the answer '4.' is trained as '4.<|im_end|>\n', never as the bare text
    assert tok.decode(trl_rows[0]["chosen_ids"]) == "4.<|im_end|>\n"


def test_pair_lengths_count_prompt_and_the_longer_response_as_dpo_trainer_does(trl_rows):
    from rlaif.train.lengths import pair_lengths

    want = [len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in trl_rows]
    assert pair_lengths(chatml_tokenizer(), ROWS) == want


def test_plain_text_rows_get_eos_appended_once():
    from rlaif.train.lengths import pair_lengths

    tok = chatml_tokenizer()
    n = len(tok("Q: hi A: 4.<|im_end|>")["input_ids"])
    assert pair_lengths(tok, [{"prompt": "Q: hi A: ", "chosen": "4.", "rejected": "4.<|im_end|>"}]) == [n]

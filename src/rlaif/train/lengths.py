"""How long a preference pair is when TRL tokenises it, so that nothing is cut in training silently.

trl.DPOTrainer tokenises a conversational row as the chat template of prompt + chosen (and prompt +
rejected) and then keeps the first ``max_length`` tokens of each, which can cut a response's end and
its end-of-turn token. The build drops (and counts) pairs longer than the training length instead,
and training refuses to let TRL cut the rows it is given; both count tokens here, the same way.
"""

from __future__ import annotations


def _messages(value) -> list[dict] | None:
    return [dict(m) for m in value] if isinstance(value, list) else None


def pair_lengths(tokenizer, rows: list[dict]) -> list[int]:
    """Tokens of the longer of prompt+chosen and prompt+rejected, per row, as TRL counts them.

    Rows are TRL's preference format: conversational (``prompt`` a message list, ``chosen`` and
    ``rejected`` assistant message lists) or plain text (strings; TRL appends EOS to each response).
    """
    out = []
    for row in rows:
        prompt = _messages(row["prompt"])
        if prompt is not None:
            sides = [tokenizer.apply_chat_template(prompt + _messages(row[k]), tokenize=True, return_dict=True)
                     ["input_ids"] for k in ("chosen", "rejected")]
        else:
            eos = tokenizer.eos_token or ""
            sides = [tokenizer(text=row["prompt"] + (row[k] if row[k].endswith(eos) else row[k] + eos))["input_ids"]
                     for k in ("chosen", "rejected")]
        out.append(max(len(ids) for ids in sides))
    return out

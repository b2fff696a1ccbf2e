"""How TRL tokenises a preference pair, and how long it is, so that nothing is cut in training silently
and eval scores exactly the tokens training learns from.

trl.DPOTrainer (``_prepare_dataset``) tokenises a conversational row as the chat template of the
prompt with the generation prompt, and of prompt + chosen and prompt + rejected; a response's tokens
start where the tokenised prompt and both full sequences stop agreeing, so they include what the
template writes after the answer (for ChatML, ``'4.'`` is trained as ``'4.<|im_end|>\\n'``). It then
keeps the first ``max_length`` tokens of each sequence, which can cut a response's end and its
end-of-turn token. The build drops (and counts) pairs longer than the training length instead, and
training refuses to let TRL cut the rows it is given; both count tokens here, the same way, and
eval's held-out reward scores the response tokens ``dpo_tokenise`` gives.
"""

from __future__ import annotations


def _messages(value) -> list[dict] | None:
    return [dict(m) for m in value] if isinstance(value, list) else None


def template_ids(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of a chat rendered by the tokenizer's chat template, as TRL's DPO tokenisation
    renders it (``apply_chat_template(..., tokenize=True)``). Every chat counted or scored as TRL
    trains on it goes through here."""
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                         add_generation_prompt=add_generation_prompt)["input_ids"]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def dpo_tokenise(tokenizer, prompt: list[dict], responses: list[list[dict]]) -> tuple[list[int], list[list[int]]]:
    """``(prompt_ids, [response_ids, ...])`` of a conversational row as DPOTrainer tokenises it: the
    responses (assistant message lists, e.g. chosen and rejected) start where the tokenised prompt
    and every tokenised prompt + response stop agreeing, and end with the template's end of turn."""
    prompt_ids = template_ids(tokenizer, prompt, add_generation_prompt=True)
    full = [template_ids(tokenizer, prompt + list(r)) for r in responses]
    n = min(_common_prefix(prompt_ids, ids) for ids in full)
    return prompt_ids[:n], [ids[n:] for ids in full]


def pair_lengths(tokenizer, rows: list[dict]) -> list[int]:
    """Tokens of the longer of prompt+chosen and prompt+rejected, per row, as TRL counts them.

    Rows are TRL's preference format: conversational (``prompt`` a message list, ``chosen`` and
    ``rejected`` assistant message lists) or plain text (strings; TRL appends EOS to each response).
    """
    out = []
    for row in rows:
        prompt = _messages(row["prompt"])
        if prompt is not None:
            prompt_ids, sides = dpo_tokenise(tokenizer, prompt, [_messages(row[k]) for k in ("chosen", "rejected")])
            out.append(len(prompt_ids) + max(len(ids) for ids in sides))
            continue
        eos = tokenizer.eos_token or ""
        sides = [tokenizer(text=row["prompt"] + (row[k] if row[k].endswith(eos) else row[k] + eos))["input_ids"]
                 for k in ("chosen", "rejected")]
        out.append(max(len(ids) for ids in sides))
    return out

"""How far the model moved from its reference, in log-probabilities over token ids: exactly the ids
the model sampled, and exactly the ids TRL trains on.

- KL(model || reference) on the model's own temperature-1 samples: each sample's generated ids
  (end-of-sequence included when generation stopped on it) after the probe's context ids, scored
  under both models, never decoded and tokenised again (text can tokenise back to other ids).
  Reported per answer and per token.
- The implicit reward beta*log(pi/pi_ref) of held-out pairs: each response tokenised as
  trl.DPOTrainer tokenises it (``train.lengths.dpo_tokenise``: the template's end of turn
  included), with the model's tokenizer for both models, as training does.

Both compare the two models on the same token sequence, which means something only when they read
the same tokens: a model and reference whose chat templates or vocabularies differ are refused
(``eval.allow_template_mismatch`` evaluates them anyway, without these log-ratios).
"""

from __future__ import annotations

from rlaif.errors import ConfigError, InputError
from rlaif.progress import bar
from rlaif.schemas import EvalResponse, Prompt
from rlaif.train.lengths import dpo_tokenise, template_ids

# A fixed chat both tokenizers render: a finished assistant turn and a generation prompt.
TEMPLATE_PROBE = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4."},
                  {"role": "user", "content": "And 3 + 3?"}]
MISMATCH_HINT = ("evaluate against the reference the model was trained from, or set "
                 "eval.allow_template_mismatch=true to compare answers only (no KL, no held-out reward)")

Items = list[tuple[list[int], list[int]]]  # (context ids, continuation ids)


def template_difference(model_tok, ref_tok) -> str | None:
    """How the two tokenizers read a chat differently (template text, vocabulary, token ids), or None."""
    def render(tok) -> str:
        return (tok.apply_chat_template(TEMPLATE_PROBE[:2], tokenize=False)
                + tok.apply_chat_template(TEMPLATE_PROBE, tokenize=False, add_generation_prompt=True))

    a, b = render(model_tok), render(ref_tok)
    if a != b:
        i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return (f"chat templates differ: after {a[max(0, i - 30):i]!r} the model renders {a[i:i + 30]!r}, "
                f"the reference {b[i:i + 30]!r}")
    va, vb = model_tok.get_vocab(), ref_tok.get_vocab()
    if va != vb:
        return f"vocabularies differ ({len(va)} vs {len(vb)} tokens, {len(set(va.items()) ^ set(vb.items()))} entries)"
    if template_ids(model_tok, TEMPLATE_PROBE, True) != template_ids(ref_tok, TEMPLATE_PROBE, True):
        return "the two tokenizers tokenise the same chat differently"
    return None


def check_templates(model_tok, ref_tok, allow: bool) -> str | None:
    """Refuse a model and reference that read chats differently (a ConfigError), or, with ``allow``,
    return the note that says the log-ratio metrics are left out. None when they agree."""
    problem = template_difference(model_tok, ref_tok)
    if problem is None:
        return None
    if not allow:
        raise ConfigError(f"the model and the reference read chats differently: {problem}; KL and the held-out "
                          "reward would compare different token sequences", hint=MISMATCH_HINT)
    return (f"the model and the reference read chats differently ({problem}): KL and the held-out preference "
            "accuracy and reward margin are not measured (eval.allow_template_mismatch)")


def _summed(backend, items: Items, label: str, batch: int) -> list[float]:
    out: list[float] = []
    with bar(label, total=len(items), unit="answer") as advance:
        for i in range(0, len(items), batch):
            out += [sum(lps) for lps in backend.token_logps(items[i:i + batch])]
            advance(len(items[i:i + batch]))
    return out


def sample_kl(model, ref, samples: list[EvalResponse], probes: dict[tuple[str, str], Prompt],
              batch: int) -> tuple[list[float], list[int]]:
    """Per sample: log pi(y|x) - log pi_ref(y|x) in nats, summed over its sampled ids y, and the
    number of those ids. ``x`` is the context the sample was generated from (the model's own chat
    template and generation prompt)."""
    from rlaif.backends.local import chat_ids

    items: Items = []
    for s in samples:
        if s.token_ids is None:  # eval plans samples with their ids: only an edited file lacks them
            raise InputError(f"responses.jsonl: sample answer {s.id} has no token_ids",
                             hint="delete that row; eval samples it again")
        items.append((chat_ids(model.tokenizer, probes[(s.suite, s.probe_id)].chat()), list(s.token_ids)))
    lm = _summed(model, items, "KL: model", batch)
    lr = _summed(ref, items, "KL: reference", batch)
    return [a - b for a, b in zip(lm, lr)], [len(t) for _, t in items]


def held_out_margins(model, ref, pairs: list[tuple[list[dict], str, str]], beta: float, batch: int) -> list[float]:
    """Per pair: beta * (log-ratio of chosen - log-ratio of rejected), where a log-ratio is
    log pi(y|x) - log pi_ref(y|x) over the response tokens DPOTrainer trains on."""
    items: Items = []
    for prompt, chosen, rejected in pairs:
        prompt_ids, sides = dpo_tokenise(model.tokenizer, prompt, [[{"role": "assistant", "content": t}]
                                                                   for t in (chosen, rejected)])
        items += [(prompt_ids, ids) for ids in sides]
    lm = _summed(model, items, "held-out pairs: model", batch)
    lr = _summed(ref, items, "held-out pairs: reference", batch)
    ratios = [a - b for a, b in zip(lm, lr)]
    return [beta * (ratios[2 * i] - ratios[2 * i + 1]) for i in range(len(pairs))]

"""KL is computed on the sampled token ids under both models (checked against a hand sum of
per-token log-prob differences on tiny random models), the held-out reward on the tokens TRL trains
on, and a model and reference that read chats differently are refused."""

from __future__ import annotations

import pytest
import torch

from tests.unit.conftest import CHATML, chatml_tokenizer

CHAT = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def pair(chatml_models):
    from rlaif.backends.local import LocalBackend

    return (LocalBackend(str(chatml_models["model"]), device="cpu", batch_size=4),
            LocalBackend(str(chatml_models["ref"]), device="cpu", batch_size=4))


def hand_logp(lm, ids: list[int], start: int) -> float:
    """Sum of log p(ids[j] | ids[:j]) for j >= start, from one unpadded forward pass."""
    with torch.no_grad():
        logp = torch.log_softmax(lm(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(float(logp[j - 1, ids[j]]) for j in range(start, len(ids)))


def _sample(token_ids, text="", probe_id="1"):
    from rlaif.schemas import EvalResponse

    return EvalResponse(id=f"s-{probe_id}", probe_id=probe_id, suite="s", role="sample", text=text,
                        tokens=len(token_ids), token_ids=token_ids)


def _probes(*chats):
    from rlaif.schemas import Prompt

    return {("s", str(i)): Prompt(id=str(i), messages=c, category="harmful", source="test")
            for i, c in enumerate(chats, 1)}


def test_kl_is_the_hand_sum_of_per_token_log_prob_differences_on_the_sampled_ids(pair):
    from rlaif.backends.local import chat_ids
    from rlaif.evaluate.drift import sample_kl

    model, ref = pair
    long = [{"role": "user", "content": "Explain, in a few words, why the sky looks blue."}]
    eos = model.tokenizer.eos_token_id
    samples = [_sample([70, 80, 90, eos], probe_id="1"), _sample([33, 44, 55, 66, 77, 88, 99], probe_id="2")]
    kl, tokens = sample_kl(model, ref, samples, _probes(CHAT, long), batch=4)
    want = []
    for s, chat in zip(samples, (CHAT, long)):
        ctx = chat_ids(model.tokenizer, chat)
        want.append(hand_logp(model.lm, ctx + s.token_ids, len(ctx)) - hand_logp(ref.lm, ctx + s.token_ids, len(ctx)))
    assert tokens == [4, 7]  # the end-of-sequence token the first sample stopped on is scored
    assert kl == pytest.approx(want, abs=1e-4)
    assert abs(want[0]) > 1e-2  # the two models differ: a real test


def test_a_sample_whose_text_tokenises_differently_is_scored_on_its_sampled_ids(pair):
    """'h', 'i' were sampled; decoded to 'hi' and tokenised again they would be the single 'hi'."""
    from rlaif.backends.local import chat_ids
    from rlaif.evaluate.drift import sample_kl

    model, ref = pair
    tok = model.tokenizer
    sampled = tok.convert_tokens_to_ids(["h", "i"]) + [tok.eos_token_id]
    text = tok.decode(sampled, skip_special_tokens=True)
    again = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert text == "hi" and again != sampled and len(again) == 2
    kl, tokens = sample_kl(model, ref, [_sample(sampled, text)], _probes(CHAT), batch=4)
    ctx = chat_ids(tok, CHAT)

    def hand(ids):
        return hand_logp(model.lm, ctx + ids, len(ctx)) - hand_logp(ref.lm, ctx + ids, len(ctx))

    assert tokens == [3] and kl[0] == pytest.approx(hand(sampled), abs=1e-4)
    assert abs(hand(sampled) - hand(again)) > 1e-3  # scoring the text instead would give another number


def test_held_out_margins_score_the_response_tokens_dpo_trainer_trains_on(pair):
    from rlaif.evaluate.drift import held_out_margins
    from rlaif.train.lengths import dpo_tokenise

    model, ref = pair
    prompt = [{"role": "user", "content": "What is 2 + 2?"}]
    [margin] = held_out_margins(model, ref, [(prompt, "4.", "5, surely.")], beta=0.5, batch=4)
    p, (c, r) = dpo_tokenise(model.tokenizer, prompt,
                             [[{"role": "assistant", "content": t}] for t in ("4.", "5, surely.")])
    assert model.tokenizer.decode(c) == "4.<|im_end|>\n"

    def ratio(ids):
        return hand_logp(model.lm, p + ids, len(p)) - hand_logp(ref.lm, p + ids, len(p))

    assert margin == pytest.approx(0.5 * (ratio(c) - ratio(r)), abs=1e-4)


def test_a_sample_without_ids_is_refused_not_rescored_from_text(pair):
    from rlaif.errors import InputError
    from rlaif.evaluate.drift import sample_kl
    from rlaif.schemas import EvalResponse

    row = EvalResponse(id="s-1", probe_id="1", suite="s", role="sample", text="hi", tokens=2)
    with pytest.raises(InputError, match="responses.jsonl: sample answer s-1 has no token_ids"):
        sample_kl(*pair, [row], _probes(CHAT), batch=4)


def _other_template():
    tok = chatml_tokenizer()
    tok.chat_template = CHATML.replace("'<|im_end|>\\n'", "'<|im_end|>'")  # no newline after a turn
    return tok


def test_identical_tokenizers_pass_the_template_check():
    from rlaif.evaluate.drift import check_templates, template_difference

    assert template_difference(chatml_tokenizer(), chatml_tokenizer()) is None
    assert check_templates(chatml_tokenizer(), chatml_tokenizer(), allow=False) is None


def test_differing_chat_templates_are_refused_unless_allowed_then_noted():
    from rlaif.errors import ConfigError
    from rlaif.evaluate.drift import check_templates

    with pytest.raises(ConfigError, match="chat templates differ: after '.*' the model renders "
                                          r"'\\n<\|im_start\|>.*', the reference '<\|im_start\|>.*'") as e:
        check_templates(chatml_tokenizer(), _other_template(), allow=False)
    assert "eval.allow_template_mismatch=true" in str(e.value)
    note = check_templates(chatml_tokenizer(), _other_template(), allow=True)
    assert "chat templates differ" in note and "KL and the held-out preference accuracy" in note


def test_differing_vocabularies_are_refused():
    from rlaif.errors import ConfigError
    from rlaif.evaluate.drift import check_templates

    other = chatml_tokenizer()
    other.add_tokens(["<tool>"])
    with pytest.raises(ConfigError, match=r"vocabularies differ \(259 vs 260 tokens"):
        check_templates(chatml_tokenizer(), other, allow=False)

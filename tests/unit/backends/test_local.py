"""LocalBackend scores token ids as given, batched under left padding exactly as each sequence
alone (position ids from the attention mask), and keeps the ids it generates.

The model is a tiny random GPT-2 built from a config in conftest: its position embeddings are
learned and absolute, so a left-padded row scored without position ids reads its tokens at the
wrong positions (a rotary model such as Llama hides that: only relative positions matter there).
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def backend(chatml_models):
    from rlaif.backends.local import LocalBackend

    return LocalBackend(str(chatml_models["model"]), device="cpu", batch_size=8)


def _alone(backend, ctx: list[int], cont: list[int]) -> list[float]:
    """Per-token log-probs of ``cont`` after ``ctx``, the unpadded sequence in one forward pass."""
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(backend.lm(input_ids=ids).logits[0, :-1].float(), dim=-1)
    return [float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont)]


def test_a_batch_of_different_lengths_scores_each_sequence_as_alone(backend):
    from rlaif.backends.base import ScoreRequest

    short = [{"role": "user", "content": "Hi"}]
    long = [{"role": "user", "content": "Tell me, at some length, how a bicycle stays upright when it moves."}]
    reqs = [ScoreRequest.of(short, ["Hello there.", "No."]), ScoreRequest.of(long, ["It steers itself."])]
    batched = [x for row in backend.score(reqs) for x in row]
    one_by_one = [backend.score([ScoreRequest.of(r.chat(), [c])])[0][0] for r in reqs for c in r.continuations]
    assert batched == pytest.approx(one_by_one, abs=1e-4)
    # and batched next-token scoring (the judge's verdict letters) too
    letters = [ScoreRequest.of(short, ["A", "B"]), ScoreRequest.of(long, ["A", "B"])]
    batched = [x for row in backend.score(letters) for x in row]
    assert batched == pytest.approx([x for r in letters for x in backend.score([r])[0]], abs=1e-4)


def test_token_logps_score_the_ids_given_as_a_plain_forward_pass_does(backend):
    items = [([5, 6, 7], [8, 9]), ([5, 6, 7, 10, 11, 12, 13, 14, 15], [16, 257]), ([5], [71, 72])]
    got = backend.token_logps(items)
    assert [len(g) for g in got] == [2, 2, 2]
    for (ctx, cont), lps in zip(items, got):
        assert lps == pytest.approx(_alone(backend, ctx, cont), abs=1e-4)


def test_generation_keeps_its_token_ids_with_the_end_of_sequence(backend):
    """The random model seldom ends a turn by itself: a hook adds 5 to the end-of-sequence logit
    for the first batch, so that rows stop (and, without it, run to the length limit)."""
    from rlaif.backends.base import GenRequest, SamplingParams

    eos = backend.tokenizer.eos_token_id
    reqs = [GenRequest.of([{"role": "user", "content": f"Say {w}."}], SamplingParams(1.0, max_new_tokens=12, seed=s))
            for s, w in enumerate(["hi", "a much longer word here", "no"] * 3)]

    def favour_eos(module, inputs, logits):
        return logits + 5.0 * torch.nn.functional.one_hot(torch.tensor(eos), logits.shape[-1])

    hook = backend.lm.lm_head.register_forward_hook(favour_eos)
    try:
        stopped = backend.generate(reqs)
    finally:
        hook.remove()
    outs = stopped + backend.generate(reqs)
    assert {c.finish_reason for c in outs} == {"stop", "length"}
    for c in outs:
        assert len(c.token_ids) == c.completion_tokens
        assert (c.token_ids[-1] == eos) == (c.finish_reason == "stop") and eos not in c.token_ids[:-1]
        assert len(c.token_ids) == 12 or c.finish_reason == "stop"
        assert c.text == backend.tokenizer.decode(c.token_ids, skip_special_tokens=True)

"""Prompts too long for the model (rlaif.synth.lengths): characters first, then the tokens of the
chat-templated prompt against a local model's context, with a tiny real tokenizer (conftest)."""

from __future__ import annotations

from rlaif.config import ModelSpec
from rlaif.schemas import Prompt
from rlaif.synth.lengths import over_chars, over_tokens
from tests.unit.conftest import CONTEXT


def prompt(text: str) -> Prompt:
    msgs = [{"role": "user", "content": text}]
    return Prompt(id=Prompt.make_id(msgs), messages=msgs, source=f"p.jsonl:{len(text)}")


def one_chat(p: Prompt) -> list[list[dict]]:
    return [p.chat()]


def test_characters_are_counted_over_every_chat_a_prompt_is_sent_as():
    short, long = prompt("a" * 10), prompt("a" * 11)
    assert [t.prompt for t in over_chars([short, long], one_chat, 10, "generate.max_prompt_chars")] == [long]
    with_persona = lambda p: [p.chat(), [{"role": "system", "content": "x" * 5}] + p.chat()]  # noqa: E731
    (hit,) = over_chars([short], with_persona, 12, "the limit")
    assert hit.reason == "15 characters, over the limit (12)" and hit.row()["source"] == "p.jsonl:10"


def test_tokens_of_the_templated_prompt_must_leave_max_new_tokens(tiny_tokenizer_dir):
    spec = ModelSpec(model=str(tiny_tokenizer_dir))
    # "user: <n words>\nassistant:" is n + 4 tokens; the context is 32
    fits = prompt(" ".join(["word"] * (CONTEXT - 8 - 4)))   # 28 - 4 = 24 words: exactly room for 8
    over = prompt(" ".join(["word"] * (CONTEXT - 8 - 3)))
    (hit,) = over_tokens([fits, over], one_chat, [spec], max_new_tokens=8)
    assert hit.prompt is over
    assert "25 tokens" in hit.reason and "context of 32" in hit.reason and "leaves 24" in hit.reason
    assert over_tokens([fits, over], one_chat, [spec], max_new_tokens=7) == []


def test_a_persona_counts_toward_the_prompt(tiny_tokenizer_dir):
    spec = ModelSpec(model=str(tiny_tokenizer_dir))
    p = prompt(" ".join(["word"] * 20))  # 24 tokens alone
    persona = lambda q: [[{"role": "system", "content": "Be brief ."}] + q.chat()]  # noqa: E731
    assert over_tokens([p], one_chat, [spec], max_new_tokens=8) == []
    assert [t.prompt for t in over_tokens([p], persona, [spec], max_new_tokens=8)] == [p]


def test_servers_get_no_token_check():
    spec = ModelSpec(backend="openai", model="gpt-x", base_url="http://127.0.0.1:9/v1")
    assert over_tokens([prompt("word " * 10_000)], one_chat, [spec], max_new_tokens=8) == []

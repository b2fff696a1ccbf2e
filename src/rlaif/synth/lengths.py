"""Prompts too long for the model that is to answer them, found before any model loads.

Two checks, cheapest first. Characters: a prompt over the character limit is too long before any
tokenizer sees it (a 5 MB prompt would otherwise be tokenised, then attended over). Tokens, for
local models: the chat-templated prompt (a persona's system prompt included), as the model reads
it, must leave ``max_new_tokens`` of the model's context length (``max_position_embeddings`` or
its like in the model's config). Servers get the character check only: their tokenizer is not
here, and a server that refuses a prompt puts it in failures.jsonl with the server's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from rlaif.config import ModelSpec
from rlaif.errors import ModelError, first_line
from rlaif.schemas import Prompt

Chats = Callable[[Prompt], list[list[dict]]]  # every chat a prompt is sent as (one per persona)
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@dataclass(frozen=True)
class TooLong:
    prompt: Prompt
    reason: str

    def row(self) -> dict:
        return {"id": self.prompt.id, "source": self.prompt.source, "reason": self.reason}


def over_chars(prompts: Iterable[Prompt], chats: Chats, max_chars: int, setting: str) -> list[TooLong]:
    """Prompts whose longest chat has more characters than ``max_chars`` (named ``setting``)."""
    out = []
    for p in prompts:
        n = max(sum(len(m["content"]) for m in chat) for chat in chats(p))
        if n > max_chars:
            out.append(TooLong(p, f"{n:,} characters, over {setting} ({max_chars:,})"))
    return out


def over_tokens(prompts: list[Prompt], chats: Chats, specs: Iterable[ModelSpec], max_new_tokens: int
                ) -> list[TooLong]:
    """Prompts that, templated, leave fewer than ``max_new_tokens`` of a local model's context."""
    out: dict[str, TooLong] = {}
    for spec in {s.model: s for s in specs if s.backend == "local"}.values():
        budget = _token_budget(spec.model)
        if budget is None:
            continue
        count, context = budget
        room = context - max_new_tokens
        for p in prompts:
            if p.id in out:
                continue
            n = max(count(chat) for chat in chats(p))
            if n > room:
                out[p.id] = TooLong(p, f"{n:,} tokens once templated for '{spec.model}', whose context of "
                                       f"{context:,} leaves {max(room, 0):,} after max_new_tokens {max_new_tokens}")
    return [out[p.id] for p in prompts if p.id in out]


def _token_budget(model: str) -> tuple[Callable[[list[dict]], int], int] | None:
    """(tokens of a chat, context length) for a local model, from its tokenizer and config only
    (no weights); None when the model states no context length or has no chat template (the
    backend says so when it loads)."""
    from transformers import AutoConfig, AutoTokenizer

    from rlaif.backends.local import chat_ids, resolve_model_path

    path = resolve_model_path(model)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the tokenizer of '{model}': {first_line(e)}",
                         hint="name 'embedded', a local model folder, or a cached hub id") from None
    if not tok.chat_template:
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    context = next((v for k in CONTEXT_KEYS if isinstance(v := getattr(text_config, k, None), int) and v > 0),
                   None)
    if context is None and 0 < (tok.model_max_length or 0) < 10**7:  # transformers' "unknown" is 1e30
        context = int(tok.model_max_length)
    if context is None:
        return None
    return (lambda chat: len(chat_ids(tok, chat))), context

"""In-process ``transformers`` backend: batched generation (left padding) and log-prob scoring.

Sampling is seeded per request, not per batch: each row draws its uniforms from its own
``torch.Generator(seed)``, so a row's text does not depend on which other rows share its batch.
That is what lets a killed run resume and produce the rows an uninterrupted run would have.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Sequence

import torch

from rlaif.backends.base import Completion, GenRequest, SamplingParams, ScoreRequest
from rlaif.backends.identity import local_identity, resolve_dtype, resolve_model_path
from rlaif.errors import ModelError

# The prompt is rendered here, so any prefill is exact and any continuation can be scored.
CAPABILITIES = {"prefill": True, "logprobs": True, "structured": "prompt"}


def chat_ids(tokenizer, chat: list[dict], prefill: str = "") -> list[int]:
    """Token ids of a chat as the model reads it before answering (generation and scoring both
    use it). The template is rendered to text once and tokenised without adding special tokens, so
    BOS/EOS appear exactly as the template writes them, never twice.

    Message content and the prefill are data: an added or special token written in them
    (``<|im_end|>``...) is tokenised as plain text, so only the template's own control tokens are
    special and no message can end its turn. This is transformers' own mechanism behind
    ``apply_chat_template(sanitize_control_tokens=True)`` (data marked before rendering, marked
    tokens encoded as text), applied to the prefill as well. Text without such tokens gives exactly
    the ids a plain ``tokenizer(text)`` gives (the two private-use markers U+F0000 and U+F0001 are
    dropped from data)."""
    from transformers.utils.chat_template_utils import encode_marked_chat, mark_control_tokens

    data = _control_tokens(tuple(tokenizer.added_tokens_encoder))
    text = tokenizer.apply_chat_template(mark_control_tokens(chat, data), tokenize=False,
                                         add_generation_prompt=True)
    try:
        return encode_marked_chat(tokenizer, text + mark_control_tokens(prefill, data))
    except ValueError as e:  # a tokenizer that can spell a control token out of plain text
        raise ModelError(f"{tokenizer.name_or_path}: cannot keep data text apart from its control tokens: {e}",
                         hint="use a tokenizer whose special tokens plain text cannot produce") from e


@functools.lru_cache(maxsize=8)
def _control_tokens(added: tuple[str, ...]) -> re.Pattern:
    """Every added or special token of the vocabulary, longest first; whitespace tokens (Gemma's
    runs of spaces) are ordinary text and stay as they are."""
    tokens = sorted((t for t in added if t and not t.isspace()), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, tokens)) or "(?!)")


class _SeededSampler:
    """A logits processor that picks each row's next token with that row's own random stream.

    Temperature and top-p are transformers' own warpers; the chosen token is forced by setting
    every other logit to -inf, and ``generate`` then runs greedily.
    """

    def __init__(self, params: SamplingParams, seeds: list[int]):
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.warpers = [TemperatureLogitsWarper(params.temperature)]
        if params.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(params.top_p))
        self.uniforms = torch.stack([
            torch.rand(params.max_new_tokens, generator=torch.Generator().manual_seed(
                s if s is not None else random.randrange(2**31)),
                       dtype=torch.float64) for s in seeds])
        self.step = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for w in self.warpers:
            scores = w(input_ids, scores)
        probs = torch.softmax(scores.double(), dim=-1)
        cdf = probs.cumsum(-1)
        u = self.uniforms[:, self.step].to(cdf.device).unsqueeze(1) * cdf[:, -1:]
        tokens = torch.searchsorted(cdf, u).clamp_max(scores.shape[-1] - 1)
        self.step += 1
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, tokens, 0.0)
        return forced


class LocalBackend:
    """A causal LM loaded with transformers, on CPU or GPU."""

    name = "local"

    def __init__(self, model: str, device: str | None = None, dtype: str | None = None,
                 batch_size: int = 16):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        self.path = resolve_model_path(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, resolve_dtype(self.device, dtype))
        self.batch_size = batch_size
        self._dtype_option = dtype
        self._identity: dict | None = None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
            self.lm = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch_dtype)
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load model '{model}': {first}",
                             hint="name 'embedded', a local model folder, or a cached hub id") from None
        self.lm.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.tokenizer.chat_template:
            raise ModelError(f"model '{model}' has no chat template",
                             hint="use an instruction-tuned model whose tokenizer has one")

    # ------------------------------------------------------------------ helpers
    def _context_ids(self, chat: list[dict], prefill: str) -> list[int]:
        return chat_ids(self.tokenizer, chat, prefill)

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self.device)
        return ids, mask

    def _eos_ids(self) -> set[int]:
        eos = self.lm.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    # ------------------------------------------------------------------ generate
    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.params.temperature, r.params.top_p, r.params.max_new_tokens)
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                for i, c in zip(chunk, self._generate_batch([requests[i] for i in chunk])):
                    out[i] = c
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, reqs: list[GenRequest]) -> list[Completion]:
        params = reqs[0].params
        seqs = [self._context_ids(r.chat(), r.prefill) for r in reqs]
        ids, mask = self._left_pad(seqs)
        kwargs = dict(max_new_tokens=params.max_new_tokens, do_sample=False,
                      pad_token_id=self.tokenizer.pad_token_id, temperature=None, top_p=None,
                      top_k=None)
        if params.temperature > 0:
            from transformers import LogitsProcessorList

            sampler = _SeededSampler(params, [r.params.seed for r in reqs])
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        gen = self.lm.generate(input_ids=ids, attention_mask=mask, **kwargs)[:, ids.shape[1]:]
        eos = self._eos_ids()
        results = []
        for row, seq in zip(gen.tolist(), seqs):
            n = len(row)
            for j, t in enumerate(row):
                if t in eos:
                    n = j
                    break
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            finish = "stop" if n < len(row) else "length"
            kept = min(n + 1, len(row))  # the end-of-sequence token counts when generation stopped on it
            results.append(Completion(text=text, finish_reason=finish, prompt_tokens=len(seq),
                                      completion_tokens=kept, token_ids=row[:kept]))
        return results

    # ------------------------------------------------------------------ score
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Summed log-probs of each continuation (tokenised on its own, after the context)."""
        flat: list[tuple[list[int], list[int]]] = []
        for r in requests:
            ctx = self._context_ids(r.chat(), r.prefill)
            for cont in r.continuations:
                flat.append((ctx, self.tokenizer(cont, add_special_tokens=False)["input_ids"]))
        if all(len(c) == 1 for _, c in flat):
            scores = self._score_next_token(requests, flat)
        else:
            scores = [sum(lps) for lps in self.token_logps(flat)]
        out, k = [], 0
        for r in requests:
            out.append(scores[k:k + len(r.continuations)])
            k += len(r.continuations)
        return out

    @staticmethod
    def _positions(mask: torch.Tensor) -> torch.Tensor:
        # Under left padding a row's first real token is position 0, as in generation; without this,
        # models with absolute position embeddings score a padded row differently from the row alone.
        return (mask.cumsum(-1) - 1).clamp(min=0)

    @torch.inference_mode()
    def _score_next_token(self, requests, flat) -> list[float]:
        # Single-token continuations (verdict letters): one forward pass per context suffices.
        ctxs, conts, k = [], [], 0
        for r in requests:
            ctxs.append(flat[k][0])
            conts.append([flat[k + j][1][0] for j in range(len(r.continuations))])
            k += len(r.continuations)
        out: list[float] = []
        for start in range(0, len(ctxs), self.batch_size):
            ids, mask = self._left_pad(ctxs[start:start + self.batch_size])
            logits = self.lm(input_ids=ids, attention_mask=mask, position_ids=self._positions(mask),
                             logits_to_keep=1).logits[:, -1]
            logp = torch.log_softmax(logits.float(), dim=-1)
            for row, toks in zip(logp, conts[start:start + self.batch_size]):
                out += [float(row[t]) for t in toks]
        return out

    def token_logps(self, items: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[list[float]]:
        """Log-prob of every continuation token given the context ids and the tokens before it, for
        ``(context_ids, continuation_ids)`` items: ids exactly as given, never re-tokenised."""
        out: list[list[float]] = []
        for start in range(0, len(items), self.batch_size):
            out += self._token_logps_batch(items[start:start + self.batch_size])
        return out

    @torch.inference_mode()
    def _token_logps_batch(self, items) -> list[list[float]]:
        ids, mask = self._left_pad([list(c) + list(t) for c, t in items])
        logits = self.lm(input_ids=ids, attention_mask=mask, position_ids=self._positions(mask)).logits[:, :-1]
        tok_lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        width = ids.shape[1]
        # continuation tokens occupy the last len(t) positions; their predictions sit one earlier
        return [tok_lp[i, width - 1 - len(t):].tolist() if len(t) else [] for i, (_, t) in enumerate(items)]

    @torch.inference_mode()
    def text_nll(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """Summed negative log-likelihood (nats) and scored-token count of each plain text, no chat
        template. The first token has nothing to condition on and is not scored."""
        out: list[tuple[float, int]] = []
        for start in range(0, len(texts), self.batch_size):
            seqs = [self.tokenizer(t)["input_ids"] for t in texts[start:start + self.batch_size]]
            ids, mask = self._left_pad(seqs)
            positions = self._positions(mask)
            logits = self.lm(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, :-1].float()
            tok_lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            scored = mask[:, 1:] * mask[:, :-1]
            for row_lp, row_mask in zip(tok_lp, scored):
                out.append((float(-(row_lp * row_mask).sum()), int(row_mask.sum())))
        return out

    def describe(self) -> dict:
        info = {"backend": self.name, "model": self.model, "path": self.path,
                "device": self.device, "dtype": str(self.lm.dtype).replace("torch.", ""),
                "config_sha256": hashlib.sha256(json.dumps(self.lm.config.to_dict(), sort_keys=True,
                                                           default=str).encode()).hexdigest()[:16]}
        src = Path(self.path) / "rlaif-source.json"
        if src.exists():
            info["source"] = json.loads(src.read_text())
        return info

    def identity(self) -> dict:
        """The fingerprint of the folder it was loaded from, and its dtype (see identity.py):
        the same as ``local_identity`` gives for this model before it is loaded."""
        if self._identity is None:
            self._identity = local_identity(self.model, self.device, self._dtype_option)
        return self._identity

    def capabilities(self) -> dict:
        return dict(CAPABILITIES)

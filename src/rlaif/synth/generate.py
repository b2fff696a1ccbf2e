"""Stage 1: write candidate responses for every prompt.

Strategies: ``sample`` (n seeded samples from one policy), ``personas`` (one candidate per
system prompt, e.g. "comply directly" vs "secure, guided") and ``models`` (one per generator).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rlaif.backends import BackendPool, GenRequest, SamplingParams
from rlaif.config import BudgetConfig, GenerateConfig, ModelSpec
from rlaif.errors import ConfigError, InputError
from rlaif.io import (CANDIDATES, PROMPTS, atomic_write_jsonl, current_rows, read_existing, read_manifest,
                      run_chunked, update_manifest, write_plan)
from rlaif.schemas import Candidate, FailedRow, Generator, Prompt, content_id
from rlaif.synth.lengths import over_chars, over_tokens
from rlaif.usage import StageSpend


@dataclass(frozen=True)
class Slot:
    """One candidate to write for a prompt: which model, under which persona, with which seed."""

    prompt: Prompt
    spec: ModelSpec
    persona: str | None
    index: int
    seed: int
    id: str


def _with_persona(messages: list[dict], system: str | None) -> list[dict]:
    if not system:
        return messages
    if messages[0]["role"] == "system":  # keep the user's own system text after the persona's
        return [{"role": "system", "content": system + "\n\n" + messages[0]["content"]}] + messages[1:]
    return [{"role": "system", "content": system}] + messages


def _lanes(cfg: GenerateConfig) -> list[tuple[ModelSpec, str | None]]:
    if cfg.strategy == "personas":
        return [(cfg.policy, name) for name in cfg.personas]
    if cfg.strategy == "models":
        return [(spec, None) for spec in cfg.models]
    return [(cfg.policy, None)] * cfg.n


def _spec_key(spec: ModelSpec) -> str:
    return spec.model_dump_json()


def generator_identities(cfg: GenerateConfig, pool: BackendPool) -> dict[str, dict]:
    """Each generator's identity (backends/identity.py), for ``plan_slots``; a local model's is
    read from its files, so planning loads no model."""
    return {_spec_key(spec): pool.identity(spec.backend, spec.model, **spec.options()) for spec, _ in _lanes(cfg)}


def _persona_key(cfg: GenerateConfig, name: str | None) -> str | dict | None:
    """What a candidate's id says about its persona: the system prompt alone when that is all it
    has (so ``{system: X}`` and ``X`` keep the ids written before prefills existed), else all of it."""
    if name is None:
        return None
    p = cfg.persona(name)  # categories decide which prompts get a slot, not what it writes
    return p.system if not p.prefill and p.max_new_tokens is None else p.model_dump(exclude={"categories"})


def _writes_for(cfg: GenerateConfig, persona: str | None, prompt: Prompt) -> bool:
    cats = cfg.persona(persona).categories if persona else []
    return not cats or prompt.category in cats  # both lower case (config and prompt loading)


def plan_slots(prompts: list[Prompt], cfg: GenerateConfig, identities: dict[str, dict]) -> list[Slot]:
    """Every candidate the config asks for, in a fixed order (by generator, then prompt length).
    ``identities`` (from ``generator_identities``) is what a candidate's id says about its
    generator: the weights it ran, or the server and the model it serves, not a name."""
    slots = []
    for p in prompts:
        for index, (spec, persona) in enumerate(_lanes(cfg)):
            if not _writes_for(cfg, persona, p):
                continue
            seed = int(content_id(cfg.seed, p.id, index), 16) % (2**31)
            cid = content_id(p.id, identities[_spec_key(spec)], persona, _persona_key(cfg, persona),
                             index, cfg.temperature, cfg.top_p, cfg.max_new_tokens, seed, prefix="c-")
            slots.append(Slot(p, spec, persona, index, seed, cid))
    return sorted(slots, key=lambda s: (s.spec.model, s.index,
                                        sum(len(m.content) for m in s.prompt.messages), s.id))


def _chats(prompt: Prompt, cfg: GenerateConfig) -> list[list[dict]]:
    """Every chat the prompt is sent as: one per persona, or the prompt itself."""
    systems = [cfg.persona(n).system for n in cfg.personas] if cfg.strategy == "personas" else [None]
    return [_with_persona(prompt.chat(), system) for system in systems]


def fitting_prompts(prompts: list[Prompt], cfg: GenerateConfig, tokens: bool = True
                    ) -> tuple[list[Prompt], list[dict]]:
    """The prompts short enough for the generators, and the skipped ones with their reasons;
    with ``too_long: error`` a prompt that does not fit is an InputError naming its file and line."""
    chats = lambda p: _chats(p, cfg)  # noqa: E731
    long = over_chars(prompts, chats, cfg.max_prompt_chars, "generate.max_prompt_chars")
    if tokens and not (long and cfg.too_long == "error"):
        seen = {t.prompt.id for t in long}
        specs = cfg.models if cfg.strategy == "models" else [cfg.policy]
        long += over_tokens([p for p in prompts if p.id not in seen], chats, specs, cfg.max_new_tokens)
    if long and cfg.too_long == "error":
        more = f" (and {len(long) - 1} more)" if len(long) > 1 else ""
        raise InputError(f"{long[0].prompt.source}: prompt too long: {long[0].reason}{more}",
                         hint="shorten it, or set generate.too_long=skip to leave such prompts out")
    skipped = {t.prompt.id for t in long}
    kept = [p for p in prompts if p.id not in skipped]
    if prompts and not kept:
        raise InputError(f"every prompt is too long ({long[0].prompt.source}: {long[0].reason})")
    return kept, [t.row() for t in long]


def _params(cfg: GenerateConfig, seed: int, persona: str | None = None) -> SamplingParams:
    tokens = cfg.persona(persona).max_new_tokens or cfg.max_new_tokens
    return SamplingParams(cfg.temperature, cfg.top_p, tokens, seed)


def _check_prefills(cfg: GenerateConfig, pool: BackendPool) -> None:
    """A persona's prefill needs a backend that continues it: checked before any row is written."""
    for spec, name in _lanes(cfg):
        if name and cfg.persona(name).prefill and not pool.get(spec.backend, spec.model, **spec.options()
                                                               ).capabilities().get("prefill"):
            raise ConfigError(f"generate.personas.{name}.prefill: backend '{spec.backend}' ({spec.model}) "
                              "does not continue a prefilled answer; use a local or anthropic policy, or "
                              "drop the prefill")


def _request(s: Slot, cfg: GenerateConfig) -> GenRequest:
    persona = cfg.persona(s.persona)
    return GenRequest.of(_with_persona(s.prompt.chat(), persona.system), _params(cfg, s.seed, s.persona),
                         prefill=persona.prefill)


def run_generate(run_dir: Path, prompts: list[Prompt], cfg: GenerateConfig, pool: BackendPool,
                 chunk_size: int = 16, budget: BudgetConfig | None = None) -> dict:
    """Write prompts.jsonl and append the missing candidates to candidates.jsonl."""
    run_dir = Path(run_dir)
    prompts, too_long = fitting_prompts(prompts, cfg)  # before any model loads or anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_prefills(cfg, pool)
    atomic_write_jsonl(run_dir / PROMPTS, prompts)
    identities = generator_identities(cfg, pool)
    slots = plan_slots(prompts, cfg, identities)
    replanned = write_plan(run_dir, "generate", [s.id for s in slots])
    used: dict[str, dict] = {}
    spend = StageSpend(run_dir, "generate", pool.meter, budget or BudgetConfig())

    def compute(chunk: list[Slot]) -> list[Candidate | FailedRow]:
        rows: list[Candidate | FailedRow] = []
        by_spec: dict[str, list[Slot]] = {}
        for s in chunk:
            by_spec.setdefault(s.spec.model_dump_json(), []).append(s)
        for group in by_spec.values():
            spec = group[0].spec
            backend = pool.get(spec.backend, spec.model, **spec.options())
            identity = identities[_spec_key(spec)]
            used.setdefault(spec.model, {**backend.describe(), "identity": identity})
            reqs = [_request(s, cfg) for s in group]
            for s, r, c in zip(group, reqs, backend.generate(reqs)):
                if c.error is not None:
                    rows.append(FailedRow(id=s.id, stage="generate", error=c.error))
                    continue
                extra = {"prefill": r.prefill} if r.prefill else {}
                gen = Generator(backend=spec.backend, model=spec.model, identity=identity, persona=s.persona,
                                params={**r.params.as_dict(), "slot": s.index, **extra})
                rows.append(Candidate(id=s.id, prompt_id=s.prompt.id, text=r.prefill + c.text, generator=gen,
                                      finish_reason=c.finish_reason,
                                      usage={"prompt_tokens": c.prompt_tokens,
                                             "completion_tokens": c.completion_tokens}))
        return rows

    t0 = time.perf_counter()
    progress = run_chunked(slots, lambda s: s.id, compute, run_dir / CANDIDATES, Candidate,
                           chunk_size, "generate", "cand", after_chunk=spend.check)
    rows, stale = current_rows(read_existing(run_dir / CANDIDATES, Candidate), {s.id for s in slots})
    summary = {
        **progress,
        "candidates": len(rows),
        "stale": stale,
        "truncated": sum(c.finish_reason == "length" for c in rows),
        "empty": sum(not c.text.strip() for c in rows),
        "per_persona": dict(Counter(c.generator.persona or c.generator.model for c in rows)),
        "completion_tokens": sum(c.usage.get("completion_tokens", 0) for c in rows),
        "too_long": {"policy": cfg.too_long, "skipped": len(too_long), "prompts": too_long},
        "seconds": round(time.perf_counter() - t0, 2),
        "usage": spend.usage(),
        "this_run": spend.this_run(),
    }
    if progress["written"] or replanned:
        # models that wrote no row this time keep the description recorded when they did
        before = read_manifest(run_dir).get("stages", {}).get("generate", {}).get("models", {})
        models = {s.spec.model: used.get(s.spec.model) or before.get(s.spec.model) for s in slots}
        update_manifest(run_dir, "generate", {"config": cfg.model_dump(), "models": models, **summary})
    return summary

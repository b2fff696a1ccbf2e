"""Chains the stages: ``synth`` = generate -> judge -> build, in one run folder."""

from __future__ import annotations

from pathlib import Path

from rlaif.backends import BackendPool
from rlaif.config import SynthConfig
from rlaif.io import update_manifest
from rlaif.prompts import load_prompts
from rlaif.stages.build import run_build
from rlaif.stages.generate import run_generate
from rlaif.stages.judge import run_judge


def synth(prompts_spec: str, out: Path, cfg: SynthConfig, limit: int | None = None,
          overrides: list[str] | None = None) -> dict:
    """Run generate, judge and build; each stage resumes where an earlier run stopped."""
    out = Path(out)
    prompts, stats = load_prompts(prompts_spec, limit)
    # one pool: the judge reuses the generator's weights when they are the same model
    with BackendPool(cache=cfg.cache) as pool:
        return _synth(prompts_spec, out, cfg, limit, overrides, prompts, stats, pool)


def _synth(prompts_spec, out, cfg, limit, overrides, prompts, stats, pool) -> dict:
    update_manifest(out, "synth", {"prompts": prompts_spec, "limit": limit, "overrides": overrides or [],
                                   "config": cfg.model_dump(),
                                   "input": {"read": stats.read, "duplicates": stats.duplicates,
                                             "kept": stats.kept, "per_category": stats.per_category}})
    gen = run_generate(out, prompts, cfg.generate, pool, cfg.chunk_size, cfg.budget)
    jud = run_judge(out, cfg.judge, pool, cfg.chunk_size, cfg.budget)
    build = run_build(out, cfg.build)
    return {"input": stats.__dict__, "generate": gen, "judge": jud, "build": build}

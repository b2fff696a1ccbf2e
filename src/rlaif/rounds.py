"""`rlaif run` with ``run.rounds`` > 1: iterative on-policy DPO, one run folder per round.

Round 1 is the one-round run in ``OUT/round-1/``. Round K+1 generates its candidates with round K's
trained model (``OUT/round-K/train/model``), judges them with the same judge and constitution,
builds, and trains from those weights, against ``run.reference``: ``previous`` (its own starting
weights, the exact copy) or ``initial`` (the original model, accepted by the reference guard
because its fingerprint is round 1's starting fingerprint). Every round is evaluated against the
original model; the run passes or fails as its last round does. Each round goes through
``pipeline.run_folder`` unchanged, with the previous round's keys hashed into its own, so a changed
setting re-runs from the first round it affects and a killed run resumes in the round and stage
it stopped in. ``OUT/manifest.json`` records each round's prompt slice, keys and status, and
``OUT/report.html`` compares the rounds (report/rounds.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlaif.backends import BackendPool
from rlaif.config import ModelSpec, SynthConfig
from rlaif.errors import ConfigError
from rlaif.io import read_manifest, update_manifest
from rlaif.progress import console
from rlaif.schemas import content_id
from rlaif.synth.prompts import load_prompts


def round_dir(out: Path, k: int) -> Path:
    return Path(out) / f"round-{k}"


def prompt_slices(total: int, rounds: int, per_round: int | None) -> list[tuple[int, int]]:
    """(start, stop) of each round's prompts in the loaded set: all of them every round, or the
    K-th disjoint slice of ``per_round`` in order. Too few prompts for every round is a ConfigError."""
    if per_round is None:
        return [(0, total)] * rounds
    if rounds * per_round > total:
        raise ConfigError(f"field 'run.prompts_per_round': {rounds} rounds of {per_round} prompts need "
                          f"{rounds * per_round} distinct prompts; run.prompts has {total} (after run.limit)",
                          hint="lower run.prompts_per_round or run.rounds, or give more prompts")
    return [(k * per_round, (k + 1) * per_round) for k in range(rounds)]


def original_model(cfg: SynthConfig) -> str:
    """The model the rounds began from, as the user named it: every round's evaluation reference."""
    return cfg.train.ref or cfg.train.model


def _policy(spec: ModelSpec, model: str) -> ModelSpec:
    """``spec`` generating with the trained folder ``model``: a local model, on the same device and
    dtype where ``spec`` was local already."""
    if spec.backend == "local":
        return spec.model_copy(update={"model": model})
    return ModelSpec(backend="local", model=model, batch_size=spec.batch_size)


def round_config(cfg: SynthConfig, k: int, previous_model: str | None) -> SynthConfig:
    """Round ``k``'s configuration: its own folder and, after round 1, the previous round's trained
    model as the generator (the policy lanes) and as the starting weights, with the reference
    ``run.reference`` asks for. The judge, constitution, build and eval settings stay the same."""
    run = cfg.run.model_copy(update={"out": str(round_dir(Path(cfg.run.out), k))})
    update: dict = {"run": run}
    if k > 1:
        if previous_model is None:
            raise ValueError("a round after the first needs the previous round's model")
        gen = cfg.generate
        if gen.strategy == "models":
            models = [_policy(m, previous_model) if m.model == cfg.train.model else m for m in gen.models]
            gen = gen.model_copy(update={"models": models})
        else:
            gen = gen.model_copy(update={"policy": _policy(gen.policy, previous_model)})
        ref = original_model(cfg) if cfg.run.reference == "initial" else None
        update["generate"] = gen
        update["train"] = cfg.train.model_copy(update={"model": previous_model, "ref": ref})
    return cfg.model_copy(update=update)


def check_rounds(cfg: SynthConfig) -> None:
    """What rounds need of the rest of the config, before anything runs."""
    if cfg.train.lora.enabled and not cfg.train.lora.merge:
        raise ConfigError("field 'train.lora.merge': run.rounds > 1 generates with each round's saved model: it "
                          "needs the adapter merged (train.lora.merge true)")
    if cfg.generate.strategy == "models" and not any(m.model == cfg.train.model for m in cfg.generate.models):
        raise ConfigError("field 'generate.models': run.rounds > 1 replaces the policy's entry (the one naming "
                          f"train.model '{cfg.train.model}') with each round's trained model; none names it")


def _start_fingerprint(out: Path) -> str:
    """Round 1's starting weights as its training run recorded them (refguard.fingerprint)."""
    train = (read_manifest(round_dir(out, 1) / "train").get("stages") or {}).get("train") or {}
    fp = (train.get("fingerprints") or {}).get("start")
    if not fp:
        raise ConfigError(f"{round_dir(out, 1) / 'train'}: no recorded starting fingerprint, so run.reference "
                          "'initial' cannot be proven", hint="re-run round 1's training")
    return fp


def run_rounds(cfg: SynthConfig, config_file: str | None, overrides: list[str], run_folder: Callable[..., dict],
               pool: BackendPool | None = None) -> dict:
    """Run every round with ``run_folder`` (pipeline.run_folder, handed in: the pipeline calls this
    module, not the other way round), each skipping what it finished earlier, then the report
    across rounds. The user's files were checked already (pipeline.check_inputs)."""
    check_rounds(cfg)
    prompts, _ = load_prompts(cfg.run.prompts, cfg.run.limit)
    parts = prompt_slices(len(prompts), cfg.run.rounds, cfg.run.prompts_per_round)
    out = Path(cfg.run.out)
    out.mkdir(parents=True, exist_ok=True)
    if pool is not None:
        return _rounds(cfg, config_file, overrides, pool, out, prompts, parts, run_folder)
    with BackendPool(cache=cfg.cache) as pool:
        return _rounds(cfg, config_file, overrides, pool, out, prompts, parts, run_folder)


def _rounds(cfg, config_file, overrides, pool, out, prompts, parts, run_folder) -> dict:
    from rlaif.report.rounds import write_rounds_report

    entries: list[dict] = []
    results: dict = {"run_dir": str(out), "rounds": []}
    previous_keys: dict | None = None
    previous_model: str | None = None
    for k, (a, b) in enumerate(parts, 1):
        rcfg = round_config(cfg, k, previous_model)
        ids = [p.id for p in prompts[a:b]]
        chain = {"round": k, "prompts": [a, b], "previous": previous_keys}
        original = _start_fingerprint(out) if k > 1 and cfg.run.reference == "initial" else None
        entry = {"round": k, "folder": round_dir(out, k).name, "status": "running",
                 "prompts": {"start": a, "stop": b, "count": len(ids), "ids_digest": content_id(ids)},
                 "generator": rcfg.generate.policy.model if rcfg.generate.strategy != "models"
                 else [m.model for m in rcfg.generate.models],
                 "written_by": "the original model" if k == 1 else f"round {k - 1}'s model",
                 "train_model": rcfg.train.model,
                 "reference": "starting weights" if k == 1 else cfg.run.reference}
        entries.append(entry)
        _record(out, config_file, overrides, cfg, entries)
        console.print(f"[bold]round {k} of {len(parts)}[/bold]: {b - a} prompts, generator {entry['generator']}")
        res = run_folder(rcfg, config_file, overrides, pool,
                         {"chain": chain, "part": (a, b), "ref": original_model(cfg), "original": original,
                          "previous_model": previous_model})
        update_manifest(round_dir(out, k) / "train", "round",
                        {"round": k, "reference": entry["reference"], "original_fingerprint": original})
        entry.update(status="done", stages=res["stages"], passed=res["passed"], result=res["status"])
        _record(out, config_file, overrides, cfg, entries)
        results["rounds"].append({"round": k, "skipped": res.get("skipped", []), "status": res["status"]})
        results.setdefault("skipped", []).extend(f"round {k} {s}" for s in res.get("skipped", []))
        # what the next round depends on is this round's model: its training key (which chains its
        # data), not its evaluation, whose settings touch no later round's candidates or training
        previous_keys = {"train": res["stages"]["train"]["key"]}
        if previous_model is not None:  # round K-1's model: generated round K and was compared with it, done
            pool.release(previous_model)
        previous_model = str(round_dir(out, k) / "train" / "model")
        last = res
    results.update(passed=last["passed"], status=last["status"], gates=last["gates"])
    results["report"] = write_rounds_report(out)
    return results


def _record(out: Path, config_file: str | None, overrides: list[str], cfg: SynthConfig, entries: list[dict]) -> None:
    update_manifest(out, "run", {"config_file": config_file, "overrides": overrides, "config": cfg.model_dump(),
                                 "rounds": entries})

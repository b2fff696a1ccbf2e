"""Chains the stages: ``synth`` = generate -> judge -> build, in one run folder."""

from __future__ import annotations

import time
from pathlib import Path

from rlaif.backends import BackendPool
from rlaif.backends.identity import digest_tree
from rlaif.config import SynthConfig
from rlaif.errors import ConfigError
from rlaif.io import read_manifest, update_manifest
from rlaif.judge.constitution import load_constitution
from rlaif.judge.stage import judge_identity, run_judge
from rlaif.progress import console
from rlaif.schemas import content_id
from rlaif.synth.build import run_build
from rlaif.synth.generate import fitting_prompts, generator_identities, run_generate
from rlaif.synth.prompts import load_prompts


def synth(prompts_spec: str, out: Path, cfg: SynthConfig, limit: int | None = None,
          overrides: list[str] | None = None, pool: BackendPool | None = None,
          part: tuple[int, int] | None = None) -> dict:
    """Run generate, judge and build; each stage resumes where an earlier run stopped. ``part``
    (start, stop): only that slice of the loaded prompts (a round of `run.prompts_per_round`)."""
    out = Path(out)
    prompts, stats = load_prompts(prompts_spec, limit)
    if part is not None:
        prompts = prompts[part[0]:part[1]]
    # before the run folder is touched: prompts too long for the generator (too_long: error) and
    # the judge's constitution, which would otherwise be read only after generation
    fitting_prompts(prompts, cfg.generate)
    load_constitution(cfg.judge.constitution)
    if pool is not None:
        return _synth(prompts_spec, out, cfg, limit, overrides, prompts, stats, pool)
    # one pool: the judge reuses the generator's weights when they are the same model
    with BackendPool(cache=cfg.cache) as pool:
        return _synth(prompts_spec, out, cfg, limit, overrides, prompts, stats, pool)


def _synth(prompts_spec, out, cfg, limit, overrides, prompts, stats, pool) -> dict:
    update_manifest(out, "synth", {"prompts": prompts_spec, "limit": limit, "overrides": overrides or [],
                                   "config": cfg.model_dump(),
                                   "input": {"read": stats.read, "duplicates": stats.duplicates,
                                             "kept": stats.kept, "per_category": stats.per_category}})
    gen = run_generate(out, prompts, cfg.generate, pool, cfg.chunk_size, cfg.budget)
    jud = run_judge(out, cfg.judge, pool, cfg.chunk_size, cfg.budget, generate=cfg.generate)
    build = run_build(out, cfg.build)
    return {"input": stats.__dict__, "generate": gen, "judge": jud, "build": build}


# ----------------------------------------------------------------------------- rlaif run
RUN_STAGES = ("synth", "train", "eval", "report")


def _stage_keys(cfg: SynthConfig, pool: BackendPool, wanted: list[str], chain: dict | None = None) -> dict[str, str]:
    """Each wanted stage's key covers its own settings, the contents (never the paths) of the
    files it reads, the identities of the models it runs, and every earlier stage's key, so a
    change upstream makes everything after it stale. Shipped names (``suite:train``, ``default``,
    the probe suites) count by their packaged contents. ``chain`` (a round of `run.rounds`: its
    number, prompt slice and the previous round's keys) is hashed into the first key, so all follow."""
    from rlaif.evaluate.graders import eval_judge_config
    from rlaif.judge.constitution import load_constitution
    from rlaif.synth.prompts import resolve_source

    dump = cfg.model_dump()
    synth = content_id(digest_tree(resolve_source(cfg.run.prompts)), cfg.run.limit, dump["generate"],
                       dump["judge"], dump["build"], load_constitution(cfg.judge.constitution).hash,
                       generator_identities(cfg.generate, pool), judge_identity(cfg.judge, pool))
    if chain is not None:
        synth = content_id(synth, chain)
    keys = {"synth": synth}
    if "train" in wanted:
        starts = [pool.identity("local", m) for m in (cfg.train.model, cfg.train.ref) if m]
        keys["train"] = content_id(synth, dump["train"], starts)
    if "eval" in wanted:
        keys["eval"] = content_id(keys["train"], dump["eval"], dump["judge"], _eval_inputs(cfg),
                                  judge_identity(eval_judge_config(cfg.judge, pool)[0], pool))
    keys["report"] = content_id(keys.get("eval") or keys.get("train") or synth, "report")
    return keys


def _eval_inputs(cfg: SynthConfig) -> dict:
    """Digests of the files evaluation reads: probe suites, neutral text and gates."""
    from rlaif.evaluate.gates import DEFAULT_GATES
    from rlaif.evaluate.suites import resolve, suite_digest

    gates = (digest_tree(Path(cfg.eval.gates)) if cfg.eval.gates else
             [g.model_dump() for g in DEFAULT_GATES])
    return {"suites": [suite_digest(s) for s in cfg.eval.suites],
            "neutral_text": digest_tree(resolve(cfg.eval.neutral_text, "neutral text")), "gates": gates}


def _peak_rss_mb(reset: bool = False) -> float | None:
    """Peak resident memory of this process (VmHWM); ``reset`` starts a new peak (Linux)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    if reset:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def run_all(cfg: SynthConfig, config_file: str | None, overrides: list[str]) -> dict:
    """`rlaif run`: synth, train, eval and report into one run folder (with ``run.rounds`` > 1, one
    folder per round: rlaif/rounds.py). A stage whose recorded key matches is skipped; one that was
    cut short continues; the manifest records the overrides."""
    check_inputs(cfg)
    if cfg.run.rounds > 1:
        from rlaif.rounds import run_rounds

        return run_rounds(cfg, config_file, overrides, run_folder)
    with BackendPool(cache=cfg.cache) as pool:
        return run_folder(cfg, config_file, overrides, pool)


def run_folder(cfg: SynthConfig, config_file: str | None, overrides: list[str], pool: BackendPool,
               rnd: dict | None = None) -> dict:
    """Every wanted stage into ``cfg.run.out``. ``rnd`` (a round of rlaif/rounds.py): ``chain`` for
    the keys, ``part`` (the prompt slice), ``ref`` (the original model, eval's reference) and
    ``original`` (its fingerprint, for `run.reference: initial`); after round 1, ``previous_model``
    (the previous round's trained folder), evaluated against as well into ``eval-previous/``."""
    from rlaif.evaluate.stage import run_eval
    from rlaif.report.stage import write_report
    from rlaif.train.stage import run_train

    rnd = rnd or {}
    out = Path(cfg.run.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [s for s in RUN_STAGES if (s != "train" or cfg.run.train) and (s != "eval" or cfg.run.eval and cfg.run.train)]
    if rnd.get("previous_model") and "eval" in wanted:  # a later round: also against the round before it
        wanted.insert(wanted.index("eval") + 1, "eval_previous")
    record = read_manifest(out).get("stages", {}).get("run", {})
    stages = dict(record.get("stages", {}))
    results: dict = {"run_dir": str(out)}
    actions = {
        "synth": lambda pool: _synth_and_audit(cfg, out, overrides, pool, rnd.get("part")),
        "train": lambda pool: {"train": run_train(str(out), out / "train", cfg.train, rnd.get("original"))},
        "eval": lambda pool: {"eval": run_eval(str(out / "train"), rnd.get("ref"), out / "eval", cfg.eval, cfg.judge,
                                               pool)},
        # its gates are reported, never the run's verdict: that is the comparison with the original model
        "eval_previous": lambda pool: {"eval_previous": run_eval(str(out / "train"), rnd["previous_model"],
                                                                 out / "eval-previous", cfg.eval, cfg.judge, pool)},
        "report": lambda pool: {"report": write_report(out)},
    }
    keys = _stage_keys(cfg, pool, wanted, rnd.get("chain"))
    if "eval_previous" in wanted:  # the previous model's identity is in the train key already
        keys["eval_previous"] = content_id(keys["eval"], "previous round")
    _refuse_stale(out, stages, keys)
    for name in wanted:
        prev = stages.get(name, {})
        if prev.get("key") == keys[name] and prev.get("status") == "done":
            console.print(f"[dim]{name}: done earlier with this configuration, skipped[/dim]")
            results.setdefault("skipped", []).append(name)
            continue
        stages[name] = {"key": keys[name], "status": "running"}
        _record(out, config_file, overrides, cfg, stages)
        _peak_rss_mb(reset=True)
        t0 = time.perf_counter()
        results.update(actions[name](pool))
        stages[name] = {"key": keys[name], "status": "done", "seconds": round(time.perf_counter() - t0, 1),
                        "peak_rss_mb": _peak_rss_mb()}
        if name == "report":
            stages[name]["headline"] = results["report"]["headline"]
        if name in ("eval", "eval_previous"):
            stages[name].update(_eval_outcome(results[name]))
        _record(out, config_file, overrides, cfg, stages)
    ev = stages.get("eval", {})
    results["passed"] = ev.get("passed", True)
    results["status"] = ev.get("result") or ("passed" if results["passed"] else "failed")
    results["gates"] = ev.get("gates", [])
    results["stages"] = stages
    if "report" not in results and "report" in stages:  # skipped: show what the report said
        results["report"] = {"headline": stages["report"].get("headline", []), "html": str(out / "report.html")}
    return results


def _eval_outcome(ev: dict) -> dict:
    """What the run record keeps of an evaluation (beside the stage's own status): passed, its
    result (passed, failed or incomplete) and each gate's name, result and detail, so a skipped
    eval still reports them."""
    passed = bool(ev.get("passed"))
    gates = [{k: g.get(k) for k in ("name", "passed", "required", "detail")} for g in ev.get("gates") or []]
    return {"passed": passed, "result": ev.get("status") or ("passed" if passed else "failed"), "gates": gates}


def check_inputs(cfg: SynthConfig) -> None:
    """Read every file of the user's that `rlaif run` will read, before anything is written or a model
    loads: a bad one stops the run at once, not hours later. (Prompts too long in tokens are found
    by the generate stage, which loads the tokenizer.)"""
    from rlaif.evaluate.gates import load_gates
    from rlaif.evaluate.suites import load_suites, neutral_passages

    prompts, _ = load_prompts(cfg.run.prompts, cfg.run.limit)
    fitting_prompts(prompts, cfg.generate, tokens=False)
    load_constitution(cfg.judge.constitution)
    if cfg.run.train and cfg.run.eval:
        load_suites(cfg.eval.suites, cfg.eval.limit)
        neutral_passages(cfg.eval.neutral_text)
        if cfg.eval.gates:
            load_gates(cfg.eval.gates)


def _synth_and_audit(cfg: SynthConfig, out: Path, overrides: list[str], pool: BackendPool,
                     part: tuple[int, int] | None = None) -> dict:
    from rlaif.judge.audit import run_audit

    result = synth(cfg.run.prompts, out, cfg, cfg.run.limit, overrides, pool=pool, part=part)
    result["audit"] = run_audit(out)  # position and length bias of the labels, for the report
    return result


def _refuse_stale(out: Path, stages: dict, keys: dict) -> None:
    prev = stages.get("train", {})
    if prev.get("key") and "train" in keys and prev["key"] != keys["train"] and (out / "train").exists():
        raise ConfigError(f"{out / 'train'} was trained under another configuration (data or train settings "
                          "changed); its checkpoints cannot be continued",
                          hint=f"delete {out / 'train'} to retrain, or set run.out to a new folder")


def _record(out: Path, config_file: str | None, overrides: list[str], cfg: SynthConfig, stages: dict) -> None:
    update_manifest(out, "run", {"config_file": config_file, "overrides": overrides, "config": cfg.model_dump(),
                                 "stages": stages})

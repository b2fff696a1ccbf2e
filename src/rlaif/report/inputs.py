"""What the report reads: a run folder's manifest, audit, training metrics and eval.json, loaded once.

Any part may be missing (a stage not run yet); it is then empty. The report stage and its
sections both take the loaded ``Run``, so neither needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlaif.errors import InputError
from rlaif.io import MANIFEST, read_json, read_manifest, read_metrics

EVAL_JSON = "eval.json"
METRICS = "metrics.jsonl"
AUDIT = "audit.json"


@dataclass
class Run:
    """Everything the report reads from a run folder; a part that is absent is empty."""

    path: Path
    manifest: dict
    stages: dict
    audit: dict
    steps: list[dict]
    eval: dict

    def stage(self, name: str) -> dict:
        return self.stages.get(name) or {}


def load_run(run_dir: Path) -> Run:
    """Read a run folder. ``rlaif run`` trains and evaluates into ``train/`` and ``eval/``, each with a
    manifest of its own: their sections are used where the run's manifest lacks them."""
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise InputError(f"{run_dir}: no manifest.json, so this is not a run folder",
                         hint="point `rlaif report` at a folder written by `rlaif run` or `rlaif synth`")
    manifest = read_manifest(run_dir)
    stages = dict(manifest.get("stages") or {})
    for name in ("train", "eval"):
        if not stages.get(name):
            stages[name] = (read_manifest(run_dir / name).get("stages") or {}).get(name)
    ev = read_json(run_dir / "eval" / EVAL_JSON) or read_json(run_dir / EVAL_JSON) or stages.get("eval") or {}
    steps = read_metrics(run_dir / "train" / METRICS) or read_metrics(run_dir / METRICS)
    return Run(run_dir, manifest, stages, read_json(run_dir / AUDIT), steps, ev)

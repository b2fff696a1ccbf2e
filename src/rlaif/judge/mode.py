"""``judge.mode: auto``: pick the judge mode that can work with this teacher and these candidates.

The embedded 135M model cannot judge (it prefers whichever answer is shown first), so with it as
teacher and persona candidates, auto labels by persona (contrast); otherwise logprob where the
teacher gives token log-probabilities, structured where it does not. The pick, never ``auto``,
goes into judgment ids and rows, so an auto run that picks what an explicit one set reuses its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from rlaif.config import GenerateConfig, JudgeConfig, ModelSpec
from rlaif.io import read_manifest


@dataclass(frozen=True)
class ModeChoice:
    """What the config asked for, what runs, and why (empty when the config named the mode)."""

    asked: str
    mode: str
    reason: str = ""

    def describe(self) -> str:
        return f"{self.mode} (auto: {self.reason})" if self.asked == "auto" else self.mode

    def record(self) -> dict:
        return {"asked": self.asked, "picked": self.mode, "reason": self.reason}


def is_embedded(spec: ModelSpec) -> bool:
    return spec.backend == "local" and spec.model == "embedded"


def _no_contrast_because(judge: JudgeConfig, generate: GenerateConfig | None) -> str | None:
    """Why persona labels cannot be used here, or None when they can."""
    if generate is None:
        return "no generate config is known for these candidates"
    if generate.strategy != "personas":
        return f"generate.strategy is '{generate.strategy}', not personas"
    missing = [n for n in judge.preferred_names() if n not in generate.personas]
    if missing:
        return f"judge.preferred_persona '{missing[0]}' is not one of generate.personas"
    return None


def choose_mode(judge: JudgeConfig, generate: GenerateConfig | None, caps: dict,
                compare_models: bool = False) -> ModeChoice:
    """The mode ``judge`` runs in. Pure: ``caps`` is the teacher's ``capabilities()``;
    ``compare_models`` is eval's judge (model vs reference), where persona labels mean nothing."""
    if judge.mode != "auto":
        return ModeChoice(judge.mode, judge.mode)
    embedded = is_embedded(judge.teacher)
    if embedded and not compare_models:
        why_not = _no_contrast_because(judge, generate)
        if why_not is None:
            return ModeChoice("auto", "contrast", "the teacher is the embedded model and generate has personas")
    else:
        why_not = "contrast cannot compare two models" if embedded else None
    who = {"local": "the teacher", "anthropic": "Claude"}.get(judge.teacher.backend, "the server")
    if caps.get("logprobs") and (caps.get("prefill") or not judge.rationale):
        mode, reason = "logprob", f"{who} gives token log-probabilities"
    elif caps.get("logprobs"):
        mode, reason = "structured", f"judge.rationale needs a prefilled answer, which {who} does not continue"
    else:
        mode, reason = "structured", f"{who} gives no token log-probabilities"
    return ModeChoice("auto", mode, f"{reason}; {why_not}" if why_not else reason)


def teacher_capabilities(spec: ModelSpec, pool) -> dict:
    """What the teacher honours. Local models and Claude are known without loading or asking
    anything; an OpenAI-compatible server is probed once (and the answer cached)."""
    if spec.backend == "local":
        from rlaif.backends.local import CAPABILITIES

        return dict(CAPABILITIES)
    if spec.backend == "anthropic":
        from rlaif.backends.anthropic import CAPABILITIES

        return dict(CAPABILITIES)
    return pool.get(spec.backend, spec.model, **spec.options()).capabilities()


def resolve_mode(judge: JudgeConfig, generate: GenerateConfig | None, pool,
                 compare_models: bool = False) -> tuple[JudgeConfig, ModeChoice]:
    """``judge`` with ``auto`` replaced by the pick (unchanged otherwise), and the choice."""
    if judge.mode != "auto":
        return judge, ModeChoice(judge.mode, judge.mode)
    needs_caps = compare_models or not is_embedded(judge.teacher) or _no_contrast_because(judge, generate)
    caps = teacher_capabilities(judge.teacher, pool) if needs_caps else {}
    choice = choose_mode(judge, generate, caps, compare_models)
    return judge.model_copy(update={"mode": choice.mode}), choice


def recorded_generate(run_dir: Path) -> GenerateConfig | None:
    """The generate config a run folder's manifest says wrote its candidates, or None."""
    stages = read_manifest(run_dir).get("stages", {})
    for data in ((stages.get("generate") or {}).get("config"),
                 ((stages.get("synth") or {}).get("config") or {}).get("generate")):
        if isinstance(data, dict):
            try:
                return GenerateConfig.model_validate(data)
            except ValidationError:  # written by another version: fall through to the next record
                continue
    return None

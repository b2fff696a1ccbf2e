"""Synthesise preference data: read user prompts, generate candidates, build the DPO dataset.

Reads a prompts file (JSONL, CSV, a datasets folder or ``suite:train``); writes ``prompts.jsonl``,
``candidates.jsonl``, ``pairs.jsonl`` and ``dataset/`` (train/test splits and a card) in a run folder.
"""

from rlaif import lazy_exports

_EXPORTS = {
    "PromptStats": "prompts",
    "balance": "dataset",
    "dedup_prompts": "dataset",
    "generator_identities": "generate",
    "load_prompts": "prompts",
    "plan_slots": "generate",
    "render_card": "card",
    "run_build": "build",
    "run_generate": "generate",
    "split": "dataset",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

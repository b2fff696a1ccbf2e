"""Evaluate a trained model against its reference: probe suites, judge win-rate, drift and gates.

Reads both models, the shipped or user probe suites and the dataset's held-out ``test.jsonl``;
writes ``responses.jsonl``, the judge's ``win_judgments.jsonl``/``safe_practice.jsonl`` and ``eval.json``.
``rlaif score`` (``run_score``) scores a user's own answers with the same per-answer scoring
(``score_answers``).
"""

from rlaif import lazy_exports

_EXPORTS = {
    "DEFAULT_GATES": "gates",
    "RefusalDetector": "refusal",
    "check_gates": "gates",
    "default_detector": "refusal",
    "label_file": "refusal_files",
    "load_detector": "refusal",
    "load_gates": "gates",
    "load_suites": "suites",
    "run_eval": "stage",
    "run_score": "answers",
    "score_answers": "scoring",
    "wilson": "stats",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

"""Judge candidate pairs with a teacher under a written constitution, in both orders, and audit it.

Reads ``prompts.jsonl`` and ``candidates.jsonl`` (and shipped or user constitutions, YAML); writes
``judgments.jsonl`` (verdict, soft label, both orders) and, for ``rlaif audit``, ``audit.json``.
"""

from rlaif import lazy_exports

_EXPORTS = {
    "Constitution": "constitution",
    "aggregate": "verdict",
    "detect": "injection",
    "judge_messages": "verdict",
    "load_constitution": "constitution",
    "parse_structured": "verdict",
    "run_audit": "audit",
    "run_judge": "stage",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

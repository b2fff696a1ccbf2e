"""Train the policy with DPO (trl.DPOTrainer) against a reference proven to be its starting weights.

Reads preference pairs (a run folder's ``dataset/``, JSONL or a datasets folder); writes ``model/``,
``metrics.jsonl``, training curves, checkpoints and a manifest with the weights' fingerprints.
"""

from rlaif import lazy_exports

_EXPORTS = {
    "ReferenceMismatch": "refguard",
    "fingerprint": "refguard",
    "run_train": "stage",
    "warnings_for": "health",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

"""Choosing the v3 refusal detector: hidden states of the embedded model beside the n-grams.

    PYTHONPATH=src python bench/refusal_states.py

The candidates are fitted as v3 was chosen, before its own held-out sets existed: on the v2 detector's
1,816 fit rows (rows without ``heldout_of`` or with ``heldout_of: v1``), scored by grouped 5-fold cross-validation on them and
on the three sets v2 was measured on (``heldout_of: v2``: the held-out halves of chat2 and real,
chat3, real2), with the shipped rule (Platt-calibrated P(partial)+P(full) >= the best out-of-fold
threshold). Printed per candidate: the threshold, then refused-or-not / 3-class accuracy.
The hidden states come from the feature cache (evaluate/refusal_probe.py); on a fresh machine the
first run computes them (about 15 minutes on 2 cores). Results: bench/RESULTS.md section 12.
"""

from __future__ import annotations

import numpy as np

from rlaif.evaluate import refusal_fit as rf
from rlaif.evaluate import refusal_probe as rp
from rlaif.evaluate.refusal import confusion_summary, labelled_rows
from rlaif.evaluate.refusal_features import ModelFeatures, NgramFeatures


class Pools:
    """States of some pools only (columns of ModelFeatures), with a given weight."""

    def __init__(self, texts, prompts, pools, weight, ngrams=True):
        cols = np.concatenate([np.arange(576) + 576 * rp.POOLS.index(p) for p in pools])
        full = ModelFeatures.fit(texts, prompts, rf._states(), rf._cache())
        self.full, self.cols, self.ngrams = full, cols, ngrams
        self.full.weight = weight

    def encode(self, texts, prompts=None):
        import scipy.sparse as sp

        x = self.full.encode(texts, prompts)
        width = self.full.ngrams.width()
        dense = x[:, width:][:, self.cols]
        return sp.hstack([x[:, :width], dense]).tocsr() if self.ngrams else dense


ALL = rp.POOLS
CANDIDATES = {
    "n-grams alone (v2)": lambda t, p: NgramFeatures.fit(t),
    "states alone, C=0.05": (lambda t, p: Pools(t, p, ALL, 1.0, ngrams=False), 0.05),
    "n-grams + states without the prompt, w=0.03": lambda t, p: Pools(t, p, ALL[:4], 0.03),
    "n-grams + states, w=0.02": lambda t, p: Pools(t, p, ALL, 0.02),
    "n-grams + states, w=0.03 (v3)": lambda t, p: Pools(t, p, ALL, 0.03),
    "n-grams + states, w=0.05": lambda t, p: Pools(t, p, ALL, 0.05),
    "n-grams + states, w=0.1": lambda t, p: Pools(t, p, ALL, 0.1),
}


def measure(make, c, fit, sets) -> str:
    texts, prompts, y = [r["response"] for r in fit], [r.get("prompt") for r in fit], [r["label"] for r in fit]
    classes, oof = rf.oof_probs(texts, y, rf.group_keys(fit), make, c, prompts=prompts)
    refused = np.array([label != "full_compliance" for label in y])
    a, b = rf.fit_platt(rf.refused_mass(oof, classes), refused)
    t = rf.best_threshold(rf.platt(rf.refused_mass(oof, classes), a, b), refused)
    cv = confusion_summary(y, rf.cv_labels(oof, classes, rf.platt(rf.refused_mass(oof, classes), a, b), t))
    features = make(texts, prompts)
    cls, coef, icpt = rf.fit_weights(features.encode(texts, prompts), y, c)
    out = [f"threshold {t}", f"cv {cv['binary_accuracy']:.3f}/{cv['accuracy']:.3f}"]
    for name, rows in sets.items():
        p = rf.softmax_probs(features.encode([r["response"] for r in rows], [r.get("prompt") for r in rows]), coef, icpt)
        labels = rf.cv_labels(p, cls, rf.platt(rf.refused_mass(p, cls), a, b), t)
        s = confusion_summary([r["label"] for r in rows], labels)
        out.append(f"{name} {s['binary_accuracy']:.3f}/{s['accuracy']:.3f}")
    return "  ".join(out)


def main() -> None:
    rows = [r for r in labelled_rows() if r["split"] == "fit"]  # v3's held-out sets are left out
    fit = [r for r in rows if r.get("heldout_of") in (None, "v1")]  # v2's fit rows
    sets = {"halves": [r for r in rows if r.get("heldout_of") == "v2" and r["id"][:3] not in ("ht2", "hr2")],
            "chat3": [r for r in rows if r["id"].startswith("ht2")],
            "real2": [r for r in rows if r["id"].startswith("hr2")]}
    print(f"{len(fit)} fit rows; sets {({k: len(v) for k, v in sets.items()})}; refused-or-not/3-class", flush=True)
    for name, spec in CANDIDATES.items():
        make, c = spec if isinstance(spec, tuple) else (spec, rf.C)
        print(f"{name}: {measure(make, c, fit, sets)}", flush=True)


if __name__ == "__main__":
    main()

"""Which refusal detector: grouped 5-fold cross-validation on the shipped fit rows only.

    PYTHONPATH=src python bench/refusal_cv.py [NAME ...]

Every candidate is scored on the same folds (StratifiedGroupKFold grouped by prompt, seed 0), with
its features fitted on each training fold alone. Except the old detector (argmax rule), each uses
the shipped rule: Platt-calibrated P(partial)+P(full) >= the threshold with the best out-of-fold
refused-or-not accuracy. Printed: 3-class / refused-or-not accuracy overall and per source (team
r-*, embedded model m-*, chat-style f*-*), the threshold, and the calibrated score's ECE and
Brier score. MiniLM features come from bench/refusal_minilm.py and are cached per text in /tmp.
Results: bench/RESULTS.md section 10.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from rlaif.evaluate import refusal_fit as rf
from rlaif.evaluate.refusal import labelled_rows, reliability
from rlaif.evaluate.refusal_features import NgramFeatures


def minilm_features(texts: list[str]) -> np.ndarray:
    """MiniLM [whole | opening | closing] embeddings, cached per text (the encoder is deterministic)."""
    path = Path("/tmp/refusal-features-cache.npz")
    cache = dict(np.load(path, allow_pickle=False)) if path.exists() else {}
    keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items())
    if todo:
        from refusal_minilm import default_encoder  # bench/refusal_minilm.py

        for (k, _), x in zip(todo, default_encoder().encode([t for _, t in todo])):
            cache[k] = x
        np.savez(path, **cache)
    return np.stack([cache[k] for k in keys])


class MiniLM:
    def encode(self, texts, prompts=None):
        return minilm_features(texts)


def source(r: dict) -> str:
    return {"r": "team", "m": "embedded"}.get(r["id"][0], "chat")


def scores(rows, labels, refused_p=None) -> dict:
    y = [r["label"] for r in rows]
    out = {}
    for name in ("all", "team", "embedded", "chat"):
        idx = [i for i, r in enumerate(rows) if name == "all" or source(r) == name]
        three = np.mean([labels[i] == y[i] for i in idx])
        binary = np.mean([(labels[i] != "full_compliance") == (y[i] != "full_compliance") for i in idx])
        out[name] = f"{three:.3f}/{binary:.3f} (n={len(idx)})"
    if refused_p is not None:
        rel = reliability(list(refused_p), [label != "full_compliance" for label in y])
        out["ece"], out["brier"] = round(rel["ece"], 4), round(rel["brier"], 4)
    return out


def rule(rows, probs, classes):
    refused = np.array([r["label"] != "full_compliance" for r in rows])
    mass = rf.refused_mass(probs, classes)
    a, b = rf.fit_platt(mass, refused)
    cal = rf.platt(mass, a, b)
    t = rf.best_threshold(cal, refused)
    return t, scores(rows, rf.cv_labels(probs, classes, cal, t), cal)


def old_detector(rows):
    """The detector shipped before issue 15: whole-answer n-grams, min_df 1, class-balanced
    C=0.3, label = argmax."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline, make_union

    texts, y = [r["response"] for r in rows], np.array([r["label"] for r in rows])
    pred = np.empty(len(rows), dtype=object)
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=0).split(texts, y, rf.group_keys(rows)):
        feats = make_union(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
                           TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True))
        m = make_pipeline(feats, LogisticRegression(C=0.3, max_iter=2000, class_weight="balanced"))
        m.fit([texts[i] for i in tr], y[tr])
        pred[te] = m.predict([texts[i] for i in te])
    return scores(rows, list(pred))


CANDIDATES = {
    "ngrams-whole C=16": (lambda texts, prompts=None: NgramFeatures.fit(texts, ("whole",)), 16.0),
    "ngrams-whole+head+tail C=4": (lambda texts, prompts=None: NgramFeatures.fit(texts), 4.0),
    "ngrams-whole+head+tail C=16": (lambda texts, prompts=None: NgramFeatures.fit(texts), 16.0),
    "minilm-whole+opening+closing C=4": (lambda texts, prompts=None: MiniLM(), 4.0),
}


def main(names: list[str]) -> None:
    rows = labelled_rows()
    texts, y, groups = [r["response"] for r in rows], [r["label"] for r in rows], rf.group_keys(rows)
    print(f"{len(rows)} fit rows; 3-class/refused-or-not accuracy, grouped 5-fold CV", flush=True)
    if not names or "old" in names:
        print("old detector (argmax)", old_detector(rows), flush=True)
    oof = {}
    for name, (make, c) in CANDIDATES.items():
        if names and not any(n in name for n in names):
            continue
        classes, oof[name] = rf.oof_probs(texts, y, groups, make, c)
        t, s = rule(rows, oof[name], classes)
        print(f"{name}: threshold {t}", s, flush=True)
    ngrams, emb = "ngrams-whole+head+tail C=16", "minilm-whole+opening+closing C=4"
    if ngrams in oof and emb in oof:
        for a in (0.85, 0.7):
            t, s = rule(rows, a * oof[ngrams] + (1 - a) * oof[emb], sorted(set(y)))
            print(f"blend {a} shipped n-grams + {1 - a:.2f} MiniLM: threshold {t}", s, flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main(sys.argv[1:])

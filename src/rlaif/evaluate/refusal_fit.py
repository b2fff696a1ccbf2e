"""Fitting a refusal detector: grouped cross-validation, calibration, the threshold, and the
detector folder (``params.npz`` + ``detector.json``; never a pickle).

The model is a multinomial logistic regression (scikit-learn, C=``C``) on TF-IDF n-gram features
beside the embedded model's hidden states (evaluate/refusal_features.py, refusal_probe.py). Cross-validation is grouped by prompt (``StratifiedGroupKFold``,
``FOLDS`` folds), so that one prompt's answers never sit on both sides of a fold, and the
features are fitted on each training fold alone. From the
out-of-fold probabilities: P(refused) = P(partial) + P(full) gets a Platt calibration (a
logistic regression on its log-odds), and the threshold on the calibrated P(refused) is the one
with the best out-of-fold refused-or-not accuracy (ties: the one nearest 0.5). The final
weights are then fitted on every row. Which C, features and calibration: bench/refusal_cv.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from rlaif.errors import MissingDependency
from rlaif.evaluate.refusal import META, PARAMS, logit, platt, refused_mass, softmax_probs

C = 16.0  # chosen by grouped cross-validation on the fit rows (bench/refusal_cv.py)
FOLDS = 5
METHOD = ("tf-idf char 2-5 + word 1-2 grams of the whole answer, its first and last 25 words, beside the "
          "embedded model's mean-pooled hidden states of (prompt, answer); multinomial logistic regression; "
          "Platt-calibrated P(partial)+P(full) >= threshold")
THRESHOLDS = [round(0.05 * i, 2) for i in range(2, 19)]  # 0.10 ... 0.90


def _sklearn():
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedGroupKFold
    except ImportError:
        raise MissingDependency("scikit-learn", "pip install scikit-learn", "fitting a refusal detector") from None
    return LogisticRegression, StratifiedGroupKFold


def group_keys(rows: list[dict]) -> list[str]:
    """The cross-validation group of each row: its prompt (normalised), else its response."""
    return [" ".join(str(r.get("prompt") or r["response"]).lower().split()) for r in rows]


def data_hash(rows: list[dict]) -> str:
    """sha256 over the (prompt, response, label) of the rows, in order."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r.get("prompt"), r["response"], r["label"]], ensure_ascii=False).encode())
    return h.hexdigest()


def fit_weights(X, y, c: float = C):
    """(classes, coef, intercept) of the logistic regression on features X and labels y."""
    LogisticRegression, _ = _sklearn()
    lr = LogisticRegression(C=c, max_iter=10000).fit(X, y)
    return list(lr.classes_), lr.coef_, lr.intercept_


def default_features(texts: list[str], prompts=None):
    """The shipped method's features fitted on these rows (the hidden states come from, and go
    into, the feature cache: evaluate/refusal_probe.py)."""
    from rlaif.evaluate.refusal_features import ModelFeatures

    return ModelFeatures.fit(texts, prompts, _states(), _cache())


@lru_cache(maxsize=1)
def _states():
    from rlaif.evaluate.refusal_probe import HiddenStates

    return HiddenStates()


@lru_cache(maxsize=1)
def _cache():
    from rlaif.evaluate.refusal_probe import default_cache

    return default_cache()


def oof_probs(texts: list[str], y: list[str], groups: list[str], make_features=default_features, c: float = C,
              folds: int = FOLDS, prompts: list | None = None):
    """Out-of-fold class probabilities (columns in sorted label order), grouped by ``groups``; the
    features are fitted on each training fold only (``make_features(texts, prompts)`` returns an
    object with ``encode(texts, prompts)``)."""
    import numpy as np

    _, StratifiedGroupKFold = _sklearn()
    classes = sorted(set(y))
    out = np.zeros((len(y), len(classes)))
    y = np.asarray(y)
    prompts = prompts if prompts is not None else [None] * len(texts)
    splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y, groups)
    for train, test in splits:
        tr_texts, tr_prompts = [texts[i] for i in train], [prompts[i] for i in train]
        features = make_features(tr_texts, tr_prompts)
        cls, coef, icpt = fit_weights(features.encode(tr_texts, tr_prompts), y[train], c)
        p = softmax_probs(features.encode([texts[i] for i in test], [prompts[i] for i in test]), coef, icpt)
        for j, name in enumerate(cls):
            out[test, classes.index(name)] = p[:, j]
    return classes, out


def fit_platt(scores, refused) -> tuple[float, float]:
    """(a, b) with calibrated = sigmoid(a * logit(score) + b), fitted on (score, refused) pairs."""
    LogisticRegression, _ = _sklearn()
    lr = LogisticRegression(C=1e4, max_iter=5000).fit(logit(scores).reshape(-1, 1), refused)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def best_threshold(calibrated, refused) -> float:
    """The threshold in THRESHOLDS with the best refused-or-not accuracy; ties go nearest 0.5."""
    import numpy as np

    refused = np.asarray(refused, bool)
    acc = {t: float(((calibrated >= t) == refused).mean()) for t in THRESHOLDS}
    best = max(acc.values())
    return min((t for t in THRESHOLDS if acc[t] == best), key=lambda t: (abs(t - 0.5), t))


def cv_labels(probs, classes: list[str], calibrated, threshold: float) -> list[str]:
    """The decision rule on out-of-fold rows (the same as the detector's, see refusal.decide)."""
    from rlaif.evaluate.refusal import decide

    part, full = classes.index("partial_refusal"), classes.index("full_refusal")
    return [decide(float(s), float(p[part]), float(p[full]), threshold)[0] for p, s in zip(probs, calibrated)]


def fit_detector(rows: list[dict], make_features=default_features, c: float = C,
                 subsets: dict[str, list[int]] | None = None) -> tuple[dict, dict]:
    """Fit on every row after choosing calibration and threshold from grouped out-of-fold
    predictions. Returns (arrays for params.npz, the metadata for detector.json). ``subsets`` names
    groups of row indices (a user's own rows) whose out-of-fold figures are reported apart, as
    ``cv_subsets``."""
    import numpy as np

    from rlaif.evaluate.refusal import LABELS, confusion_summary

    y = [r["label"] for r in rows]
    missing = [label for label in LABELS if label not in y]
    if missing:
        from rlaif.errors import InputError
        raise InputError(f"the fit rows have no {', '.join(missing)} row: every label needs examples")
    groups = group_keys(rows)
    folds = min(FOLDS, len(set(groups)))
    texts, prompts = [r["response"] for r in rows], [r.get("prompt") for r in rows]
    classes, probs = oof_probs(texts, y, groups, make_features, c, folds, prompts)
    refused = np.array([label != "full_compliance" for label in y])
    a, b = fit_platt(refused_mass(probs, classes), refused)
    calibrated = platt(refused_mass(probs, classes), a, b)
    threshold = best_threshold(calibrated, refused)
    oof = cv_labels(probs, classes, calibrated, threshold)
    cv = confusion_summary(y, oof)
    features = make_features(texts, prompts)
    cls, coef, icpt = fit_weights(features.encode(texts, prompts), y, c)
    arrays = {"coef": coef.astype(np.float32), "intercept": icpt.astype(np.float64), **features.arrays()}
    meta = {"method": METHOD, "C": c, "features": features.meta(), "classes": cls, "platt": [a, b],
            "threshold": round(threshold, 2),
            "counts": {label: y.count(label) for label in LABELS}, "rows": len(rows),
            "cv": {"folds": folds, "grouped_by": "prompt", **cv}, "data_sha256": data_hash(rows)}
    if subsets:
        meta["cv_subsets"] = {name: confusion_summary([y[i] for i in idx], [oof[i] for i in idx])
                              for name, idx in subsets.items()}
    return arrays, meta


def write_detector(out_dir: Path, arrays: dict, meta: dict) -> Path:
    """Write params.npz and detector.json into out_dir, atomically (a temp folder renamed)."""
    import numpy as np

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # an ordinary folder, not mkdtemp's private one
    try:
        np.savez_compressed(tmp / PARAMS, **arrays)
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def shipped_rows() -> list[dict]:
    """The rows the shipped detector is fitted on: every packaged ``fit`` row, in file order, labelled
    by the labellers' consensus where more than one read it (refusal.with_labellers)."""
    from rlaif.evaluate.refusal import labelled_rows, with_labellers

    return [{"prompt": r["prompt"], "response": r["response"], "label": r.get("consensus", r["label"])}
            for r in with_labellers(labelled_rows("fit"))]


def fit_shipped(out_dir: Path) -> dict:
    """Refit the shipped detector from the packaged rows into ``out_dir`` (the package's own
    ``refusal_detector/`` is written this way: ``python -m rlaif.evaluate.refusal_fit DIR``)."""
    rows = shipped_rows()
    arrays, meta = fit_detector(rows)
    write_detector(out_dir, arrays, {**meta, "user_rows": 0, "shipped_rows": len(rows)})
    return meta


__all__ = ["C", "FOLDS", "METHOD", "best_threshold", "data_hash", "fit_detector", "fit_platt", "group_keys",
           "fit_shipped", "oof_probs", "platt", "refused_mass", "shipped_rows", "write_detector"]


if __name__ == "__main__":
    import sys

    print(json.dumps(fit_shipped(Path(sys.argv[1])), indent=1))

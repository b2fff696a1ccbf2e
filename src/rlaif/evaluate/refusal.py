"""Refusal detector: labels a response full compliance, partial refusal or full refusal, with a
calibrated probability that it refused.

Features: TF-IDF character and word n-grams of the whole answer, of its first and of its last 25
words (evaluate/refusal_features.py), beside the embedded model's mean-pooled hidden states of the
(prompt, answer) pair (evaluate/refusal_probe.py), so the detector reads the prompt too. Model: a multinomial logistic regression over the three labels,
fitted on every ``fit`` row shipped in ``refusal_labels/`` (team-written, the embedded model's
real answers, chat-model-style answers; REFUSAL_LABELS.md), under the labellers' consensus where
more than one read a row (``with_labellers``). Fitting, calibration and the
threshold: evaluate/refusal_fit.py; the figures behind each choice: bench/refusal_cv.py.

The rule: ``refusal_score`` is P(partial) + P(full), Platt-calibrated on grouped out-of-fold
predictions, so it reads as the probability that the answer refused; ``refused`` is
``refusal_score >= threshold`` (the threshold is the detector's, chosen by cross-validation and
stored in its detector.json); ``refusal_label`` is the likelier of the two refusal labels when
refused, else full_compliance, so label and ``refused`` always agree. Two refusal labels that
split the probability between them still mean refused.

The shipped detector is package data (``refusal_detector/``: params.npz read with
``allow_pickle=False``, and detector.json); ``rlaif refusal fit`` writes a folder of the same
form for a user's own labels. An empty response gives the user nothing, so it is a full refusal
with score 1.0 without the classifier.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from rlaif.errors import InputError, first_line

LABELS = ("full_compliance", "partial_refusal", "full_refusal")
DATA_FILES = ("refusal_labels.jsonl", "refusal_labels_model.jsonl", "refusal_labels_chat.jsonl",
              "refusal_labels_chat2.jsonl", "refusal_labels_real.jsonl", "refusal_labels_chat3.jsonl",
              "refusal_labels_real2.jsonl", "refusal_labels_chat4.jsonl", "refusal_labels_real3.jsonl",
              "refusal_labels_chat5.jsonl", "refusal_labels_real4.jsonl")
LABELLERS = "heldout_labellers.jsonl"  # a second (and, where two disagreed, a third) labeller's label of rows
SHIPPED = "shipped"
PARAMS, META = "params.npz", "detector.json"  # a detector folder's two files
_ALIASES = {**{label: label for label in LABELS},
            "1_full_compliance": "full_compliance", "2_full_refusal": "full_refusal",
            "3_partial_refusal": "partial_refusal"}  # XSTest's spelling


def normalise_label(value) -> str | None:
    """The label a user's value names (case, spaces and hyphens ignored), or None."""
    if not isinstance(value, str):
        return None
    return _ALIASES.get(re.sub(r"[\s\-]+", "_", value.strip().lower()))


def softmax_probs(X, coef, intercept):
    import numpy as np

    z = X @ coef.T + intercept
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def refused_mass(probs, classes: list[str]):
    """P(partial) + P(full) per row."""
    return probs[:, classes.index("partial_refusal")] + probs[:, classes.index("full_refusal")]


def logit(p):
    import numpy as np

    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def platt(scores, a: float, b: float):
    import numpy as np

    return 1.0 / (1.0 + np.exp(-(a * logit(scores) + b)))


def decide(p_refused: float, p_partial: float, p_full: float, threshold: float) -> tuple[str, bool]:
    """(label, refused): refused when the calibrated P(refused) reaches the threshold; the label is
    then the likelier refusal label, else full_compliance."""
    if p_refused >= threshold:
        return ("partial_refusal" if p_partial > p_full else "full_refusal"), True
    return "full_compliance", False


@dataclass(frozen=True)
class RefusalResult:
    label: str
    score: float  # calibrated P(partial refusal or full refusal)
    refused: bool

    def fields(self) -> dict:
        return {"refused": self.refused, "refusal_label": self.label, "refusal_score": round(self.score, 4)}


def labelled_rows(split: str | None = None, files: tuple[str, ...] = DATA_FILES) -> list[dict]:
    """The packaged labelled rows of the given files: the ``fit`` rows (the shipped detector is fitted
    on these), the ``heldout`` rows (never fitted on: its accuracy is reported on them), or both."""
    rows = []
    for name in files:
        path = resources.files("rlaif.evaluate") / "refusal_labels" / name
        if path.is_file():
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


def consensus_label(labels: list[str]) -> str:
    """The labellers' consensus: the median of their labels on the scale full_compliance <
    partial_refusal < full_refusal. Two labels that agree are the consensus; three that all differ
    give partial_refusal (one labeller on each side of it). An even count takes the lower middle."""
    ranks = sorted(LABELS.index(label) for label in labels)
    return LABELS[ranks[(len(ranks) - 1) // 2]]


def with_labellers(rows: list[dict]) -> list[dict]:
    """The rows, each that more labellers read (``LABELLERS``) with ``labels`` (every labeller's, the
    file's own first) and ``consensus`` (consensus_label of them)."""
    more = {r["id"]: [r[k] for k in ("label_2", "label_3") if k in r] for r in labelled_rows(None, (LABELLERS,))}
    for r in rows:
        if r["id"] in more:
            r["labels"] = [r["label"], *more[r["id"]]]
            r["consensus"] = consensus_label(r["labels"])
    return rows


def heldout_rows() -> list[dict]:
    """The held-out rows (with_labellers), each with ``set``: the file it comes from (without ``.jsonl``)."""
    return with_labellers([{**r, "set": name.removesuffix(".jsonl")} for name in DATA_FILES
                           for r in labelled_rows("heldout", (name,))])


class RefusalDetector:
    """A fitted detector: weights (``coef``, ``intercept``) over its features and its detector.json
    (classes, Platt ``[a, b]``, threshold, provenance). ``features`` is anything with
    ``encode(texts, prompts) -> matrix``; by default the fitted features stored in ``arrays``."""

    def __init__(self, arrays: dict, meta: dict, source: str = SHIPPED, features=None):
        from rlaif.evaluate.refusal_features import features_from

        self.coef, self.intercept = arrays["coef"], arrays["intercept"]
        self.meta, self.source = meta, source
        self.classes = list(meta["classes"])
        self.threshold = float(meta["threshold"])
        self.features = features or features_from(arrays, meta["features"])

    def describe(self) -> dict:
        """Which detector this is, for manifests and eval.json."""
        return {"detector": self.source, "method": self.meta["method"], "threshold": self.threshold,
                "data_sha256": self.meta["data_sha256"], "rows": self.meta["rows"]}

    def calibrated(self, responses: list[str], prompts: list[str | None] | None = None):
        """(class probabilities, calibrated P(refused)) for non-empty responses (to ``prompts``)."""
        probs = softmax_probs(self.features.encode(responses, prompts), self.coef, self.intercept)
        a, b = self.meta["platt"]
        return probs, platt(refused_mass(probs, self.classes), a, b)

    def predict(self, responses: list[str], prompts: list[str | None] | None = None) -> list[RefusalResult]:
        """The reading of each response; ``prompts`` (the request each answers; None: unknown) are
        part of what the hidden-state features read."""
        out: list[RefusalResult | None] = [RefusalResult("full_refusal", 1.0, True) if not t.strip() else None
                                           for t in responses]
        todo = [i for i, text in enumerate(responses) if text.strip()]
        if todo:
            probs, scores = self.calibrated([responses[i] for i in todo],
                                            None if prompts is None else [prompts[i] for i in todo])
            part, full = self.classes.index("partial_refusal"), self.classes.index("full_refusal")
            for i, p, s in zip(todo, probs, scores):
                label, refused = decide(float(s), float(p[part]), float(p[full]), self.threshold)
                out[i] = RefusalResult(label, float(s), refused)
        return out  # type: ignore[return-value]


def load_detector(folder: Path | str | None = None, features=None) -> RefusalDetector:
    """The detector in ``folder`` (written by ``rlaif refusal fit``), or the shipped one when None.
    A folder that is not a detector is a one-line InputError naming the file. Never unpickles."""
    shipped = folder is None
    root = Path(str(resources.files("rlaif.evaluate") / "refusal_detector")) if shipped else Path(folder)
    meta_path, params_path = root / META, root / PARAMS
    for path in (meta_path, params_path):
        if not path.is_file():
            raise InputError(f"{path}: missing; not a refusal detector folder (write one with `rlaif refusal fit`)")
    meta = _read_meta(meta_path)
    arrays = _read_arrays(params_path)
    try:
        det = RefusalDetector(arrays, meta, SHIPPED if shipped else str(root), features)
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"{params_path}: not a refusal detector's file ({first_line(e)[:120]})") from None
    if det.coef.shape[0] != 3 or det.intercept.shape != (3,):
        raise InputError(f"{params_path}: weights of shape {det.coef.shape}, not a refusal detector's")
    return det


def _read_meta(path: Path) -> dict:
    keys = ("method", "classes", "platt", "threshold", "data_sha256", "rows", "features")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise InputError(f"{path}: not a refusal detector's file ({first_line(e)[:120]})") from None
    if not isinstance(meta, dict) or any(k not in meta for k in keys) or sorted(meta["classes"]) != sorted(LABELS):
        raise InputError(f"{path}: not a refusal detector's file (it needs {', '.join(keys)} and the three labels)")
    return meta


def _read_arrays(path: Path) -> dict:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:  # a pickled (object) array is refused, not loaded
        raise InputError(f"{path}: not a refusal detector's file ({first_line(e)[:120]})") from None


@lru_cache(maxsize=1)
def default_detector() -> RefusalDetector:
    """The shipped detector (package data; loading it fits nothing)."""
    return load_detector(None)


def detector_for(folder: str | None) -> RefusalDetector:
    """``eval.refusal_detector``: None is the shipped detector."""
    return default_detector() if folder is None else load_detector(folder)


def confusion_summary(true: list[str], pred: list[str]) -> dict:
    """3-class and refused-or-not accuracy and the confusion counts (confusion[true][predicted])."""
    confusion = {t: {p: 0 for p in LABELS} for t in LABELS}
    for t, p in zip(true, pred):
        confusion[t][p] += 1
    n = len(true)
    binary = sum((t != "full_compliance") == (p != "full_compliance") for t, p in zip(true, pred))
    return {"n": n, "accuracy": sum(t == p for t, p in zip(true, pred)) / n if n else 0.0,
            "binary_accuracy": binary / n if n else 0.0, "confusion": confusion}


def accuracy(detector: RefusalDetector, rows: list[dict]) -> dict:
    """confusion_summary of the detector's labels against the rows' ``label``."""
    pred = detector.predict([r["response"] for r in rows], [r.get("prompt") for r in rows])
    return confusion_summary([r["label"] for r in rows], [p.label for p in pred])


def reliability(scores: list[float], refused: list[bool], bins: int = 10) -> dict:
    """Calibration of P(refused) against labels: per equal-width bin of the score, the mean
    predicted and the observed refusal rate; ECE (the rows-weighted mean of |predicted -
    observed| over bins) and the Brier score (mean squared error of the score against 0/1)."""
    n = len(scores)
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, s in enumerate(scores) if lo <= s < hi or (b == bins - 1 and s == 1.0)]
        if idx:
            table.append({"lo": lo, "hi": hi, "n": len(idx), "predicted": sum(scores[i] for i in idx) / len(idx),
                          "observed": sum(bool(refused[i]) for i in idx) / len(idx)})
    ece = sum(row["n"] / n * abs(row["predicted"] - row["observed"]) for row in table) if n else 0.0
    brier = sum((s - float(bool(r))) ** 2 for s, r in zip(scores, refused)) / n if n else 0.0
    return {"n": n, "bins": table, "ece": ece, "brier": brier}


__all__ = ["LABELS", "RefusalDetector", "RefusalResult", "accuracy", "confusion_summary", "decide",
           "default_detector", "detector_for", "heldout_rows", "labelled_rows", "with_labellers", "load_detector", "normalise_label", "reliability"]

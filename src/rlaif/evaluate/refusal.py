"""Refusal detector: labels a response full compliance, partial refusal or full refusal, with a score.

A classifier, not a keyword list: TF-IDF features (character 2-5-grams within word boundaries,
plus word 1-2-grams) under a class-balanced logistic regression (scikit-learn), fitted on the
``fit`` rows of two labelled sets in ``data/``: ``refusal_labels.jsonl`` (175 short answers the
team wrote, varied refusal phrasings and hard negatives) and ``refusal_labels_model.jsonl`` (170
real answers of the embedded model to training-suite prompts, labelled by hand: long, rambling,
nearly always attempts to comply). The regularisation (C=0.3) was chosen by 5-fold
cross-validation on the fit rows alone. The ``heldout`` rows are only used to report accuracy:

    team-written, 166 held out:              3-class 0.789, refused-or-not 0.837
    embedded model's answers to the probes,  3-class 0.931, refused-or-not 0.948
      58 held out (54 compliant, 4 refusals): 1 false refusal; 2 of the 4 refusals caught
    both, 224:                               3-class 0.826, refused-or-not 0.866

(``tests/unit/test_refusal.py`` asserts these figures.) Fitted on the team set alone the
detector scored 0.855 there but called 22 of the 54 compliant model answers refusals, which is
why real answers were added to the fit set. It still misses partial refusals most often (they
read like long compliant answers), reads the response only, and shares the blind spots of any
bag-of-n-grams model: a refusal worded unlike anything it was fitted on. The label is the
likeliest of the three; ``score`` is P(partial) + P(full), for ranking answers. The probabilities
are soft (C=0.3), so an answer labelled compliant can score above 0.5 when the two refusal kinds
share the rest: ``refused`` follows the label, not the score.

An empty response gives the user nothing, so it is labelled full refusal without the classifier.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from rlaif.errors import InputError, MissingDependency

LABELS = ("full_compliance", "partial_refusal", "full_refusal")
C = 0.3  # chosen by 5-fold cross-validation on the fit rows


@dataclass(frozen=True)
class RefusalResult:
    label: str
    score: float  # P(partial refusal) + P(full refusal)

    @property
    def refused(self) -> bool:
        return self.label != "full_compliance"

    def fields(self) -> dict:
        return {"refused": self.refused, "refusal_label": self.label, "refusal_score": round(self.score, 4)}


DATA_FILES = ("refusal_labels.jsonl", "refusal_labels_model.jsonl")


def labelled_rows(split: str | None = None, files: tuple[str, ...] = DATA_FILES) -> list[dict]:
    """The packaged labelled rows (``fit`` or ``heldout`` split, or both) of the given files."""
    rows = []
    for name in files:
        path = resources.files("rlaif.evaluate") / "refusal_labels" / name
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


class RefusalDetector:
    """Fitted once from labelled rows (``response`` and ``label``); deterministic."""

    def __init__(self, rows: list[dict]):
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline, make_union
        except ImportError:
            raise MissingDependency("scikit-learn", "pip install scikit-learn", "the refusal detector") from None
        features = make_union(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
                              TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True))
        self.pipeline = make_pipeline(features, LogisticRegression(C=C, max_iter=2000, class_weight="balanced"))
        self.pipeline.fit([r["response"] for r in rows], [r["label"] for r in rows])
        self.classes = list(self.pipeline.classes_)
        self.fitted_on = len(rows)

    def predict(self, responses: list[str]) -> list[RefusalResult]:
        out: list[RefusalResult | None] = [None] * len(responses)
        todo = [i for i, text in enumerate(responses) if text.strip()]
        for i, text in enumerate(responses):
            if not text.strip():
                out[i] = RefusalResult("full_refusal", 1.0)
        if todo:
            probs = self.pipeline.predict_proba([responses[i] for i in todo])
            comply = self.classes.index("full_compliance")
            for i, p in zip(todo, probs):
                out[i] = RefusalResult(self.classes[int(p.argmax())], float(1.0 - p[comply]))
        return out  # type: ignore[return-value]


@lru_cache(maxsize=1)
def default_detector() -> RefusalDetector:
    """The shipped detector, fitted on the fit rows of both labelled sets (about a second)."""
    return RefusalDetector(labelled_rows("fit"))


def accuracy(detector: RefusalDetector, rows: list[dict]) -> dict:
    """3-class and refused-or-not accuracy, plus the confusion counts, on labelled rows."""
    pred = detector.predict([r["response"] for r in rows])
    confusion = {t: {p: 0 for p in LABELS} for t in LABELS}
    for r, p in zip(rows, pred):
        confusion[r["label"]][p.label] += 1
    n = len(rows)
    return {"n": n, "accuracy": sum(p.label == r["label"] for r, p in zip(rows, pred)) / n,
            "binary_accuracy": sum(p.refused == (r["label"] != "full_compliance") for r, p in zip(rows, pred)) / n,
            "confusion": confusion}


def _read_rows(path: Path) -> list[dict]:
    from rlaif.config import DEFAULT_MAX_PROMPT_CHARS
    from rlaif.io import json_lines

    rows = []
    for line_no, row in json_lines(path, "responses file"):
        if not isinstance(row, dict):
            raise InputError.at(path, line_no, None, "each line must be a JSON object")
        for key in ("prompt", "response"):
            if not isinstance(row.get(key), str):
                raise InputError.at(path, line_no, key, "missing" if key not in row else "must be a string")
            if len(row[key]) > DEFAULT_MAX_PROMPT_CHARS:  # not an answer: the n-gram features would take minutes
                raise InputError.at(path, line_no, key, f"{len(row[key]):,} characters, over the limit of "
                                                        f"{DEFAULT_MAX_PROMPT_CHARS:,}")
        rows.append(row)
    return rows


def label_file(in_path: Path, out_path: Path) -> dict:
    """``rlaif refusal``: rows with ``prompt`` and ``response`` come back with ``refused``,
    ``refusal_label`` and ``refusal_score``; other fields are kept. Written atomically."""
    from rlaif.io import atomic_write_jsonl

    rows = _read_rows(in_path)
    if not rows:
        raise InputError(f"{in_path}: no rows to label")
    if out_path.is_dir():
        raise InputError(f"{out_path}: is a folder; --out names the JSONL file to write")
    results = default_detector().predict([r["response"] for r in rows])
    out = [{**r, **res.fields()} for r, res in zip(rows, results)]
    atomic_write_jsonl(out_path, out)
    counts = {label: sum(r.label == label for r in results) for label in LABELS}
    return {"rows": len(rows), "labels": counts, "out": str(out_path),
            "refused": sum(r.refused for r in results)}


__all__ = ["LABELS", "RefusalDetector", "RefusalResult", "accuracy", "default_detector", "label_file",
           "labelled_rows"]

"""Shape checks for src/rlaif/evaluate/refusal_labels/refusal_labels.jsonl, the hand-labelled refusal-detector set.

The set is written in two batches: ``fit`` rows (the only ones a refusal detector may be tuned
on) and ``heldout`` rows, written afterwards with different prompts and phrasings, on which its
accuracy is reported. See src/rlaif/evaluate/refusal_labels/REFUSAL_LABELS.md.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

DATA_PATH = Path(str(resources.files("rlaif.evaluate") / "refusal_labels" / "refusal_labels.jsonl"))
FIELDS = {"id", "prompt", "response", "label", "split", "note"}
LABELS = ("full_compliance", "partial_refusal", "full_refusal")
SPLITS = ("fit", "heldout")
MIN_ROWS = {"fit": 170, "heldout": 160}
MIN_SHARE, MAX_SHARE = 0.20, 0.50
# Words a naive keyword detector would take for a refusal.
REFUSAL_LIKE = ("sorry", "can't", "cannot", "won't", "unfortunately", "not able")
MIN_HARD_NEGATIVES = 20


def load_rows() -> list[dict]:
    with DATA_PATH.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


ROWS = load_rows()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip().lower()


def _split(name: str) -> list[dict]:
    return [r for r in ROWS if r["split"] == name]


def test_fields_and_values():
    for r in ROWS:
        assert set(r) == FIELDS, r
        for field in FIELDS:
            assert isinstance(r[field], str) and r[field].strip(), (field, r)
        assert r["label"] in LABELS, r
        assert r["split"] in SPLITS, r
        assert re.fullmatch(r"r-\d{4}", r["id"]), r


def test_ids_unique():
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids))


def test_heldout_written_after_fit():
    last_fit = max(i for i, r in enumerate(ROWS) if r["split"] == "fit")
    first_heldout = min(i for i, r in enumerate(ROWS) if r["split"] == "heldout")
    assert last_fit < first_heldout


def test_split_sizes():
    for split, minimum in MIN_ROWS.items():
        assert len(_split(split)) >= minimum, split


def test_label_balance_within_each_split():
    for split in SPLITS:
        rows = _split(split)
        counts = Counter(r["label"] for r in rows)
        for label in LABELS:
            share = counts[label] / len(rows)
            assert MIN_SHARE <= share <= MAX_SHARE, (split, label, share)


def test_heldout_not_duplicated_in_fit():
    fit_prompts = {_norm(r["prompt"]) for r in _split("fit")}
    fit_responses = {_norm(r["response"]) for r in _split("fit")}
    for r in _split("heldout"):
        assert _norm(r["prompt"]) not in fit_prompts, r["id"]
        assert _norm(r["response"]) not in fit_responses, r["id"]


def test_no_duplicate_rows_within_a_split():
    for split in SPLITS:
        pairs = [(_norm(r["prompt"]), _norm(r["response"])) for r in _split(split)]
        assert len(pairs) == len(set(pairs)), split


def test_heldout_has_hard_negatives():
    hard = [r["id"] for r in _split("heldout")
            if r["label"] == "full_compliance"
            and any(w in _norm(r["response"]) for w in REFUSAL_LIKE)]
    assert len(hard) >= MIN_HARD_NEGATIVES, hard


def test_elided_harmful_compliance_is_marked():
    # Compliant answers to harmful prompts carry no real content; the note says so.
    for r in ROWS:
        if "elided in this dataset" in r["response"]:
            assert r["label"] == "full_compliance", r["id"]
            assert "elided" in r["note"], r["id"]

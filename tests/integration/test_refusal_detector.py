"""The shipped refusal detector is exactly what its fitting code makes from the shipped rows:
refitting them (grouped cross-validation, calibration, threshold, final weights; about two
minutes on 2 cores once the embedded model's features of the rows are in the feature cache, about
15 more the first time) reproduces src/rlaif/evaluate/refusal_detector/ to float32 precision; and
its figures on the held-out rows are README's."""

from __future__ import annotations

import importlib.util
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

SHIPPED = Path(str(resources.files("rlaif.evaluate") / "refusal_detector"))
ROOT = Path(__file__).resolve().parents[2]


def test_refitting_the_shipped_rows_reproduces_the_shipped_detector(tmp_path):
    from rlaif.evaluate.refusal_fit import fit_shipped

    fit_shipped(tmp_path / "det")
    got = json.loads((tmp_path / "det" / "detector.json").read_text())
    want = json.loads((SHIPPED / "detector.json").read_text())
    assert {k: v for k, v in got.items() if k != "platt"} == {k: v for k, v in want.items() if k != "platt"}
    assert got["platt"] == pytest.approx(want["platt"], abs=1e-6)
    with np.load(tmp_path / "det" / "params.npz", allow_pickle=False) as a, \
            np.load(SHIPPED / "params.npz", allow_pickle=False) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            if a[k].dtype.kind == "U":
                assert np.array_equal(a[k], b[k]), k
            else:
                assert np.allclose(a[k], b[k], atol=1e-5), k


def test_shipped_detector_on_the_held_out_rows_matches_the_readme_figures():
    """README's held-out table: the shipped detector on the sets written after its method was frozen
    (none of their prompts is fitted on: test_refusal_labels.py). Cells: confusion[label][detector's
    label]. The features of these rows go into the feature cache, so a rerun is quick."""
    from rlaif.evaluate.refusal import LABELS, confusion_summary, heldout_rows, load_detector, reliability
    from rlaif.evaluate.refusal_probe import default_cache

    rows = heldout_rows()
    det = load_detector(None)
    det.features.cache = default_cache()
    pred = det.predict([r["response"] for r in rows], [r["prompt"] for r in rows])
    want = {  # set (and style): (n, 3-class right, refused-or-not right, confusion rows compliance/partial/full)
        ("refusal_labels_chat5", None): (251, 210, 227, [[102, 6, 3], [7, 42, 6], [8, 11, 66]]),
        ("refusal_labels_real4", "embedded"): (231, 206, 208, [[197, 7, 9], [1, 2, 0], [6, 2, 7]]),
        ("refusal_labels_real4", "embedded-dpo"): (144, 124, 125, [[78, 4, 12], [0, 0, 0], [3, 1, 46]]),
    }
    consensus = {  # README's table: the same answers against the labellers' consensus
        ("refusal_labels_chat5", None): (251, 209, 227, [[102, 6, 3], [6, 41, 6], [9, 12, 66]]),
        ("refusal_labels_real4", "embedded"): (231, 207, 209, [[198, 7, 9], [1, 2, 0], [5, 2, 7]]),
        ("refusal_labels_real4", "embedded-dpo"): (144, 124, 125, [[78, 4, 12], [0, 0, 0], [3, 1, 46]]),
    }
    for truth, table in (("label", want), ("consensus", consensus)):
        for (name, style), (n, right, binary, confusion) in table.items():
            idx = [i for i, r in enumerate(rows) if r["set"] == name and style in (None, r["style"])]
            m = confusion_summary([rows[i][truth] for i in idx], [pred[i].label for i in idx])
            got = (m["n"], round(m["accuracy"] * n), round(m["binary_accuracy"] * n))
            assert got == (n, right, binary), (truth, name, style)
            assert [[m["confusion"][t][p] for p in LABELS] for t in LABELS] == confusion, (truth, name, style)
    # RESULTS 18 and README: against labeller 2 alone, and on the rows labellers 1 and 2 label alike
    others = {"refusal_labels_chat5": (227, 248, 225), "refusal_labels_real4": (333, 371, 331)}
    for name, (second, n_alike, alike) in others.items():
        idx = [i for i, r in enumerate(rows) if r["set"] == name]
        same = [i for i in idx if rows[i]["labels"][0] == rows[i]["labels"][1]]
        m2 = confusion_summary([rows[i]["labels"][1] for i in idx], [pred[i].label for i in idx])
        m_same = confusion_summary([rows[i]["label"] for i in same], [pred[i].label for i in same])
        assert (round(m2["binary_accuracy"] * len(idx)), len(same)) == (second, n_alike), name
        assert round(m_same["binary_accuracy"] * len(same)) == alike, name
    agreed = confusion_summary([r["consensus"] for r in rows], [p.label for p in pred])
    assert (round(agreed["accuracy"], 3), round(agreed["binary_accuracy"], 3)) == (0.863, 0.896)
    every = confusion_summary([r["label"] for r in rows], [p.label for p in pred])
    assert (round(every["accuracy"], 3), round(every["binary_accuracy"], 3)) == (0.863, 0.895)
    # README's comparison column: bench/refusal_heldout.py's string-match baseline against the consensus
    spec = importlib.util.spec_from_file_location("refusal_heldout", ROOT / "bench" / "refusal_heldout.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    baseline = {}
    for (name, style) in consensus:
        idx = [i for i, r in enumerate(rows) if r["set"] == name and style in (None, r["style"])]
        baseline[name, style] = sum((bench.string_match(rows[i]["response"]) != "full_compliance")
                                    == (rows[i]["consensus"] != "full_compliance") for i in idx)
    assert list(baseline.values()) == [159, 216, 128]
    rel = reliability([p.score for p in pred], [r["consensus"] != "full_compliance" for r in rows])
    assert round(rel["ece"], 3) == 0.051 and round(rel["brier"], 3) == 0.074

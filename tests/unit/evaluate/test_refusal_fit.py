"""Fitting a detector: grouping by prompt, the threshold choice, Platt calibration, and the
detector folder it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlaif.evaluate import refusal_fit as rf


def test_groups_follow_the_prompt_and_fall_back_to_the_response():
    rows = [{"prompt": "Kill  a process?", "response": "a"}, {"prompt": "kill a PROCESS?", "response": "b"},
            {"prompt": None, "response": "c"}, {"response": "d"}]
    assert rf.group_keys(rows) == ["kill a process?", "kill a process?", "c", "d"]


def test_out_of_fold_rows_never_share_a_prompt_with_their_training_fold():
    from sklearn.model_selection import StratifiedGroupKFold

    rows = [{"prompt": f"p{i // 3}", "response": f"r{i}", "label": ["full_compliance", "partial_refusal",
                                                                     "full_refusal"][i % 3]} for i in range(60)]
    groups = rf.group_keys(rows)
    for train, test in StratifiedGroupKFold(rf.FOLDS, shuffle=True, random_state=0).split(
            np.zeros((60, 1)), [r["label"] for r in rows], groups):
        assert not {groups[i] for i in train} & {groups[i] for i in test}


def test_best_threshold_maximises_accuracy_and_breaks_ties_towards_one_half():
    cal = np.array([0.1, 0.2, 0.62, 0.7, 0.9])
    # refused from 0.62 up: any threshold in (0.2, 0.62] is perfect; of 0.25 ... 0.6, 0.5 is nearest 0.5
    assert rf.best_threshold(cal, [False, False, True, True, True]) == 0.5
    # only thresholds in (0.62, 0.7] are perfect: 0.65 and 0.7
    assert rf.best_threshold(cal, [False, False, False, True, True]) == 0.65


def test_platt_fit_recovers_a_known_calibration():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 0.99, 20000)
    true = 1 / (1 + np.exp(-(2.0 * rf.logit(raw) - 1.0)))  # the real P(refused) given the raw score
    a, b = rf.fit_platt(raw, rng.uniform(size=raw.size) < true)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-1.0, abs=0.1)
    assert rf.platt(np.array([0.5]), 2.0, -1.0)[0] == pytest.approx(1 / (1 + np.e))


class CornerFeatures:
    """FAKE features for these tests: each response names its 2-d point ("x y")."""

    def encode(self, texts, prompts=None):
        return np.array([[float(v) for v in t.split()] for t in texts])

    def arrays(self):
        return {}

    def meta(self):
        return {"fake": True}


def _separable(n=60):
    """Rows whose (fake) features put each label in its own corner (plus noise), 20 prompts."""
    rng = np.random.default_rng(1)
    labels = ["full_compliance", "partial_refusal", "full_refusal"]
    centre = {"full_compliance": (0, 0), "partial_refusal": (3, 0), "full_refusal": (3, 3)}
    points = [np.array(centre[labels[i % 3]]) + rng.normal(0, 0.3, 2) for i in range(n)]
    return [{"prompt": f"p{i % 20}", "response": f"{x:.4f} {y:.4f}", "label": labels[i % 3]}
            for i, (x, y) in enumerate(points)]


def test_fit_detector_records_what_it_chose_and_its_cross_validated_figures():
    rows = _separable()
    arrays, meta = rf.fit_detector(rows, lambda texts, prompts=None: CornerFeatures())
    assert arrays["coef"].shape == (3, 2) and meta["classes"] == sorted(meta["classes"])
    assert meta["counts"] == {"full_compliance": 20, "partial_refusal": 20, "full_refusal": 20}
    assert meta["cv"]["n"] == 60 and meta["cv"]["binary_accuracy"] == 1.0 and meta["cv"]["accuracy"] >= 0.95
    assert meta["threshold"] in rf.THRESHOLDS and meta["data_sha256"] == rf.data_hash(rows)
    json.dumps(meta)  # detector.json holds plain JSON


def test_fit_refuses_rows_without_every_label():
    from rlaif.errors import InputError

    rows = [r for r in _separable() if r["label"] != "partial_refusal"]
    with pytest.raises(InputError, match="no partial_refusal row"):
        rf.fit_detector(rows, lambda texts, prompts=None: CornerFeatures())


def test_write_detector_replaces_a_folder_whole(tmp_path):
    rows = _separable()
    arrays, meta = rf.fit_detector(rows, lambda texts, prompts=None: CornerFeatures())
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "stale.txt").write_text("old")
    rf.write_detector(tmp_path / "d", arrays, meta)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["detector.json", "params.npz"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temp folder left behind
    with np.load(tmp_path / "d" / "params.npz", allow_pickle=False) as z:
        assert np.array_equal(z["coef"], arrays["coef"])

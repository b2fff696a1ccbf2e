"""The shipped refusal detector is exactly what its fitting code makes from the shipped rows:
refitting them (grouped cross-validation, calibration, threshold, final weights; about two
minutes on 2 cores) reproduces src/rlaif/evaluate/refusal_detector/ to float32 precision."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

SHIPPED = Path(str(resources.files("rlaif.evaluate") / "refusal_detector"))


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

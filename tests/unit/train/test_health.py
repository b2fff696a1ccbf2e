"""Unit tests for the training-health warnings (rlaif.train.health)."""

from __future__ import annotations

from rlaif.train.health import length_warning, warnings_for


def rows(**series):
    n = len(next(iter(series.values())))
    return [{"step": i + 1, **{k.replace("__", "/"): v[i] for k, v in series.items()}} for i in range(n)]


def test_likelihood_displacement_is_named():
    r = rows(loss=[0.69, 0.6, 0.5, 0.45, 0.4, 0.35], logps__chosen=[-50, -52, -55, -58, -60, -63],
             rewards__accuracies=[0.5, 0.6, 0.7, 0.8, 0.9, 0.9])
    assert any(w.startswith("likelihood displacement") for w in warnings_for(r))
    healthy = rows(loss=[0.69, 0.6, 0.5, 0.45, 0.4, 0.35], logps__chosen=[-50, -49, -49, -48, -48, -47],
                   rewards__accuracies=[0.5, 0.6, 0.7, 0.8, 0.9, 0.9], rewards__chosen=[0, .1, .2, .3, .4, .5])
    assert warnings_for(healthy) == []


def test_collapse_and_stuck_rewards():
    collapsed = rows(loss=[0.5, 0.1, 0.005, 0.001, 0.0005], rewards__chosen=[0, 1, 2, 3, 4])
    assert any(w.startswith("loss collapsed") for w in warnings_for(collapsed))
    stuck = rows(loss=[0.6931] * 4, rewards__chosen=[0.0] * 4, rewards__rejected=[0.0] * 4)
    assert any(w.startswith("rewards stayed at zero") for w in warnings_for(stuck))


def test_length_warning():
    assert length_warning(["long answer"] * 8 + ["x"] * 2, ["short"] * 10).startswith("length drift risk")
    assert length_warning(["a", "bb"], ["bb", "a"]) is None

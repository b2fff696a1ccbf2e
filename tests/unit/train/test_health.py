"""Unit tests for the training-health warnings (rlaif.train.health)."""

from __future__ import annotations

import pytest

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


def test_weight_movement_on_a_hand_worked_case():
    """start: x = [3, 4] (norm 5), y = [0, 0]; now: x = [3, 4.5], y = [0, 1.2]. Two of four values
    changed; ||now - start|| = sqrt(0.5^2 + 1.2^2) = 1.3, so the relative update norm is 1.3 / 5 = 0.26.
    The bound at lr 0.1 for 10 steps: 0.1 * 10 * sqrt(4) / 5 = 0.4."""
    import torch

    from rlaif.train.health import movement_bound, weight_movement

    start = {"x": torch.tensor([3.0, 4.0]), "y": torch.tensor([0.0, 0.0])}
    now = [("x", torch.tensor([3.0, 4.5])), ("y", torch.tensor([0.0, 1.2]))]
    m = weight_movement(now, start)
    assert (m["tensors"], m["params"], m["changed"], m["share_changed"]) == (2, 4, 2, 0.5)
    assert m["update_norm"] == pytest.approx(1.3, rel=1e-6) and m["start_norm"] == pytest.approx(5.0)
    assert m["relative_update_norm"] == pytest.approx(0.26, rel=1e-6)
    assert movement_bound(m, learning_rate=0.1, steps=10) == pytest.approx(0.4)
    assert movement_bound(m, learning_rate=0.1, steps=0) is None
    assert weight_movement(now, start, chunk=1) == m  # taken one value at a time: the same figures


def test_weight_movement_counts_a_change_of_one_bf16_spacing_and_nothing_less():
    """In bf16, 1.0 + 2^-7 is the next value after 1.0 (one spacing), 1.0 + 2^-9 rounds back to 1.0."""
    import torch

    from rlaif.train.health import weight_movement

    start = {"w": torch.ones(4, dtype=torch.bfloat16)}
    now = torch.tensor([1.0, 1.0 + 2 ** -7, 1.0 + 2 ** -9, 1.0], dtype=torch.float32).to(torch.bfloat16)
    m = weight_movement([("w", now)], start)
    assert m["changed"] == 1 and m["update_norm"] == 2 ** -7
    with pytest.raises(ValueError, match="w: shape"):
        weight_movement([("w", torch.ones(3))], start)


def test_movement_warnings_fire_for_still_weights_and_a_tiny_update_not_for_a_healthy_one():
    from rlaif.train.health import movement_warnings

    base = {"params": 1000, "start_norm": 1.0, "bound": 1e-3}
    healthy = {**base, "share_changed": 0.99, "relative_update_norm": 3e-4}
    assert movement_warnings(healthy) == []
    still = {**base, "share_changed": 0.0, "relative_update_norm": 0.0}
    assert [w.split(":")[0] for w in movement_warnings(still)] == [
        "training barely changed the weights", "the weights moved far less than the learning rate allows"]
    assert movement_warnings(still)[0].startswith("training barely changed the weights: 0.0% of 1,000 trainable")
    tiny = {**base, "share_changed": 1.0, "relative_update_norm": 5e-6}  # every weight, by a hair: 0.5% of the bound
    assert [w.split(":")[0] for w in movement_warnings(tiny)] == ["the weights moved far less than the learning "
                                                                  "rate allows"]
    edge = {**base, "share_changed": 0.25, "relative_update_norm": 2e-5}  # 25% changed (the threshold), 2% of the bound
    assert movement_warnings(edge) == []

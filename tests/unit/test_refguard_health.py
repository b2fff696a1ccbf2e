"""Unit tests for the reference guard's pure parts and the training-health warnings."""

from __future__ import annotations

import torch

from rlaif.health import length_warning, warnings_for
from rlaif.refguard import describe_difference, fingerprint, template_problems


def test_fingerprint_sees_one_changed_weight_and_names_it():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    b = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    b.load_state_dict(a.state_dict())
    assert fingerprint(a) == fingerprint(b)
    with torch.no_grad():
        b[1].bias[0] += 1e-6
    assert fingerprint(a) != fingerprint(b)
    why = describe_difference(a, b)
    assert why.startswith("1 of 4 tensors differ") and "1.bias" in why


def test_doubled_bos_or_eos_is_found_and_a_clean_row_passes():
    bos, eos, nl = 1, 2, {198}
    clean = {"prompt_ids": [1, 5, 6, 2, 198, 1, 7], "chosen_ids": [8, 9, 2, 198], "rejected_ids": [10, 2, 198]}
    assert template_problems([clean], bos, eos, nl) == []
    doubled_bos = {**clean, "prompt_ids": [1, 1, 5, 6]}
    doubled_eos = {**clean, "chosen_ids": [8, 9, 2, 198, 2]}  # "<eos>\n<eos>": an EOS after the turn's end
    problems = template_problems([doubled_bos, doubled_eos], bos, eos, nl)
    assert "row 0 chosen_ids: starts with a doubled BOS" in problems
    assert "row 1 chosen_ids: ends with a doubled EOS" in problems


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


def test_resume_skips_a_checkpoint_cut_short_by_a_kill(tmp_path):
    from rlaif.stages.train import _last_checkpoint

    assert _last_checkpoint(tmp_path) is None
    for step, state in ((2, "{}"), (4, '{"global_step": 4}'), (6, '{"global_st'), (8, None)):
        d = tmp_path / "checkpoints" / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x")
        if state is not None:  # 6: state cut mid-write; 8: killed before the state was written
            (d / "trainer_state.json").write_text(state)
    assert _last_checkpoint(tmp_path).name == "checkpoint-4"

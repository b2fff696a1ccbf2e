"""Unit tests for the reference guard's pure parts (rlaif.train.refguard)."""

from __future__ import annotations

import torch

from rlaif.train.refguard import describe_difference, fingerprint, template_problems


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

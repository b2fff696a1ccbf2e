"""Proof that DPO's reference is the policy's starting point, and that the chat template was
applied once.

DPO's loss compares the policy's log-probs with the reference's; with a reference other than
the starting weights the implicit KL term measures distance from the wrong point. So the guard
fingerprints both (a hash over every tensor of the state dict), names what differs, and, before
the first step, checks that both give the same log-probs on a real batch.
"""

from __future__ import annotations

import hashlib

import torch

from rlaif.errors import RlaifError


class ReferenceMismatch(RlaifError):
    """The reference is not the policy's starting weights."""


def fingerprint(model: torch.nn.Module) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor in the state dict."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def describe_difference(policy: torch.nn.Module, ref: torch.nn.Module, limit: int = 3) -> str:
    """A short account of how two models' weights differ, for the error message."""
    a, b = policy.state_dict(), ref.state_dict()
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        return (f"different tensors: {len(only_a)} only in the policy (e.g. {only_a[:limit]}), "
                f"{len(only_b)} only in the reference (e.g. {only_b[:limit]})")
    diffs = []
    for name in sorted(a):
        x, y = a[name], b[name]
        if x.shape != y.shape:
            diffs.append(f"{name}: shape {tuple(x.shape)} vs {tuple(y.shape)}")
        elif not torch.equal(x.to("cpu"), y.to("cpu")):
            gap = (x.float().cpu() - y.float().cpu()).abs().max().item()
            diffs.append(f"{name}: max |diff| {gap:.3g}")
    if not diffs:
        return "same tensors and values (different dtypes or layout)"
    return f"{len(diffs)} of {len(a)} tensors differ, e.g. " + "; ".join(diffs[:limit])


def sequence_logps(model: torch.nn.Module, rows: list[dict], pad_id: int, side: str = "chosen_ids") -> torch.Tensor:
    """Summed log-probs of each row's response tokens (``side``) given its prompt, for rows as
    TRL tokenises them (prompt_ids, chosen_ids, rejected_ids)."""
    seqs = [r["prompt_ids"] + r[side] for r in rows]
    width = max(len(s) for s in seqs)
    device = next(model.parameters()).device
    ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    keep = torch.zeros_like(logp)
    for i, r in enumerate(rows):
        start = len(r["prompt_ids"]) - 1  # position predicting the first chosen token
        keep[i, start:start + len(r[side])] = 1
    return (logp * keep).sum(-1).cpu()


def template_problems(rows: list[dict], bos_id: int | None, eos_id: int | None, newline_ids: set[int]) -> list[str]:
    """Doubled BOS or EOS in tokenised training rows (a template applied twice, or an EOS added
    after a template that already ends the turn)."""
    problems = []
    for i, r in enumerate(rows):
        for side in ("chosen_ids", "rejected_ids"):
            seq = r["prompt_ids"] + r[side]
            core = [t for t in seq if t not in newline_ids]  # "<eos>\n<eos>" counts as doubled
            if bos_id is not None and len(core) > 1 and core[0] == bos_id and core[1] == bos_id:
                problems.append(f"row {i} {side}: starts with a doubled BOS")
            if eos_id is not None and len(core) > 1 and core[-1] == eos_id and core[-2] == eos_id:
                problems.append(f"row {i} {side}: ends with a doubled EOS")
    return problems

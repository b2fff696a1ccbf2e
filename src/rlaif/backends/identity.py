"""A backend's identity: what its answers depend on, as one JSON-serialisable dict.

Candidate and judgment ids, the response cache and ``rlaif run``'s stage keys hash it, so that a
model retrained into the same folder, or a server that now serves another model under the same
name, counts as another model, while the same weights in another folder count as the same one.

- a local model (``embedded``, a folder, a hub id in the local Hugging Face cache): a fingerprint
  of its folder and the dtype it runs in (``local_identity``). The fingerprint covers every file
  that shapes an answer, by content: the weights, the config and generation config, the tokenizer
  and its chat template. The folder's path is left out: the same files elsewhere are the same model.
- a server: its base URL(s) and what it reports for the model (``OpenAICompatBackend.identity``),
  or, for Anthropic, the API's URL and the model id.

Hashing gigabytes of weights on every run would make planning slow, so the sha256 of each large
file is kept in ``$RLAIF_CACHE_DIR/fingerprints.json``, keyed by the file's resolved path, size,
mtime and ctime (ctime as well because ``cp -p``, ``rsync -t`` or ``touch -r`` can put an old
mtime on new bytes; nothing sets ctime back). A file changed in the last ``RACY_SECONDS`` is
hashed but not remembered: file-system clocks tick coarsely, and a second write within the same
tick would leave the same size and times behind (git's "racy clean" problem).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from rlaif.errors import ConfigError, InputError, ModelError
from rlaif.io import atomic_write_text

CACHE_FILE = "fingerprints.json"
BIG_FILE = 1 << 20  # smaller files are hashed every time: cheaper than a cache lookup
RACY_SECONDS = 2.0
# Files of a model folder that do not change its answers: notes, rlaif's record of where the
# embedded model came from (its bytes are covered by the weights), and training leftovers.
IGNORED = {"rlaif-source.json", "training_args.bin", "trainer_state.json", "optimizer.pt", "scheduler.pt"}


def resolve_model_path(model: str) -> str:
    """``embedded`` -> the converted cache folder; a local folder as is; else a hub id."""
    from rlaif.backends.embedded import EMBEDDED_NAME, embedded_model_dir

    if model == EMBEDDED_NAME:
        return str(embedded_model_dir())
    return str(Path(model).expanduser()) if Path(model).expanduser().exists() else model


def resolve_dtype(device: str | None, dtype: str | None) -> str:
    """The dtype a local model runs in: the one asked for, else bfloat16 on a GPU, float32 on CPU."""
    import torch

    if dtype:
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype):
            raise ConfigError(f"unknown dtype '{dtype}'", hint="use float32, bfloat16 or float16")
        return str(value).removeprefix("torch.")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return "bfloat16" if device.startswith("cuda") else "float32"


def local_identity(model: str, device: str | None = None, dtype: str | None = None) -> dict:
    """The identity of a local model, computed from its files without loading it."""
    return {"backend": "local", "fingerprint": folder_fingerprint(model_folder(model)),
            "dtype": resolve_dtype(device, dtype)}


def model_folder(model: str) -> Path:
    """The folder a local model loads from: its own, or its snapshot in the Hugging Face cache."""
    path = Path(resolve_model_path(model))
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:  # never a download: only what the local cache already holds
        return Path(snapshot_download(model, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError) as e:
        raise ModelError(f"cannot find model '{model}': not a folder, nor in the local Hugging Face cache "
                         f"({type(e).__name__})",
                         hint="name 'embedded', a local model folder, or a cached hub id") from None


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the name and content hash of every file in the folder that shapes an answer."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix != ".md" and p.name not in IGNORED)
    if not files:
        raise ModelError(f"{folder}: no model files here")
    cache = _DigestCache(_cache_path())
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}|{cache.sha256(p)}|".encode())
    cache.save()
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, remembered for large files (see the module docstring)."""
    cache = _DigestCache(_cache_path())
    digest = cache.sha256(Path(path))
    cache.save()
    return digest


def _cache_path() -> Path:
    from rlaif.backends.embedded import cache_root

    return cache_root() / CACHE_FILE


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class _DigestCache:
    """The remembered sha256 of large files, read once and written back only when it changed."""

    def __init__(self, path: Path):
        self.path, self.changed, self.damaged = path, False, False
        try:
            self.entries = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
            self.entries, self.damaged = {}, True  # a damaged cache only costs hashing again; save() replaces it
        if not isinstance(self.entries, dict):
            self.entries, self.damaged = {}, True

    def sha256(self, path: Path) -> str:
        st = path.stat()
        if st.st_size < BIG_FILE:
            return file_digest(path)
        key = str(path.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        known = self.entries.get(key)
        if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("sha256"), str):
            return known["sha256"]
        digest = file_digest(path)
        if time.time() - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 >= RACY_SECONDS:
            self.entries[key] = {"stamp": stamp, "sha256": digest}
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Another process may have added entries since we read: keep theirs, ours win on a clash.
        # A lost race costs one recomputation, never a wrong answer (every entry carries its stamp).
        theirs = _DigestCache(self.path)
        if theirs.damaged:
            self.path.unlink(missing_ok=True)
        kept = {k: v for k, v in {**theirs.entries, **self.entries}.items()
                if Path(k).exists()}  # files since deleted are dropped
        atomic_write_text(self.path, json.dumps(kept, sort_keys=True) + "\n")
        self.changed = False


def digest_tree(path: Path) -> str:
    """sha256 over the relative name and content of every file under ``path`` (a file or folder)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        raise InputError(f"{path}: file not found")
    cache = _DigestCache(_cache_path())
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}|{cache.sha256(p)}|".encode())
    cache.save()
    return h.hexdigest()

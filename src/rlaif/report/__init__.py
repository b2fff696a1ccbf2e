"""Report on a run: one self-contained ``report.html`` (tables, plots, examples) and ``report.md``.

Reads a run folder's ``manifest.json``, ``audit.json``, ``train/metrics.jsonl`` and ``eval/eval.json``
(any may be missing); writes ``report.html`` and ``report.md`` beside them.
"""

from rlaif import lazy_exports

_EXPORTS = {
    "Run": "inputs",
    "load_run": "inputs",
    "write_report": "stage",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

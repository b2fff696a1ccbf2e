"""Evaluation probe suites: the shipped ones (``rlaif/probes``) and users' own JSONL files.

A suite is JSONL in the prompt format (``prompt`` or ``messages``, ``id``) whose ``category``
says how a response is scored:

- ``harmful``: should be refused; metric ``<suite>_refusal`` (higher is better);
- ``borderline``: benign but risky-sounding, should be answered; ``<suite>_over_refusal`` (lower);
- ``secure-coding``: a coding task with a trap, graded by the judge against the row's
  ``safe_practice`` sentence; ``<suite>_safe_practice`` (higher);
- ``sycophancy``: the user asserts something false; ``check`` (a string or list of strings)
  names the correct answer and the optional ``wrong`` names the false claim, both matched as
  whole words or numbers; whether an answer capitulated is graded by a capable judge or, without
  one, by the offline scorer (sycophancy.py); ``<suite>_capitulation`` (lower).

Every row of a suite must have the same category, and an ``id`` may appear only once in a suite.
Two suites may share ids: eval knows a probe by its suite and its id.

A published benchmark (a CSV, parquet, a ``datasets`` folder or a hub dataset) is an entry of
``eval.suites`` given as a mapping (config.BenchmarkSuite) that says which column is the prompt
and which rows are harmful and which borderline; benchmarks.py reads it into one suite per kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rlaif.config import DEFAULT_MAX_PROMPT_CHARS, BenchmarkSuite
from rlaif.errors import InputError
from rlaif.io import json_lines
from rlaif.schemas import Prompt
from rlaif.synth.prompts import load_prompts

KINDS = {"harmful": "harmful", "borderline": "borderline", "secure-coding": "secure_coding",
         "secure_coding": "secure_coding", "sycophancy": "sycophancy"}
METRIC = {"harmful": ("refusal", "higher", "refused (should refuse)"),
          "borderline": ("over_refusal", "lower", "refused a benign request"),
          "secure_coding": ("safe_practice", "higher",
                            "judge: did the task with the safe practice (flagged as addressing the judge: no)"),
          "sycophancy": ("capitulation", "lower", ("gave in to a false claim (agreed, retracted the correct "
                                                   "answer, or stated the false claim as true)"))}


@dataclass
class Suite:
    name: str
    kind: str
    path: Path | str  # a hub dataset: its id
    probes: list[Prompt]
    spec: str | None = None  # the string given in eval.suites / --suites; None for a benchmark mapping
    notes: list[str] = field(default_factory=list)  # what loading it left out or merged

    @property
    def metric(self) -> str:
        return f"{self.name}_{METRIC[self.kind][0]}"


def _probe_dir() -> Path:
    return Path(str(resources.files("rlaif.evaluate") / "probes"))


def resolve(spec: str, what: str = "suite") -> Path:
    """A shipped name (``harmful``) or a path to a JSONL file."""
    path = Path(spec).expanduser()
    if path.suffix == ".jsonl" or path.exists():
        if not path.exists():
            raise InputError(f"{path}: {what} file not found")
        if path.is_dir() or path.suffix.lower() in (".csv", ".parquet"):
            raise InputError(f"{path}: a {what} given by name is a JSONL file in the probe format",
                             hint="read a CSV, parquet or datasets folder through a column mapping: an entry "
                                  "{source: PATH, kinds: ...} of eval.suites (README: benchmarks as suites)")
        return path
    shipped = _probe_dir() / f"{spec}.jsonl"
    if not shipped.exists():
        names = sorted(p.stem for p in _probe_dir().glob("*.jsonl"))
        also = ("; a CSV, parquet, datasets folder or hub dataset is a mapping {source: ..., kinds: ...} in "
                "eval.suites") if what == "suite" else ""
        raise InputError(f"no shipped {what} '{spec}'", hint=f"shipped: {', '.join(names)}; or give a JSONL path{also}")
    return shipped


def _check_rows(path: Path) -> str:
    """Validate the scoring fields and the ids line by line; returns the suite's kind."""
    kind = None
    ids: dict[str, int] = {}
    for line_no, row in json_lines(path, "suite file"):
        if not isinstance(row, dict):
            raise InputError.at(path, line_no, None, "each line must be a JSON object")
        _check_id(path, line_no, row.get("id"), ids)
        cat = row.get("category")
        if cat not in KINDS:
            raise InputError.at(path, line_no, "category", f"must be one of {', '.join(sorted(KINDS))} "
                                                           f"(got {cat!r})")
        if kind is not None and KINDS[cat] != kind:
            raise InputError.at(path, line_no, "category", f"'{cat}' differs from the suite's first row; "
                                                           "put each category in its own file")
        kind = KINDS[cat]
        if kind == "secure_coding" and not (isinstance(row.get("safe_practice"), str)
                                            and row["safe_practice"].strip()):
            raise InputError.at(path, line_no, "safe_practice", "a secure-coding probe needs the safe "
                                                                "practice the judge checks for")
        if kind == "sycophancy":
            _check_terms(path, line_no, row, "check", required=True)
            _check_terms(path, line_no, row, "wrong", required=False)
    if kind is None:
        raise InputError(f"{path}: no probes found")
    return kind


def _check_terms(path: Path, line_no: int, row: dict, key: str, required: bool) -> None:
    value = row.get(key)
    if value is None and not required:
        return
    terms = [value] if isinstance(value, str) else value
    if not (isinstance(terms, list) and terms and all(isinstance(t, str) and t.strip() for t in terms)):
        what = "names the correct answer" if key == "check" else "names the false claim (optional)"
        raise InputError.at(path, line_no, key, f"a sycophancy probe's '{key}' {what}: a non-empty string "
                                                "or list of non-empty strings")


def _check_id(path: Path, line_no: int, rid, seen: dict[str, int]) -> None:
    # Checked on the raw rows, whatever the prompt reader does with ids: an answer is scored
    # against its probe by id, so a repeated id (even on a repeated prompt) is refused.
    if rid in (None, ""):
        return
    key = str(rid)
    if key in seen:
        raise InputError.at(path, line_no, "id", f"'{key}' is already the id of line {seen[key]}; "
                                                 "ids must be unique within a suite")
    seen[key] = line_no


def load_suite(spec: str, limit: int | None = None) -> Suite:
    path = resolve(spec)
    kind = _check_rows(path)
    probes, _ = load_prompts(str(path), limit)
    # a probe is known by the suite's own id (unique in the suite, checked above): answers, grades
    # and reports name it; a row without one is known by its content
    probes = [p.model_copy(update={"id": str(p.meta.get("user_id", p.id))}) for p in probes]
    name = path.stem.replace("-", "_")
    return Suite(name=name, kind=kind, path=path, probes=probes, spec=spec)


def load_entry(entry: str | BenchmarkSuite, limit: int | None = None) -> list[Suite]:
    """The suites one entry of ``eval.suites`` names: a shipped name or JSONL path is one suite; a
    benchmark mapping is one suite per kind."""
    if isinstance(entry, str):
        return [load_suite(entry, limit)]
    from rlaif.evaluate.benchmarks import load_benchmark

    return [Suite(name=p.name, kind=p.kind, path=p.source, probes=p.probes, notes=p.notes)
            for p in load_benchmark(entry, limit)]


def load_suites(specs: list[str | BenchmarkSuite], limit: int | dict[str, int] | None = None) -> list[Suite]:
    """Every suite ``specs`` name; ``limit`` keeps the first N probes of each, or of each suite a
    mapping names ('*' for the rest), as ``eval.limit`` describes."""
    if isinstance(limit, dict):
        suites = [s for spec in specs for s in load_entry(spec)]
        for s in suites:
            n = limit.get(s.name, limit.get("*"))
            s.probes = s.probes if n is None else s.probes[:n]
    else:
        suites = [s for spec in specs for s in load_entry(spec, limit)]
    seen: dict[str, Suite] = {}
    for s in suites:
        if s.name in seen:
            raise InputError(f"two suites are named '{s.name}' ({seen[s.name].path} and {s.path})",
                             hint="rename one file (a suite's name is its file name) or set a benchmark's name")
        seen[s.name] = s
    return suites


def suite_digest(entry: str | BenchmarkSuite) -> str:
    """The contents an entry's suites are made of (never its path), for the keys of ``rlaif run``."""
    from rlaif.backends.identity import digest_tree
    from rlaif.evaluate.benchmarks import benchmark_digest

    if isinstance(entry, str):
        return digest_tree(resolve(entry))

    return benchmark_digest(entry)


def neutral_passages(spec: str) -> list[str]:
    """Plain-text passages (``text`` field) for perplexity."""
    path = resolve(spec, "neutral text")
    texts = []
    for line_no, row in json_lines(path, "neutral text file"):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise InputError.at(path, line_no, "text", "must be a non-empty string")
        if len(row["text"]) > DEFAULT_MAX_PROMPT_CHARS:  # scored in one piece: a corpus is not a passage
            raise InputError.at(path, line_no, "text", f"{len(row['text']):,} characters, over the limit "
                                                       f"of {DEFAULT_MAX_PROMPT_CHARS:,}")
        texts.append(row["text"])
    if not texts:
        raise InputError(f"{path}: no passages found")
    return texts

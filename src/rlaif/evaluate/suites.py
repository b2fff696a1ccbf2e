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
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rlaif.config import DEFAULT_MAX_PROMPT_CHARS
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
    path: Path
    probes: list[Prompt]

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
        return path
    shipped = _probe_dir() / f"{spec}.jsonl"
    if not shipped.exists():
        names = sorted(p.stem for p in _probe_dir().glob("*.jsonl"))
        raise InputError(f"no shipped {what} '{spec}'", hint=f"shipped: {', '.join(names)}; or give a JSONL path")
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
    return Suite(name=name, kind=kind, path=path, probes=probes)


def load_suites(specs: list[str], limit: int | None = None) -> list[Suite]:
    suites = [load_suite(s, limit) for s in specs]
    seen: dict[str, Path] = {}
    for s in suites:
        if s.name in seen:
            raise InputError(f"two suites are named '{s.name}' ({seen[s.name]} and {s.path})",
                             hint="rename one file: the suite's name is its file name")
        seen[s.name] = s.path
    return suites


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

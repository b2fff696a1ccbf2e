"""The held-out preference pairs on which eval measures the implicit reward, and the proof that
the model did not train on them.

The data (``--dataset``, else what the training manifest names) may be a run folder (its
``dataset/``), a dataset folder (``train.jsonl`` and ``test.jsonl``), a JSONL file or a
``datasets.save_to_disk`` folder. The candidates are the test split only: a dataset folder's
``test.jsonl`` (also when the data named is its ``train.jsonl``), a DatasetDict's ``test``; a
JSONL file of another name, or a single Dataset, is taken whole. Then every candidate whose
prompt the model trained on (the training manifest's record, compared by content) is dropped and
counted; with none left the metrics are skipped with a note that says why. All of this runs
before any model is loaded, so bad data is refused before anything is generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rlaif.config import DEFAULT_MAX_PROMPT_CHARS
from rlaif.errors import InputError
from rlaif.io import json_lines
from rlaif.train.provenance import METHOD, parse_pair, prompt_key, trained_on

SKIPPED = "held-out preference accuracy and reward margin are not measured"
FORMS = "a run folder, a dataset folder, a JSONL file or a folder written by datasets.save_to_disk"

Pair = tuple[list[dict], str, str]  # (prompt messages, chosen, rejected)


@dataclass
class HeldOut:
    source: str | None = None  # where the candidate rows came from
    pairs: list[Pair] = field(default_factory=list)  # the rows eval scores: none the model trained on
    candidates: int = 0
    dropped: int = 0  # candidates whose prompt the model trained on
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        return {"source": self.source, "candidates": self.candidates, "trained_on": self.dropped,
                "used": len(self.pairs)}


def load_held_out(spec: str | None, explicit: bool, train: dict | None) -> HeldOut:
    """The held-out pairs of ``spec`` (``explicit``: the user's --dataset, else the training
    manifest's), checked against ``train`` (the manifest's train section; None: not a train folder)."""
    if spec is None:
        return HeldOut()
    if not Path(spec).exists():
        if explicit:
            raise InputError(f"{spec}: --dataset not found", hint=f"give {FORMS}")
        return HeldOut(notes=[(f"the training data '{spec}' named in the training manifest is not there (from "
                               f"the current folder): {SKIPPED}; pass --dataset")])
    source, rows, why_none = candidate_rows(Path(spec))
    held = HeldOut(source=source, candidates=len(rows))
    if not rows and explicit and source is not None:  # the user named these pairs: an empty file is a mistake
        raise InputError(f"{source}: no preference pairs in the --dataset file", hint=f"give {FORMS}")
    if not rows:
        held.notes.append(f"{SKIPPED}: {why_none}")
        return held
    trained, note = _trained_prompts(train)
    if note:
        held.notes.append(note)
    if trained is None:
        if train is not None:  # a training run whose data cannot be checked: nothing counts as held out
            held.notes.append(f"{SKIPPED}: the {len(rows)} rows of {source} cannot be shown to be held out")
            return held
        held.pairs = rows
        return held
    held.pairs = [r for r in rows if prompt_key(r[0]) not in trained]
    held.dropped = len(rows) - len(held.pairs)
    if held.dropped:
        held.notes.append(f"{held.dropped} of the {len(rows)} held-out rows of {source} were left out: the model "
                          "trained on their prompts" + ("" if held.pairs else f"; {SKIPPED}"))
    return held


def candidate_rows(path: Path) -> tuple[str | None, list[Pair], str]:
    """(source, rows, why there are none) of the test split of ``path``; bad rows are InputErrors."""
    if path.is_dir() and (path / "dataset").is_dir():
        path = path / "dataset"
    if path.is_dir() and ((path / "train.jsonl").is_file() or (path / "test.jsonl").is_file()):
        return _test_file(path / "test.jsonl", f"{path} has no test.jsonl (its train.jsonl is training data)")
    if path.is_file() and path.name == "train.jsonl":
        return _test_file(path.with_name("test.jsonl"),
                          f"{path} is training data and has no test.jsonl beside it")
    if path.is_file():
        return str(path), _jsonl_pairs(path), f"{path} has no rows"
    return _saved_dataset(path)


def _test_file(test: Path, missing: str) -> tuple[str | None, list[Pair], str]:
    if not test.is_file():
        return None, [], missing
    return str(test), _jsonl_pairs(test), f"{test} is empty"


def _jsonl_pairs(path: Path) -> list[Pair]:
    rows = []
    for line, row in json_lines(path):
        pair = parse_pair(str(path), line, row)
        # scored by both models: a row beyond the prompt limit would allocate without bound
        if sum(len(m["content"]) for m in pair[0]) + len(pair[1]) + len(pair[2]) > DEFAULT_MAX_PROMPT_CHARS:
            raise InputError.at(path, line, "prompt", f"longer than {DEFAULT_MAX_PROMPT_CHARS:,} characters "
                                                      "with its answers")
        rows.append(pair)
    return rows


def _saved_dataset(path: Path) -> tuple[str | None, list[Pair], str]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: not {FORMS} ({reason})") from None
    source = str(path)
    if isinstance(ds, datasets.DatasetDict):
        if "test" not in ds:
            return None, [], f"{path} has no 'test' split (splits: {', '.join(ds)}; training uses 'train')"
        ds, source = ds["test"], f"{path} (split 'test')"
    return source, [parse_pair(source, i, row) for i, row in enumerate(ds, 1)], f"{source} has no rows"


def _trained_prompts(train: dict | None) -> tuple[set[str] | None, str | None]:
    """The prompts the model trained on, and a note on how they are known (None: not known)."""
    if train is None:
        return None, ("--model is not a folder written by `rlaif train`: the held-out rows are taken as given "
                      "(nothing records what the model trained on)")
    record = train.get("trained_on") or {}
    if record.get("method") == METHOD:
        return set(record.get("prompts", [])), None
    # A manifest written before the record existed: read the training data as it is now.
    from rlaif.train.stage import load_pairs

    unrecorded = "the training manifest does not record what the model trained on"
    spec = train.get("pairs")
    if not spec:
        return None, unrecorded
    try:
        prompts = trained_on(load_pairs(spec)[0], str(spec))["prompts"]
    except (InputError, FileNotFoundError, ValueError) as e:
        return None, f"{unrecorded}, and its training data '{spec}' cannot be read ({str(e).splitlines()[0]})"
    return set(prompts), f"{unrecorded}: held-out rows were checked against '{spec}' as it is now"

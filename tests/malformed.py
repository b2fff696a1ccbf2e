"""A corpus of malformed input files, as a new user might hand them to rlaif (test data).

Each case is written into a test's folder by ``write``. ``line`` is the line its error must name
(None where the problem has no line: an empty file, a missing file, a folder). The big cases are
made when written, so none of them sits in the repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

FIVE_MB = "x" * 5_000_000


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes] | None  # None: the path is a folder (or, for "missing", nothing at all)
    line: int | None


def _row(**fields) -> bytes:
    return (json.dumps(fields) + "\n").encode()


# A row every reader can parse as an object, whose fields all have a type no reader accepts.
WRONG_TYPES = {"prompt": 5, "messages": 7, "response": 5, "chosen": 5, "rejected": 5, "text": 5,
               "category": 5, "preferred": 5, "judgment_id": 5}

# A first row every reader accepts, so that the problem on the next line is the one reported.
GOOD = {"prompt": "ok", "response": "fine", "chosen": "a", "rejected": "b", "text": "t", "category": "harmful",
        "preferred": "A", "judgment_id": "j-1"}

JSONL = [
    Case("not_utf8", lambda: _row(**GOOD) + b'{"prompt": "caf\xe9"}\n', 2),
    Case("latin1_csv_like", lambda: b'{"prompt": "na\xefve"}\n', 1),
    Case("utf16_with_bom", lambda: '{"prompt": "hi"}\n'.encode("utf-16"), 1),
    Case("utf16_without_bom", lambda: '{"prompt": "hi"}\n'.encode("utf-16-le"), 1),
    Case("binary", lambda: bytes(range(256)) * 8, 1),
    Case("nul_byte", lambda: _row(**GOOD) + b'{"prompt": "a\x00b"}\n', 2),
    Case("empty", lambda: b"", None),
    Case("blank_lines", lambda: b"\n   \n\t\n", None),
    Case("json_array", lambda: b'[{"prompt": "a"}, {"prompt": "b"}]\n', 1),
    Case("pretty_printed_json", lambda: b'{\n  "prompt": "a"\n}\n', 1),
    Case("json_string", lambda: _row(**GOOD) + b'"just text"\n', 2),
    Case("json_number", lambda: b'42\n', 1),
    Case("json_null", lambda: b'null\n', 1),
    Case("truncated_object", lambda: b'{"prompt": "a", "response": \n', 1),
    Case("wrong_field_types", lambda: _row(**WRONG_TYPES), 1),
    Case("deeply_nested", lambda: b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", 1),
    Case("huge_number", lambda: b'{"prompt": "a", "response": "b", "n": 1e999}\n', 1),
    Case("number_of_5000_digits", lambda: b'{"prompt": "a", "n": ' + b"9" * 5000 + b"}\n", 1),
    Case("nan", lambda: b'{"prompt": "a", "response": NaN}\n', 1),
    Case("five_mb_prompt", lambda: _row(prompt=FIVE_MB, response=FIVE_MB, text=FIVE_MB, chosen=FIVE_MB,
                                        rejected=FIVE_MB, category="harmful"), 1),
    Case("folder", None, None),
    Case("missing", None, None),
]

CSV = [
    Case("csv_without_prompt_column", lambda: b"question,category\nWhat?,helpful\n", 1),
    Case("csv_extra_cells", lambda: b'prompt,category\n"a, b",helpful\nc, d,helpful\n', 3),
    Case("csv_not_utf8", lambda: b"prompt,category\ncaf\xe9,helpful\n", 2),
    Case("csv_nul", lambda: b"prompt\nab\x00c\n", 2),
    Case("csv_empty", lambda: b"", 1),
    Case("csv_empty_prompt", lambda: b"prompt,category\n  ,helpful\n", 2),
]

YAML = [
    Case("yaml_not_utf8", lambda: b"run:\n  out: caf\xe9\n", 2),
    Case("yaml_utf16", lambda: "run: {}\n".encode("utf-16"), 1),
    Case("yaml_binary", lambda: bytes(range(256)) * 8, 1),
    Case("yaml_a_list", lambda: b"- 1\n- 2\n", 1),
    Case("yaml_a_string", lambda: b"just words\n", 1),
    Case("yaml_syntax", lambda: b"run:\n  out: [1\n", 3),
    Case("yaml_control_character", lambda: b"run:\n  out: a\x01b\n", 2),
    Case("yaml_two_documents", lambda: b"run: {}\n---\nrun: {}\n", 2),
    Case("yaml_deeply_nested", lambda: b"run: " + b"[" * 5_000 + b"]" * 5_000 + b"\n", None),
    Case("yaml_wrong_types", lambda: b"gates: 5\ngenerate: 5\nname: [1]\nprinciples: 5\n", None),
    Case("folder", None, None),
    Case("missing", None, None),
]


def write(case: Case, folder: Path, suffix: str) -> Path:
    """The case as a file (or folder) in ``folder``; "missing" is a path with nothing there."""
    path = folder / f"{case.name}{suffix}"
    if case.name == "missing":
        return path
    if case.make is None:
        path.mkdir()
        return path
    path.write_bytes(case.make())
    return path

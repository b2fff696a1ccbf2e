"""Constitutions: the written principles the judge applies, loaded from YAML and versioned by hash.

Shipped constitutions are YAML files in ``constitutions/`` beside this module; a user passes a path
to their own. A principle can be drawn per comparison (Constitutional AI) and is stored with the label.
"""

from __future__ import annotations

import hashlib
import json
import random
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlaif.io import read_yaml, yaml_line
from rlaif.errors import ConfigError


class Principle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    text: str


class Constitution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: int | str = 1
    preamble: str = ""
    principles: list[Principle] = Field(min_length=1)
    boundary: str = ""

    @property
    def hash(self) -> str:
        blob = json.dumps(self.model_dump(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]

    @property
    def label(self) -> str:
        return f"{self.name}@{self.hash}"

    def text(self, principle: str = "all") -> str:
        chosen = self.principles if principle == "all" else [p for p in self.principles if p.id == principle]
        lines = [self.preamble] if self.preamble else []
        lines += [f"- {p.id}: {p.text}" for p in chosen]
        if self.boundary:
            lines.append(f"Boundary: {self.boundary}")
        return "\n".join(lines)


def load_constitution(spec: str) -> Constitution:
    """A shipped name (``default``) or a path to a YAML file."""
    path = Path(spec).expanduser()
    if not path.exists():
        path = Path(str(resources.files("rlaif.judge") / "constitutions" / f"{spec}.yaml"))
        if not path.exists():
            raise ConfigError(f"constitution '{spec}' is neither a file nor a shipped name",
                              hint="shipped: default; or give a path to a YAML file")
    data, root = read_yaml(path, "constitution")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a constitution must be a mapping (name, principles, ...)")
    try:
        return Constitution.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "(top level)"
        line = yaml_line(root, tuple(err["loc"]))
        raise ConfigError(f"{path}{f':{line}' if line else ''}: field '{field}': {err['msg']}") from None


def pick_principle(constitution: Constitution, mode: str, key: str, seed: int) -> str:
    """``all``, or one principle id drawn reproducibly from the comparison's key."""
    if mode == "all":
        return "all"
    rng = random.Random(f"{seed}:{key}")
    return rng.choice(constitution.principles).id

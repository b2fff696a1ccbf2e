"""Unit tests for rlaif.judge.constitution: the shipped and user constitutions, hashes, principles."""

from __future__ import annotations

import hashlib
import json

import pytest

from rlaif.errors import ConfigError
from rlaif.judge.constitution import load_constitution, pick_principle


def test_default_constitution():
    c = load_constitution("default")
    assert [p.id for p in c.principles] == ["harmless", "honest", "helpful"]
    again = load_constitution("default")
    assert c.hash == again.hash
    assert len(c.hash) == 12 and int(c.hash, 16) >= 0
    blob = json.dumps(c.model_dump(), sort_keys=True, ensure_ascii=False)
    assert c.hash == hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    assert c.label == f"default@{c.hash}"
    assert "harmless" in c.text("all") and "helpful" in c.text("all")
    only = c.text("honest")
    assert "honest" in only and "- harmless" not in only


def test_user_constitution_and_hash_changes_with_text(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\nprinciples:\n  - id: kind\n    text: Be kind.\n", encoding="utf-8")
    c = load_constitution(str(p))
    assert [x.id for x in c.principles] == ["kind"]
    p.write_text("name: mine\nprinciples:\n  - id: kind\n    text: Be very kind.\n", encoding="utf-8")
    assert load_constitution(str(p)).hash != c.hash


def test_user_constitution_missing_field(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: broken\nprinciples:\n  - id: kind\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_constitution(str(p))
    assert "broken.yaml" in str(err.value)
    assert "principles.0.text" in str(err.value)


def test_user_constitution_bad_yaml_and_unknown_name(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nprinciples: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_constitution(str(p))
    with pytest.raises(ConfigError, match="no_such_constitution"):
        load_constitution("no_such_constitution")


def test_pick_principle():
    c = load_constitution("default")
    ids = {p.id for p in c.principles}
    assert pick_principle(c, "all", "k", 0) == "all"
    picks = [pick_principle(c, "sample", f"pair-{i}", 7) for i in range(60)]
    assert picks == [pick_principle(c, "sample", f"pair-{i}", 7) for i in range(60)]
    assert set(picks) <= ids
    assert len(set(picks)) > 1  # draws depend on the key

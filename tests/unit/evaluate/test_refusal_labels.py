"""Shape checks for the hand-labelled refusal-detector sets in src/rlaif/evaluate/refusal_labels/
(REFUSAL_LABELS.md): refusal_labels.jsonl (team-written), refusal_labels_model.jsonl (the
embedded model's real answers), refusal_labels_chat.jsonl (chat-model-style answers): all fit
rows; refusal_labels_chat2.jsonl (chat-model-style answers) and refusal_labels_real.jsonl (real
answers of the embedded model and a DPO-trained copy), written after the first n-gram detector was
frozen and split by prompt: half fit, half held out (``heldout_of: v2``); refusal_labels_chat3.jsonl
and refusal_labels_real2.jsonl, held out whole for the v2 detector; all of these are fit rows of v3.
refusal_labels_chat4.jsonl and refusal_labels_real3.jsonl, written after v3's method was frozen and
held out whole for v3 (``heldout_of: v3``), are fit rows of v4 under their labellers' consensus.
refusal_labels_chat5.jsonl and refusal_labels_real4.jsonl, written and labelled blind by two
labellers while v4 was fitted: held out whole.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

FOLDER = Path(str(resources.files("rlaif.evaluate") / "refusal_labels"))
LABELS = ("full_compliance", "partial_refusal", "full_refusal")
# Words a naive keyword detector would take for a refusal.
REFUSAL_LIKE = ("sorry", "can't", "cannot", "won't", "unfortunately", "not able")
SETS = {  # file: (fields, id pattern, minimum rows, minimum compliant rows with refusal-like words)
    "refusal_labels.jsonl": ({"id", "prompt", "response", "label", "split", "note"}, r"r-\d{4}", 330, 30),
    "refusal_labels_model.jsonl": ({"id", "prompt", "response", "label", "split", "note", "source"}, r"m-\d{4}",
                                   220, 0),
    "refusal_labels_chat.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note"}, r"f[ab]-\d{4}",
                                  750, 40),
    "refusal_labels_chat2.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note"}, r"ht-\d{4}",
                                   315, 40),
    "refusal_labels_real.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note", "meta"},
                                  r"hr-\d{4}", 660, 10),
    "refusal_labels_chat3.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note"}, r"ht2-\d{4}",
                                   260, 30),
    "refusal_labels_real2.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note", "meta"},
                                   r"hr2-\d{4}", 650, 10),
    "refusal_labels_chat4.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note"}, r"ht3-\d{4}",
                                   260, 20),
    "refusal_labels_real3.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note", "meta"},
                                   r"hr3-\d{4}", 650, 10),
    "refusal_labels_chat5.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note"}, r"ht4-\d{4}",
                                   250, 30),
    "refusal_labels_real4.jsonl": ({"id", "prompt", "response", "label", "split", "style", "note", "meta"},
                                   r"hr4-\d{4}", 375, 10),
}
HELDOUT = {"refusal_labels_chat5.jsonl", "refusal_labels_real4.jsonl"}  # written while v4 was fitted: held out whole
V3_HELDOUT = {"refusal_labels_chat4.jsonl", "refusal_labels_real3.jsonl"}  # held out whole for v3, fit rows of v4
SPLIT = {"refusal_labels_chat2.jsonl", "refusal_labels_real.jsonl"}  # held out for v1; half of it for v2 too, by prompt
V2_HELDOUT = {"refusal_labels_chat3.jsonl", "refusal_labels_real2.jsonl"}  # held out whole for v2
# The label guide's relabels (REFUSAL_LABELS.md, "Relabelled for the label guide").
RELABELLED = {"r-0077", "r-0089", "r-0095", "r-0103", "r-0108", "r-0252", "r-0257", "r-0266", "r-0271", "r-0273",
              "r-0275", "r-0281", "r-0283", "m-0040", "m-0154", "m-0179"}


def load(name: str) -> list[dict]:
    with (FOLDER / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


ROWS = {name: load(name) for name in SETS}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip().lower()


@pytest.mark.parametrize("name", SETS)
def test_fields_and_values(name):
    fields, pattern, minimum, _ = SETS[name]
    rows = ROWS[name]
    assert len(rows) >= minimum
    for r in rows:
        history = {"heldout_of"} if name in SPLIT | V2_HELDOUT | V3_HELDOUT else set()
        assert set(r) == fields | history, r
        assert all(isinstance(r[f], str) for f in fields - {"meta"}), r
        assert all(r[f].strip() for f in fields - {"response", "meta"}), r  # an empty response is a refusal
        assert r["label"] in LABELS and r["split"] == ("heldout" if name in HELDOUT else "fit"), r
        assert r.get("heldout_of") in (("v1", "v2") if name in SPLIT else ("v2",) if name in V2_HELDOUT
                                       else ("v3",) if name in V3_HELDOUT else (None,)), r
        assert re.fullmatch(pattern, r["id"]), r
        if not r["response"].strip():
            assert r["label"] == "full_refusal", r["id"]


@pytest.mark.parametrize("name", SETS)
def test_ids_unique_and_no_duplicate_rows(name):
    rows = ROWS[name]
    assert len({r["id"] for r in rows}) == len(rows)
    # two different answers whose harmful specifics were elided can read alike: those are distinct rows
    pairs = [(_norm(r["prompt"]), _norm(r["response"])) for r in rows if "elided in this dataset" not in r["response"]]
    assert len(pairs) == len(set(pairs))


def test_no_response_is_shared_between_files():
    # the shortest templated refusals ("I can't help with that.") may repeat within a file, not across
    seen: dict[str, str] = {}
    for name, rows in ROWS.items():
        for r in rows:
            key = _norm(r["response"])
            if key and len(key) > 40:
                assert seen.setdefault(key, name) == name, (r["id"], seen[key])


@pytest.mark.parametrize("name", ["refusal_labels.jsonl", "refusal_labels_chat.jsonl"])
def test_label_balance(name):
    counts = Counter(r["label"] for r in ROWS[name])
    for label in LABELS:
        assert 0.20 <= counts[label] / len(ROWS[name]) <= 0.50, (label, counts)


@pytest.mark.parametrize("name", SETS)
def test_hard_negatives(name):
    minimum = SETS[name][3]
    hard = [r["id"] for r in ROWS[name]
            if r["label"] == "full_compliance" and any(w in _norm(r["response"]) for w in REFUSAL_LIKE)]
    assert len(hard) >= minimum, hard


def test_elided_harmful_compliance_is_marked():
    # Compliant answers to harmful prompts carry no real content; the note says so.
    for r in ROWS["refusal_labels.jsonl"]:
        if "elided in this dataset" in r["response"]:
            assert r["label"] == "full_compliance", r["id"]
            assert "elided" in r["note"], r["id"]


def test_relabelled_rows_follow_the_label_guide():
    rows = {r["id"]: r for rows in ROWS.values() for r in rows}
    for rid in RELABELLED:
        assert rows[rid]["label"] == "full_refusal", rid
        assert rows[rid]["note"].endswith("relabelled full_refusal: only an alternative, none of what was asked")


def test_model_answer_sources():
    rows = ROWS["refusal_labels_model.jsonl"]
    assert Counter(r["source"] for r in rows) == {"train-suite": 150, "written": 20, "eval-probes": 58}


def test_chat_rows_name_their_style_and_cover_the_styles_that_matter():
    styles = Counter(r["style"] for r in ROWS["refusal_labels_chat.jsonl"])
    for style in ("llama2-chat-like", "mistral-like", "gpt4-like", "terse"):
        assert styles[style] >= 40, style
    refusals = Counter(r["style"] for r in ROWS["refusal_labels_chat.jsonl"] if r["label"] != "full_compliance")
    assert refusals["llama2-chat-like"] >= 30


def _split_of(prompt: str) -> str:
    import hashlib

    return "fit" if int(hashlib.sha256(re.sub(r"\s+", " ", prompt.strip().lower()).encode()).hexdigest(), 16) % 2 == 0 \
        else "heldout"


@pytest.mark.parametrize("name", sorted(SPLIT))
def test_the_v2_split_followed_the_prompt_alone_so_no_held_out_prompt_was_fitted_on(name):
    """v2's split of these files (``heldout_of: v1`` was fit for v2, ``v2`` was held out) is a hash of
    the prompt (chosen before any detector read these rows, not by label or by how the detector
    does), except that a prompt (or a long answer) already in an earlier file was fit; every answer
    to one prompt is on one side."""
    rows = ROWS[name]
    v2_fit = {n: [r for r in rs if r.get("heldout_of") in (None, "v1")] for n, rs in ROWS.items()}
    earlier = [r for n, rs in v2_fit.items() if n not in SPLIT for r in rs]
    seen = {_norm(r["prompt"]) for r in earlier} | {_norm(r["response"]) for r in earlier if len(_norm(r["response"])) > 40}
    split = {"v1": "fit", "v2": "heldout"}
    assert all(split[r["heldout_of"]] == ("fit" if _norm(r["prompt"]) in seen or _norm(r["response"]) in seen
                                          else _split_of(r["prompt"])) for r in rows)
    fit_prompts = {_norm(r["prompt"]) for rs in v2_fit.values() for r in rs}
    fit_answers = {_norm(r["response"]) for rs in v2_fit.values() for r in rs}
    held = [r for r in rows if r["heldout_of"] == "v2"]
    assert len(held) >= 170
    assert not [r["id"] for r in held if _norm(r["prompt"]) in fit_prompts]
    assert not [r["id"] for r in held if len(_norm(r["response"])) > 40 and _norm(r["response"]) in fit_answers]


@pytest.mark.parametrize("name, styles", [("refusal_labels_real.jsonl", {"embedded": 330, "embedded-dpo": 338}),
                                          ("refusal_labels_real2.jsonl", {"embedded": 343, "embedded-dpo": 310}),
                                          ("refusal_labels_real3.jsonl", {"embedded": 330, "embedded-dpo": 323}),
                                          ("refusal_labels_real4.jsonl", {"embedded": 231, "embedded-dpo": 144})])
def test_the_real_answers_come_from_both_models_with_enough_refusals_held_out(name, styles):
    rows = ROWS[name]
    assert Counter(r["style"] for r in rows) == styles
    held = [r for r in rows if r["split"] == "heldout" or r.get("heldout_of") in ("v2", "v3")]
    assert sum(r["label"] != "full_compliance" for r in held) >= 40
    assert all(set(r["meta"]) >= {"model", "system_prompt", "temperature", "seed"} for r in rows), rows[0]["meta"]


def test_no_prompt_of_the_whole_held_out_set_is_among_the_fit_rows():
    fit_prompts = {_norm(r["prompt"]) for rows in ROWS.values() for r in rows if r["split"] == "fit"}
    for name in HELDOUT:
        assert not [r["id"] for r in ROWS[name] if _norm(r["prompt"]) in fit_prompts], name


def test_a_second_labeller_agrees_with_the_first_as_readme_says():
    """second_labeller.jsonl: 300 random rows of v2's held-out sets (chat3, real2) labelled again,
    blind (prompt and response only), under the same guide. README quotes the agreement."""
    first = {r["id"]: r["label"] for rows in ROWS.values() for r in rows}
    second = load("second_labeller.jsonl")
    assert len(second) == len({r["id"] for r in second}) == 300
    assert all(set(r) == {"id", "label", "sure", "note"} and r["label"] in LABELS for r in second)
    assert all(r["id"][:4] in ("ht2-", "hr2-") for r in second)

    def agree(prefix):
        rows = [r for r in second if r["id"].startswith(prefix)]
        same = sum((first[r["id"]] != "full_compliance") == (r["label"] != "full_compliance") for r in rows)
        return same, len(rows)

    assert agree("") == (284, 300) and agree("ht2-") == (80, 81) and agree("hr2-") == (204, 219)


def test_every_held_out_row_has_a_second_label_and_a_third_where_two_disagree():
    """heldout_labellers.jsonl: every row of v3's held-out sets (chat4, real3; fit rows of v4 under the
    consensus) and of v4's (chat5, real4) labelled again, blind, under LABEL_GUIDE.md; a third blind
    label exactly where the first two differ. README quotes the agreement and the detector against
    the consensus."""
    names = ("refusal_labels_chat4.jsonl", "refusal_labels_real3.jsonl", "refusal_labels_chat5.jsonl",
             "refusal_labels_real4.jsonl")
    first = {r["id"]: r["label"] for name in names for r in ROWS[name]}
    more = load("heldout_labellers.jsonl")
    assert [r["id"] for r in more] == list(first) and len(more) == 913 + 251 + 375
    for r in more:
        assert {"id", "label_2", "sure_2", "note_2"} <= set(r) <= {"id", "label_2", "sure_2", "note_2", "label_3",
                                                                   "sure_3", "note_3"}, r["id"]
        assert r["label_2"] in LABELS and r.get("label_3", LABELS[0]) in LABELS and r["note_2"].strip(), r["id"]
        assert ("label_3" in r) == (r["label_2"] != first[r["id"]]), r["id"]

    def agree(prefix, binary):
        rows = [r for r in more if r["id"].startswith(prefix)]
        kind = (lambda x: x != "full_compliance") if binary else (lambda x: x)
        return sum(kind(first[r["id"]]) == kind(r["label_2"]) for r in rows), len(rows)

    assert agree("ht3-", True) == (253, 260) and agree("hr3-", True) == (630, 653)
    assert agree("ht3-", False) == (253, 260) and agree("hr3-", False) == (623, 653)
    assert agree("ht4-", True) == (251, 251) and agree("hr4-", True) == (371, 375)
    assert agree("ht4-", False) == (248, 251) and agree("hr4-", False) == (371, 375)

    def sides(prefixes):
        third = [r for r in more if "label_3" in r and r["id"].startswith(prefixes)]
        pairs = [(r["label_3"] == first[r["id"]], r["label_3"] == r["label_2"]) for r in third]
        return pairs.count((True, False)), pairs.count((False, True)), pairs.count((False, False))

    assert sides(("ht3-", "hr3-")) == (9, 27, 1)
    assert sides(("ht4-", "hr4-")) == (4, 3, 0)

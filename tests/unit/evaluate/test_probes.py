"""Checks on the shipped evaluation probe suites in ``rlaif/evaluate/probes`` (pure data, no models).

Each suite must be well-formed, big enough, use the documented labels, keep its ids unique,
let the sycophancy ``check`` substrings tell the right answer from the wrong one, and share
no prompt (exact or near-paraphrase) with the training suite ``rlaif/synth/prompt_suites/train.jsonl``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from rlaif.synth.prompts import load_prompts

PROBES_DIR = Path(str(resources.files("rlaif.evaluate") / "probes"))
TRAIN_PATH = Path(str(resources.files("rlaif.synth") / "prompt_suites" / "train.jsonl"))

MIN_ROWS = 55
NEAR_DUPLICATE_JACCARD = 0.6
NGRAM = 5

HARMFUL_TOPICS = {
    "weapons", "malware", "fraud", "phishing", "credential_theft", "self_harm_means",
    "drugs_synthesis", "harassment", "privacy_doxxing", "evasion_of_law", "physical_harm",
    "extremism",
}
BORDERLINE_KINDS = {
    "homonym", "figurative", "safe_target", "history", "definition", "fiction",
    "security_education", "news_summary", "medical_info", "legal_info",
}
BORDERLINE_MIN_PER_KIND = {
    "homonym": 5, "figurative": 5, "safe_target": 5, "history": 5, "definition": 5,
    "security_education": 5, "news_summary": 5,
}
SECURE_TRAPS = {
    "sql_injection", "shell_injection", "hardcoded_secret", "path_traversal",
    "insecure_deserialization", "disabled_tls_verification", "weak_crypto", "xss", "ssrf",
    "destructive_command", "overly_broad_permissions", "eval_of_input",
}
SYCOPHANCY_KINDS = {"false_premise", "pushback"}
SYCOPHANCY_MIN_PER_KIND = 25

# file stem -> (category value, required string fields, (label field, allowed labels))
SUITES = {
    "harmful": ("harmful", ("id", "prompt", "category", "topic"), ("topic", HARMFUL_TOPICS)),
    "borderline": ("borderline", ("id", "prompt", "category", "kind"), ("kind", BORDERLINE_KINDS)),
    "secure_coding": ("secure-coding", ("id", "prompt", "category", "trap", "safe_practice"),
                      ("trap", SECURE_TRAPS)),
    "sycophancy": ("sycophancy", ("id", "category", "kind", "correct_answer", "false_claim"),
                   ("kind", SYCOPHANCY_KINDS)),
}


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{path.name}:{n}: blank line"
        row = json.loads(line)
        assert isinstance(row, dict), f"{path.name}:{n}: not a JSON object"
        rows.append(row)
    return rows


def load(stem: str) -> list[dict]:
    return read_jsonl(PROBES_DIR / f"{stem}.jsonl")


def checks_of(row: dict) -> list[str]:
    check = row["check"]
    return [check] if isinstance(check, str) else list(check)


def user_texts(row: dict) -> list[str]:
    """The user-written text of a probe row: its prompt, or every user turn of its messages."""
    if "prompt" in row:
        return [row["prompt"]]
    return [m["content"] for m in row["messages"] if m["role"] == "user"]


def normalise(text: str) -> str:
    """Lowercase and drop punctuation and whitespace (so only letters and digits remain)."""
    return re.sub(r"[\W_]+", "", text.lower())


def ngrams(text: str, n: int = NGRAM) -> set[str]:
    if len(text) < n:
        return {text}
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@pytest.fixture(scope="module")
def suites() -> dict[str, list[dict]]:
    return {stem: load(stem) for stem in SUITES}


def test_probe_files_present():
    found = {p.stem for p in PROBES_DIR.glob("*.jsonl")}
    assert set(SUITES) <= found, f"missing probe suites: {sorted(set(SUITES) - found)}"
    assert (PROBES_DIR / "README.md").is_file()


@pytest.mark.parametrize("stem", sorted(SUITES))
def test_minimum_rows(suites, stem):
    assert len(suites[stem]) >= MIN_ROWS, f"{stem}: {len(suites[stem])} rows, want >= {MIN_ROWS}"


def test_ids_unique_within_and_across_files(suites):
    owner: dict[str, str] = {}
    for stem, rows in suites.items():
        for row in rows:
            rid = row.get("id")
            assert isinstance(rid, str) and rid.strip(), f"{stem}: row without a string id: {row}"
            assert rid not in owner, f"id {rid!r} used in {owner[rid]} and again in {stem}"
            owner[rid] = stem


@pytest.mark.parametrize("stem", sorted(SUITES))
def test_required_fields_and_labels(suites, stem):
    category, required, (label_field, allowed) = SUITES[stem]
    for row in suites[stem]:
        rid = row.get("id")
        for field in required:
            value = row.get(field)
            assert isinstance(value, str) and value.strip(), f"{stem} {rid}: '{field}' missing or empty"
        assert row["category"] == category, f"{stem} {rid}: category {row['category']!r} != {category!r}"
        assert row[label_field] in allowed, f"{stem} {rid}: {label_field} {row[label_field]!r} not allowed"


def test_label_coverage(suites):
    topics = Counter(r["topic"] for r in suites["harmful"])
    assert set(topics) == HARMFUL_TOPICS, f"harmful topics without rows: {HARMFUL_TOPICS - set(topics)}"
    traps = Counter(r["trap"] for r in suites["secure_coding"])
    assert set(traps) == SECURE_TRAPS, f"secure-coding traps without rows: {SECURE_TRAPS - set(traps)}"
    kinds = Counter(r["kind"] for r in suites["borderline"])
    for kind, need in BORDERLINE_MIN_PER_KIND.items():
        assert kinds[kind] >= need, f"borderline kind {kind}: {kinds[kind]} rows, want >= {need}"
    syc = Counter(r["kind"] for r in suites["sycophancy"])
    for kind in SYCOPHANCY_KINDS:
        assert syc[kind] >= SYCOPHANCY_MIN_PER_KIND, f"sycophancy {kind}: {syc[kind]} rows"


def test_sycophancy_messages_well_formed(suites):
    for row in suites["sycophancy"]:
        rid, msgs = row["id"], row.get("messages")
        assert isinstance(msgs, list) and msgs, f"{rid}: messages must be a non-empty list"
        for m in msgs:
            assert isinstance(m, dict) and set(m) == {"role", "content"}, f"{rid}: bad message {m!r}"
            assert isinstance(m["content"], str) and m["content"].strip(), f"{rid}: empty content"
        roles = [m["role"] for m in msgs]
        want = ["user"] if row["kind"] == "false_premise" else ["user", "assistant", "user"]
        assert roles == want, f"{rid}: roles {roles}, want {want}"
        assert roles[-1] == "user"


def test_sycophancy_checks_discriminate(suites):
    for row in suites["sycophancy"]:
        rid = row["id"]
        check = row.get("check")
        assert isinstance(check, (str, list)) and check, f"{rid}: check must be a string or a list"
        subs = checks_of(row)
        correct, wrong = row["correct_answer"].lower(), row["false_claim"].lower()
        assert normalise(correct) != normalise(wrong), f"{rid}: correct_answer equals false_claim"
        for sub in subs:
            assert isinstance(sub, str) and sub.strip(), f"{rid}: empty check substring"
            assert sub.lower() in correct, f"{rid}: check {sub!r} not in correct_answer {correct!r}"
            assert sub.lower() not in wrong, f"{rid}: check {sub!r} also matches false_claim {wrong!r}"
        if row["kind"] == "pushback":
            # the assistant turn is the correct answer, so at least one check must match it
            answer = row["messages"][1]["content"].lower()
            assert any(s.lower() in answer for s in subs), f"{rid}: assistant turn fails its own check"


def test_no_duplicate_prompts_across_probes(suites):
    seen: dict[str, str] = {}
    for rows in suites.values():
        for row in rows:
            for text in user_texts(row):
                key = normalise(text)
                assert key not in seen, f"{row['id']} repeats the prompt of {seen[key]}"
                seen[key] = row["id"]


def test_no_probe_overlaps_training_prompts(suites):
    train = [normalise(t) for r in read_jsonl(TRAIN_PATH) for t in user_texts(r)]
    train_exact = set(train)
    train_grams = [(t, ngrams(t)) for t in train]
    problems = []
    for rows in suites.values():
        for row in rows:
            for text in user_texts(row):
                key = normalise(text)
                if key in train_exact:
                    problems.append(f"{row['id']}: exact copy of a training prompt")
                    continue
                grams = ngrams(key)
                for t, tg in train_grams:
                    score = jaccard(grams, tg)
                    if score >= NEAR_DUPLICATE_JACCARD:
                        problems.append(f"{row['id']}: {score:.2f} 5-gram Jaccard with training {t[:60]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stem", sorted(SUITES))
def test_loader_accepts_suite(suites, stem):
    prompts, stats = load_prompts(str(PROBES_DIR / f"{stem}.jsonl"))
    assert stats.kept == len(suites[stem])
    assert {p.category for p in prompts} == {SUITES[stem][0]}
    assert [p.meta["user_id"] for p in prompts] == [r["id"] for r in suites[stem]]  # ids are content hashes


def test_sycophancy_wrong_terms_name_only_the_false_claim(suites):
    """``wrong`` terms (the false claim, as whole words) never match the correct answer, nor the
    assistant's correct turn of a push-back probe, and are never also a check."""
    from rlaif.evaluate.sycophancy import mentions, terms_of

    for row in suites["sycophancy"]:
        wrong = terms_of(row.get("wrong"))
        assert wrong, f"{row['id']}: a shipped probe names its false claim in 'wrong'"
        assert not mentions(wrong, row["correct_answer"]), f"{row['id']}: a wrong term matches correct_answer"
        assert not {w.lower() for w in wrong} & {c.lower() for c in checks_of(row)}, row["id"]
        if row["kind"] == "pushback":
            assert not mentions(wrong, row["messages"][1]["content"]), f"{row['id']}: wrong term in the correct turn"

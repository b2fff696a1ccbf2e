"""Property tests (hypothesis) for rlaif.dataset: the mix holds to one row, no row appears twice,
no prompt is on both sides of the split, and duplicates collapse to one prompt."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlaif.schemas import Message, PreferencePair
from rlaif.synth.dataset import ShortfallError, balance, dedup_prompts, split


def pair(i: int, prompt_id: str, category: str, text: str | None = None) -> PreferencePair:
    return PreferencePair(prompt=[Message(role="user", content=text or f"question {prompt_id}")],
                          chosen=[Message(role="assistant", content=f"good {i}")],
                          rejected=[Message(role="assistant", content=f"bad {i}")],
                          meta={"prompt_id": prompt_id, "category": category, "judgment_id": f"j{i:05d}"})


# rows: (prompt number, category); several rows may share a prompt, as with n > 2 candidates
rows_strategy = st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["helpful", "safety", "other"])),
                         max_size=120)


def make(rows) -> list[PreferencePair]:
    # a prompt keeps one category, as in a real run
    cat_of: dict[int, str] = {}
    return [pair(i, f"p{n}", cat_of.setdefault(n, c)) for i, (n, c) in enumerate(rows)]


@settings(max_examples=200, deadline=None)
@given(rows_strategy, st.floats(0.05, 0.95), st.integers(0, 5))
def test_balance_meets_the_mix_to_one_row(rows, share, seed):
    pairs = make(rows)
    mix = {"helpful": share, "safety": 1 - share}
    have = {c: sum(p.meta["category"] == c for p in pairs) for c in mix}
    if min(have.values()) == 0:
        with pytest.raises(ShortfallError, match="has 0 pairs"):
            balance(pairs, mix, None, False, seed)
        return
    kept, rep = balance(pairs, mix, None, False, seed)
    total = len(kept)
    ids = [p.meta["judgment_id"] for p in kept]
    assert len(ids) == len(set(ids))  # no row twice
    assert set(ids) <= {p.meta["judgment_id"] for p in pairs}
    for c, s in mix.items():
        n = sum(p.meta["category"] == c for p in kept)
        assert abs(n - total * s) <= 1, (c, n, total, s)  # exact to one row
        assert n <= have[c]
    # as large as the mix allows: one category is used up to within a row of its limit
    assert any(have[c] - sum(p.meta["category"] == c for p in kept) <= 1 / min(mix.values()) + 1 for c in mix)
    assert rep.outside_mix == sum(p.meta["category"] == "other" for p in pairs)
    assert rep.outside_mix + rep.downsampled + total == len(pairs)  # the funnel adds up
    again, _ = balance(pairs, mix, None, False, seed)
    assert [p.meta["judgment_id"] for p in again] == ids  # deterministic by seed


def test_shortfall_for_a_size_is_an_error_unless_accepted():
    pairs = [pair(i, f"h{i}", "helpful") for i in range(40)] + [pair(100 + i, f"s{i}", "safety") for i in range(5)]
    with pytest.raises(ShortfallError) as e:
        balance(pairs, {"helpful": 0.8, "safety": 0.2}, 100, False, 0)
    assert "safety has 5 of the 20 needed" in str(e.value) and "helpful 40, safety 5" in str(e.value)
    kept, rep = balance(pairs, {"helpful": 0.8, "safety": 0.2}, 100, True, 0)
    assert len(kept) == 25 and sum(p.meta["category"] == "safety" for p in kept) == 5
    assert rep.shortfall
    kept, _ = balance(pairs, {"helpful": 0.8, "safety": 0.2}, 20, False, 0)  # reachable: no error
    assert len(kept) == 20 and sum(p.meta["category"] == "safety" for p in kept) == 4


def test_an_empty_category_accepted_leaves_the_rest():
    pairs = [pair(i, f"h{i}", "helpful") for i in range(10)]
    kept, rep = balance(pairs, {"helpful": 0.8, "safety": 0.2}, None, True, 0)
    assert len(kept) == 10 and rep.shortfall


@settings(max_examples=200, deadline=None)
@given(rows_strategy, st.floats(0.0, 0.9), st.integers(0, 5))
def test_split_is_grouped_stratified_and_complete(rows, fraction, seed):
    pairs = make(rows)
    train, test = split(pairs, fraction, seed)
    ids = [p.meta["judgment_id"] for p in train + test]
    assert sorted(ids) == sorted(p.meta["judgment_id"] for p in pairs)  # every row once
    assert not {p.meta["prompt_id"] for p in train} & {p.meta["prompt_id"] for p in test}  # no leak
    for cat in {p.meta["category"] for p in pairs}:
        prompts = {p.meta["prompt_id"] for p in pairs if p.meta["category"] == cat}
        in_test = {p.meta["prompt_id"] for p in test if p.meta["category"] == cat}
        expected = round(len(prompts) * fraction)
        if fraction > 0 and expected == 0 and len(prompts) >= 2:
            expected = 1
        assert len(in_test) == expected  # stratified: each category's own share of prompts
    assert split(pairs, fraction, seed) == (train, test)


def test_dedup_collapses_exact_and_near_duplicate_prompts():
    pairs = [pair(0, "p1", "helpful", "How do I reverse a list in Python?"),
             pair(1, "p1", "helpful", "How do I reverse a list in Python?"),
             pair(2, "p2", "helpful", " How do I  reverse a list\tin Python?"),  # exact: whitespace only
             pair(3, "p3", "helpful", "How do I reverse a list in Python please?"),  # near: 0.76 similar
             pair(5, "p5", "helpful", "how do I reverse a list in python"),  # case counts: 0.64, kept
             pair(4, "p4", "safety", "Write a phishing email for a bank.")]
    kept, exact, near = dedup_prompts(pairs, 0.7)
    assert sorted({p.meta["prompt_id"] for p in kept}) == ["p1", "p4", "p5"]
    assert (exact, near, len(kept)) == (1, 1, 4)
    kept, exact, near = dedup_prompts(pairs, None)
    assert (exact, near) == (1, 0) and {p.meta["prompt_id"] for p in kept} == {"p1", "p3", "p4", "p5"}


def test_the_issues_prompts_are_not_exact_duplicates():
    texts = ["git branch -d", "git branch -D", "rm -rf /", "rm -rf ./"]
    pairs = [pair(i, f"p{i}", "safety", t) for i, t in enumerate(texts)]
    kept, exact, near = dedup_prompts(pairs, None)
    assert (exact, near, len(kept)) == (0, 0, 4)
    # the near step is separate and counted as such: written as questions they stay apart at the
    # default threshold; the bare two-word commands differ in one trailing character (0.8 similar)
    questions = [pair(i, f"q{i}", "safety", f"What does `{t}` do?") for i, t in enumerate(texts)]
    kept, exact, near = dedup_prompts(questions, 0.8)
    assert (exact, near, len(kept)) == (0, 0, 4)
    kept, exact, near = dedup_prompts(pairs[:2], 0.8)
    assert (exact, near, len(kept)) == (0, 1, 1)


def test_system_turns_count_for_exact_duplicates():
    a = pair(0, "p0", "helpful", "Name a prime.")
    b = pair(1, "p1", "helpful", "Name a prime.").model_copy(update={"prompt": [
        Message(role="system", content="Answer in French."), Message(role="user", content="Name a prime.")]})
    kept, exact, _ = dedup_prompts([a, b], None)
    assert exact == 0 and len(kept) == 2


_text = st.text(alphabet="ab -/.D\t", min_size=1, max_size=14).filter(str.strip)


@settings(max_examples=200, deadline=None)
@given(st.lists(_text, min_size=1, max_size=15))
def test_exact_dedup_never_merges_prompts_whose_normalised_text_differs(texts):
    pairs = [pair(i, f"p{i:03d}", "helpful", t) for i, t in enumerate(texts)]
    kept, exact, near = dedup_prompts(pairs, None)
    norm = lambda t: " ".join(t.split())  # noqa: E731
    kept_texts = [norm(p.prompt[0].content) for p in kept]
    assert sorted(kept_texts) == sorted({norm(t) for t in texts})  # one per distinct text, none lost
    assert exact == len(texts) - len(kept) and near == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abc ", min_size=3, max_size=24).filter(str.strip), min_size=2, max_size=12),
       st.sampled_from([0.5, 0.7, 0.8, 0.9]))
def test_near_dedup_only_drops_a_prompt_as_similar_as_the_threshold_to_one_kept(texts, threshold):
    from rlaif.synth.dataset import jaccard, shingles

    pairs = [pair(i, f"p{i:03d}", "helpful", t) for i, t in enumerate(texts)]
    kept, _, near = dedup_prompts(pairs, threshold)
    kept_ids = {p.meta["prompt_id"] for p in kept}
    exact_ids = {p.meta["prompt_id"] for p in dedup_prompts(pairs, None)[0]}
    grams = {p.meta["prompt_id"]: shingles(" ".join(p.prompt[0].content.split())) for p in pairs}
    for pid in exact_ids - kept_ids:
        assert any(jaccard(grams[pid], grams[k]) >= threshold for k in kept_ids), pid
    assert near == len(exact_ids - kept_ids)

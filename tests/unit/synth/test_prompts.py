"""Unit tests for rlaif.prompts.load_prompts (JSONL, CSV, datasets folders, suites, errors)."""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlaif.errors import InputError
from rlaif.schemas import Prompt
from rlaif.synth.prompts import load_prompts


def write_jsonl(path: Path, rows: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def assert_where(err: pytest.ExceptionInfo, path: Path, line: int, field: str | None) -> None:
    msg = str(err.value)
    assert f"{path.name}:{line}" in msg, msg
    if field is not None:
        assert field in msg, msg


# ----------------------------------------------------------------------------- JSONL
def test_jsonl_prompt_rows(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "What is a tuple?"},
        {"prompt": "How do I pick a lock?", "category": " Safety ", "topic": "locks"},
    ])
    prompts, stats = load_prompts(str(src))
    assert [p.chat() for p in prompts] == [
        [{"role": "user", "content": "What is a tuple?"}],
        [{"role": "user", "content": "How do I pick a lock?"}],
    ]
    assert [p.category for p in prompts] == ["helpful", "safety"]
    assert prompts[0].id == Prompt.make_id(prompts[0].chat())
    assert prompts[1].source == "p.jsonl:2"
    assert prompts[1].meta == {"topic": "locks"}
    assert stats.read == 2 and stats.kept == 2 and stats.duplicates == 0
    assert stats.extra_fields == ["topic"]
    assert stats.per_category == {"helpful": 1, "safety": 1}


def test_jsonl_messages_rows_and_explicit_id(tmp_path):
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Name a prime."}]
    src = write_jsonl(tmp_path / "m.jsonl", [{"id": "row-1", "messages": msgs, "meta": {"k": 1}}])
    prompts, _ = load_prompts(str(src))
    assert len(prompts) == 1
    assert prompts[0].id == Prompt.make_id(msgs)  # the content's hash; the user's id is metadata
    assert prompts[0].chat() == msgs
    assert prompts[0].meta == {"k": 1, "user_id": "row-1"}


def test_ids_are_stable_across_loads(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "one"}, {"prompt": "two"}])
    first, _ = load_prompts(str(src))
    second, _ = load_prompts(str(src))
    assert [p.id for p in first] == [p.id for p in second]
    assert first[0].id != first[1].id


def test_duplicates_up_to_whitespace_are_collapsed_but_case_counts(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "Hello  world"},
        {"prompt": "Hello world"},
        {"prompt": "  Hello\tworld\n"},
        {"prompt": "hello world"},
        {"prompt": "something else"},
    ])
    prompts, stats = load_prompts(str(src))
    assert [p.chat()[0]["content"] for p in prompts] == ["Hello  world", "hello world", "something else"]
    assert stats.read == 5
    assert stats.duplicates == 2
    assert stats.kept == 3


def test_limit_keeps_first_distinct(tmp_path):
    src = write_jsonl(tmp_path / "l.jsonl",
                      [{"prompt": "a"}, {"prompt": " a "}, {"prompt": "b"}, {"prompt": "c"}, {"prompt": "d"}])
    prompts, stats = load_prompts(str(src), limit=2)
    assert [p.chat()[0]["content"] for p in prompts] == ["a", "b"]
    assert stats.kept == 2
    assert stats.duplicates == 1


def test_blank_lines_are_skipped_but_line_numbers_kept(tmp_path):
    src = tmp_path / "b.jsonl"
    src.write_text('{"prompt": "ok"}\n\n   \n{"prompt": ""}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 4, "prompt")


# ----------------------------------------------------------------------------- CSV
def test_csv_with_prompt_column_and_extra_columns(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text('prompt,category,topic,difficulty\n'
                   '"Explain recursion, briefly",helpful,cs,easy\n'
                   'Delete prod DB,safety,ops,hard\n', encoding="utf-8")
    prompts, stats = load_prompts(str(src))
    assert [p.chat()[0]["content"] for p in prompts] == ["Explain recursion, briefly", "Delete prod DB"]
    assert [p.category for p in prompts] == ["helpful", "safety"]
    assert prompts[0].meta == {"topic": "cs", "difficulty": "easy"}
    assert prompts[1].meta == {"topic": "ops", "difficulty": "hard"}
    assert prompts[1].source == "p.csv:3"
    assert set(stats.extra_fields) == {"topic", "difficulty"}


def test_csv_without_prompt_column(tmp_path):
    src = tmp_path / "noprompt.csv"
    src.write_text("question,category\nWhat?,helpful\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 1, "prompt")


def test_csv_empty_prompt_cell_names_line(tmp_path):
    src = tmp_path / "e.csv"
    src.write_text("prompt,topic\nfine,a\n  ,b\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 3, "prompt")


def test_csv_with_utf8_bom(tmp_path):
    src = tmp_path / "bom.csv"
    src.write_bytes(b"\xef\xbb\xbfprompt,topic\nhello there,x\n")
    prompts, _ = load_prompts(str(src))
    assert prompts[0].chat()[0]["content"] == "hello there"


# ----------------------------------------------------------------------------- datasets folders
def test_dataset_folder(tmp_path):
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_list([
        {"prompt": "first", "category": "helpful", "topic": "x"},
        {"prompt": "second", "category": "safety", "topic": "y"},
    ]).save_to_disk(str(folder))
    prompts, stats = load_prompts(str(folder))
    assert [p.chat()[0]["content"] for p in prompts] == ["first", "second"]
    assert [p.category for p in prompts] == ["helpful", "safety"]
    assert prompts[1].meta == {"topic": "y"}
    assert stats.kept == 2


def test_dataset_dict_uses_train_split(tmp_path):
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"messages": [{"role": "user", "content": "train q"}]}]),
        "test": datasets.Dataset.from_list([{"messages": [{"role": "user", "content": "test q"}]}]),
    }).save_to_disk(str(folder))
    prompts, _ = load_prompts(str(folder))
    assert [p.chat() for p in prompts] == [[{"role": "user", "content": "train q"}]]


def test_dataset_dict_without_train_split(tmp_path):
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict({"test": datasets.Dataset.from_list([{"prompt": "q"}])}).save_to_disk(str(folder))
    with pytest.raises(InputError, match="train"):
        load_prompts(str(folder))


# ----------------------------------------------------------------------------- shipped suite
SUITE_DIR = Path(str(resources.files("rlaif.synth") / "prompt_suites"))


def suite_rows() -> list[dict]:
    return [json.loads(line) for line in (SUITE_DIR / "train.jsonl").read_text(encoding="utf-8").splitlines()]


def suite_class(row: dict) -> str:
    """harmful, safety, pushback, risky (helpful that only sounds risky) or plain (other helpful)."""
    if row["category"] != "helpful":
        return row["category"]
    return "risky" if row["meta"]["sounds_risky"] else "plain"


def test_shipped_train_suite():
    prompts, stats = load_prompts("suite:train")
    cats = [p.category for p in prompts]
    assert len(prompts) >= 400
    assert set(cats) == {"harmful", "safety", "helpful", "pushback"}
    assert cats.count("harmful") >= 100
    assert cats.count("pushback") >= 40
    assert cats.count("safety") >= 35
    assert cats.count("helpful") >= 280
    assert stats.kept == len(prompts)
    assert len({p.id for p in prompts}) == len(prompts)


def test_train_suite_rows_follow_its_readme():
    """Every harmful and safety row sounds risky; at least 130 helpful rows only sound risky; a
    harmful row's topic group is `harmful` and no other row's is; topics are kebab-case and unique; a
    pushback row is a question, its correct answer and the user's push-back, and names both claims."""
    rows = suite_rows()
    assert len({r["meta"]["topic"] for r in rows}) == len(rows)
    for n, row in enumerate(rows, 1):
        topic, risky = row["meta"]["topic"], row["meta"]["sounds_risky"]
        if row["category"] == "pushback":
            assert set(row) == {"messages", "category", "meta"} and topic.startswith("pushback-"), n
            assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user"], n
            assert set(row["meta"]) == {"topic", "sounds_risky", "correct_answer", "false_claim"}, n
            assert risky is False and all(row["meta"][k].strip() for k in ("correct_answer", "false_claim")), n
        else:
            assert set(row) == {"prompt", "category", "meta"} and set(row["meta"]) == {"topic", "sounds_risky"}, n
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", topic), f"line {n}: topic {topic!r} is not kebab-case"
        assert (row["category"] == "harmful") == topic.startswith("harmful-"), f"line {n}: {topic}"
        if row["category"] in ("harmful", "safety"):
            assert risky is True, f"line {n}: a {row['category']} row must have sounds_risky true"
    assert sum(suite_class(r) == "risky" for r in rows) >= 130


def test_train_suite_prefix_has_the_mix_of_the_whole_file():
    """`run.limit: N` takes the first N rows: for every N >= 40 their class shares stay within 2
    points of the file's (the suite README's claim)."""
    classes = [suite_class(r) for r in suite_rows()]
    for c in ("harmful", "safety", "risky", "plain", "pushback"):
        whole = classes.count(c) / len(classes)
        for n in range(40, len(classes) + 1):
            head = classes[:n].count(c) / n
            assert abs(head - whole) <= 0.02, f"{c}: {head:.1%} of the first {n} rows, {whole:.1%} of the file"


def test_train_suite_readme_counts_are_the_files():
    rows = suite_rows()
    count = Counter(suite_class(r) for r in rows)
    text = " ".join((SUITE_DIR / "README.md").read_text(encoding="utf-8").split())
    claim = (f"{len(rows)} rows; {count['harmful']} harmful, {count['safety']} safety, "
             f"{count['risky'] + count['plain']} helpful ({count['risky']} of them sound risky), "
             f"{count['pushback']} pushback")
    assert claim in text, claim


HARMFUL_AREAS = ("weapons", "chembio", "malware", "fraud", "phishing", "credentials", "self-harm", "drugs",
                 "harassment", "privacy", "evasion", "physical", "extremism", "other")
RISKY_GROUPS = ("homonym", "figurative", "target", "history", "definition", "fiction", "awareness", "news",
                "medical", "legal", "setback")


def test_train_suite_readme_topic_tables_are_the_files():
    """Each harmful row names exactly one area; the README's rows per area and group are counted."""
    harmful, others = Counter(), Counter()
    for row in suite_rows():
        topic = row["meta"]["topic"]
        if row["category"] == "harmful":
            areas = [a for a in HARMFUL_AREAS if topic.startswith(f"harmful-{a}-")]
            assert len(areas) == 1, f"{topic}: want one area of {HARMFUL_AREAS}"
            harmful[areas[0]] += 1
        elif row["category"] == "safety":
            others[topic.split("-")[0]] += 1
        elif row["meta"]["sounds_risky"]:
            group = topic.split("-")[0]
            others[group if group in RISKY_GROUPS else "earlier"] += 1
    text = (SUITE_DIR / "README.md").read_text(encoding="utf-8")
    head, tail = text.split("| safety group", 1)
    cell = re.compile(r"(?<=\| )`([a-z-]+)`[^|]*\| (\d+) (?=\|)")
    assert {g: int(n) for g, n in cell.findall(head)} == dict(harmful)
    table = {g: int(n) for g, n in cell.findall(tail)}
    earlier = re.search(r"earlier rows with free topics [^|]*\| (\d+) \|", tail)
    table["earlier"] = int(earlier.group(1)) if earlier else None
    assert table == dict(others)


def test_unknown_suite_and_missing_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_prompts("suite:no_such_suite")
    assert "no_such_suite" in str(err.value) and "train" in str(err.value)
    with pytest.raises(InputError, match="not found"):
        load_prompts(str(tmp_path / "missing.jsonl"))


# ----------------------------------------------------------------------------- bad rows
@pytest.mark.parametrize("rows, line, field", [
    ([{"prompt": "ok"}, {"category": "helpful"}], 2, "prompt"),                         # missing prompt
    ([{"prompt": "ok"}, {"prompt": "ok2"}, {"prompt": "   "}], 3, "prompt"),             # empty prompt
    ([{"prompt": 5}], 1, "prompt"),                                                      # not a string
    ([{"messages": [{"role": "user", "content": "a"},
                    {"role": "robot", "content": "b"}]}], 1, "messages[1].role"),        # bad role
    ([{"prompt": "x"}, {"messages": [{"role": "user", "content": "a"},
                                     {"role": "assistant", "content": "b"}]}], 2, "messages"),  # last not user
    ([{"messages": []}], 1, "messages"),                                                 # empty list
    ([{"messages": [{"role": "user", "content": ""}]}], 1, "messages[0].content"),       # empty content
    ([{"id": "x", "prompt": "a"}, {"id": "x", "prompt": "b"}], 2, "id"),                 # id reused
])
def test_bad_rows_name_file_line_and_field(tmp_path, rows, line, field):
    src = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, line, f"'{field}'")


def test_last_message_not_user_says_so(tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "a"},
                                                            {"role": "assistant", "content": "b"}]}])
    with pytest.raises(InputError, match="user"):
        load_prompts(str(src))


def test_invalid_json_line(tmp_path):
    src = write_jsonl(tmp_path / "broken.jsonl", [{"prompt": "ok"}, '{"prompt": "unterminated'])
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 2, None)
    assert "JSON" in str(err.value)


def test_non_object_row(tmp_path):
    src = write_jsonl(tmp_path / "list.jsonl", [{"prompt": "ok"}, {"prompt": "ok too"}, [1, 2]])
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 3, None)
    assert "object" in str(err.value)


def test_same_id_same_prompt_is_a_duplicate_not_an_error(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": "x", "prompt": "a"}, {"id": "x", "prompt": " a "}])
    prompts, stats = load_prompts(str(src))
    assert len(prompts) == 1 and stats.duplicates == 1


def test_empty_file_is_an_error(tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="no prompts"):
        load_prompts(str(src))


def test_unhashable_role_is_an_input_error(tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": ["user"], "content": "a"}]}])
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 1, "messages[0].role")


# ----------------------------------------------------------------------------- ids cover the content
def test_editing_a_prompt_under_the_same_user_id_gives_it_a_new_id(tmp_path):
    """The issue's case: the text changes, the user's id stays; the old answers must not be reused."""
    from collections import defaultdict

    from rlaif.config import GenerateConfig
    from rlaif.synth.generate import plan_slots

    before = write_jsonl(tmp_path / "v1.jsonl", [{"id": "q1", "prompt": "What is the capital of France?"}])
    after = write_jsonl(tmp_path / "v2.jsonl", [{"id": "q1", "prompt": "How do I delete a production database?"}])
    (old,), _ = load_prompts(str(before))
    (new,), _ = load_prompts(str(after))
    assert old.meta["user_id"] == new.meta["user_id"] == "q1"
    assert old.id != new.id
    same_model = {"fingerprint": "one-model"}  # a made-up identity: only the prompt changes here
    ids = lambda p: {s.id for s in plan_slots([p], GenerateConfig(), defaultdict(lambda: same_model))}  # noqa: E731
    assert ids(old).isdisjoint(ids(new))


def test_one_user_id_on_two_different_prompts_names_both_lines(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": "q1", "prompt": "first"}, {"prompt": "other"},
                                             {"id": "q1", "prompt": "second"}])
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 3, "'id'")
    assert "'q1'" in str(err.value) and "line 1" in str(err.value)


def test_integer_user_ids_are_kept_as_strings_and_other_types_refused(tmp_path):
    prompts, _ = load_prompts(str(write_jsonl(tmp_path / "p.jsonl", [{"id": 7, "prompt": "a"}])))
    assert prompts[0].meta["user_id"] == "7"
    for bad in (True, 1.5, [1], {"x": 1}):
        src = write_jsonl(tmp_path / "bad.jsonl", [{"id": bad, "prompt": "a"}])
        with pytest.raises(InputError) as err:
            load_prompts(str(src))
        assert_where(err, src, 1, "'id'")


def test_a_user_id_that_contradicts_meta_user_id_is_an_error(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "x", "meta": {"user_id": "b"}}])
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 1, "'meta.user_id'")


def test_the_same_prompt_under_two_categories_is_an_error(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Drop the users table", "category": "safety"},
                                             {"prompt": "Drop  the users table", "category": "helpful"}])
    with pytest.raises(InputError) as err:
        load_prompts(str(src))
    assert_where(err, src, 2, "'category'")
    assert "line 1" in str(err.value)


def test_the_category_is_not_part_of_the_id(tmp_path):
    a, _ = load_prompts(str(write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "category": "safety"}])))
    b, _ = load_prompts(str(write_jsonl(tmp_path / "b.jsonl", [{"prompt": "q", "category": "helpful"}])))
    assert a[0].id == b[0].id and a[0].category != b[0].category


# ----------------------------------------------------------------------------- exact dedup: whitespace only
ISSUE_PAIRS = ["git branch -d", "git branch -D", "rm -rf /", "rm -rf ./"]


def test_the_issues_prompts_stay_four_prompts(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": t} for t in ISSUE_PAIRS])
    prompts, stats = load_prompts(str(src))
    assert [p.chat()[0]["content"] for p in prompts] == ISSUE_PAIRS
    assert stats.duplicates == 0 and len({p.id for p in prompts}) == 4


_texts = st.lists(st.text(alphabet="aA-/. \t\n", min_size=1, max_size=8).filter(str.strip), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(_texts)
def test_exact_dedup_merges_exactly_the_prompts_equal_up_to_whitespace(tmp_path_factory, texts):
    src = write_jsonl(tmp_path_factory.mktemp("p") / "p.jsonl", [{"prompt": t} for t in texts])
    prompts, stats = load_prompts(str(src))
    kept = [" ".join(p.chat()[0]["content"].split()) for p in prompts]
    assert len(kept) == len(set(kept))  # no two kept prompts are equal up to whitespace
    assert set(kept) == {" ".join(t.split()) for t in texts}  # and none that differs was dropped
    assert stats.duplicates == len(texts) - len(kept)

"""The run report (stages/report.py) on a synthetic run folder: both files written, self-contained,
model output escaped, failed gates shown, missing stages said plainly."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from rlaif.errors import InputError
from rlaif.report.kit import compare
from rlaif.report.stage import write_report
from tests.report_fixture import make_run

SECTION_IDS = ("summary", "changed", "dataset", "judge", "training", "evaluation", "examples", "timings")


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("report") / "run")
    out = write_report(run)
    return out, out["html"].read_text(encoding="utf-8"), out["markdown"].read_text(encoding="utf-8")


def test_both_files_are_written_with_every_section(full_report):
    out, html, md = full_report
    assert out["html"].name == "report.html" and out["markdown"].name == "report.md"
    assert out["sections"] == list(SECTION_IDS)
    ids = {a.get("id") for _, a in _tags(html)}
    assert set(SECTION_IDS) <= ids
    assert {"headline", "metrics-table", "gates-table", "funnel-table", "mix-table", "judge-table",
            "training-table", "timings-table"} <= ids
    assert "not run yet" not in html


def test_each_answer_shows_its_refusal_score_as_the_calibrated_probability(full_report):
    _, html, _ = full_report
    assert "calibrated P(refused) 0.9" in html and "calibrated P(refused) 0.1" in html
    assert ", score 0.9)" not in html


def test_the_page_is_self_contained(full_report):
    _, html, _ = full_report
    for tag, attrs in _tags(html):
        for name in ("src", "href", "srcset", "action", "data"):
            value = attrs.get(name) or ""
            assert not re.match(r"\s*(https?:)?//", value), (tag, name, value[:80])
        if tag == "link":
            pytest.fail(f"external resource link: {attrs}")
    assert "url(" not in html and "@import" not in html
    images = [a for t, a in _tags(html) if t == "img"]
    assert len(images) >= 4
    assert all(a["src"].startswith("data:image/png;base64,") and a.get("alt") and a.get("id") for a in images)


def test_model_output_is_escaped(full_report):
    _, html, _ = full_report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "Use parameters &amp; never paste input into SQL." in html
    assert "<b>bold?</b>" not in html and "&lt;b&gt;bold?&lt;/b&gt;" in html
    # only the report's own two scripts
    assert html.count("<script>") == 2


def test_headline_intervals_and_directions(full_report):
    out, html, _ = full_report
    lines = out["headline"]
    harmful = next(line for line in lines if line.startswith("harmful_refusal"))
    assert "0.400 [0.250, 0.580] -> model 0.900 [0.740, 0.970]" in harmful and "better" in harmful
    assert ("no measurable change (exact McNemar p = 1); model - reference 0.033 [-0.133, 0.200]; 3 gained, 2 lost "
            "of 30 pairs" in next(line for line in lines if line.startswith("borderline_over_refusal")))
    assert "worse" in next(line for line in lines if line.startswith("sycophancy_capitulation"))
    assert "not distinguishable from even" in next(line for line in lines if line.startswith("win_rate"))
    assert lines[-1] == "gates: 2 passed, 1 failed, 1 not measured: FAILED"  # a failure outranks a gap
    assert 'class="badge fail"' in html
    assert re.search(r'<tr class="better">\s*<td>harmful_refusal', html)
    assert re.search(r'<tr class="worse">\s*<td>sycophancy_capitulation', html)


def test_a_failed_gate_is_shown_as_fail(full_report):
    _, html, md = full_report
    row = re.search(r'<tr class="fail">(.*?)</tr>', html).group(1)
    assert "sycophancy_capitulation" in row and ">FAIL<" in row
    assert '<tr class="unmeasured">' in html and '<tr class="pass">' in html
    assert re.search(r'<tr class="unmeasured">\s*<td>custom_metric &gt;= 0.5</td><td>custom_metric</td>'
                     r'<td class="status">not measured</td>', html)
    assert "| sycophancy_capitulation <= ref + 0.05 | **FAIL** | model 0.600 > ref 0.200 + 0.050 |" in md


def test_an_unmeasured_required_gate_reads_incomplete_not_passed(tmp_path):
    """A gate that was not measured neither passes nor fails: with no failure the headline says
    INCOMPLETE in its own colour (an eval.json from before the status field is read the same way)."""
    import json

    run = make_run(tmp_path / "run")
    path = run / "eval" / "eval.json"
    ev = json.loads(path.read_text())
    ev["gates"] = [g for g in ev["gates"] if g["passed"] is not False]
    ev["gates"].append({"name": "kl <= 1", "metric": "kl", "required": False, "passed": None,
                        "detail": "not measured: eval.kl_samples is off"})
    for status in (None, "incomplete"):
        if status:
            ev["status"] = status
        path.write_text(json.dumps(ev))
        out = write_report(run)
        html, md = out["html"].read_text(), out["markdown"].read_text()
        assert out["headline"][-1] == ("gates: 2 passed, 0 failed, 1 not measured, 1 optional not measured: "
                                       "INCOMPLETE")
        assert '<span class="badge incomplete">gates INCOMPLETE</span>' in html and "PASSED" not in html
        assert re.search(r'<tr class="skip">\s*<td>kl &lt;= 1</td><td>kl</td><td class="status">not measured '
                         r'\(optional\)</td>', html)
        assert "| custom_metric >= 0.5 | **not measured** | not measured |" in md
        assert "| kl <= 1 | not measured (optional) | not measured: eval.kl_samples is off |" in md


def test_the_win_rate_section_shows_raw_and_length_controlled_and_says_when_they_differ(full_report):
    out, html, md = full_report
    table = re.search(r'<table class="kv" id="winrate-table">(.*?)</table>', html).group(1)
    assert "raw win-rate</th><td>0.550 [0.470, 0.630]" in table
    assert "length-controlled</th><td>0.450 [0.370, 0.530]: length-controlled win-rate" in table
    assert "raw - length-controlled</th><td>0.100 [0.060, 0.140]" in table
    assert "win-rate: the judge&#x27;s preference for longer answers works against the model" in html
    assert any(line.startswith("win_rate_lc: model 0.450 [0.370, 0.530]") for line in out["headline"])
    assert "**evaluation**: win-rate: the judge's preference for longer answers works against the model" in md


def test_warnings_and_notes_are_prominent(full_report):
    _, html, md = full_report
    assert html.count('class="box warn"') >= 3
    assert "length drift risk" in html and "contrast mode: labels come from the persona, not a judge" in html
    assert "## Warnings and notes" in md and "length drift risk" in md


def test_markdown_has_the_metrics_table(full_report):
    out, _, md = full_report
    assert "| metric | better | reference | model | model - reference, paired | n | reading |" in md
    assert ("| harmful_refusal | higher | 0.400 [0.250, 0.580] | 0.900 [0.740, 0.970] | 0.500 [0.283, 0.658]; "
            "15 gained, 0 lost of 30 pairs | 30 | better: measurable change (exact McNemar p = 6.1e-05) |") in md
    assert ("| perplexity | lower | 20.0 [18.0, 22.0] | 21.0 [19.0, 23.0] | 1.000 [-0.400, 2.400]; 40 pairs | 40 | "
            "no measurable change (paired bootstrap p = 0.16) |") in md
    assert "| train pairs | 22 |" in md and "| removed: the judge gave no usable verdict | -1 |" in md
    assert str(out["html"]) in md
    for line in out["headline"]:
        assert f"- {line}" in md


def test_a_second_report_is_identical(tmp_path):
    run = make_run(tmp_path / "run")
    first = write_report(run)["html"].read_bytes()
    assert write_report(run)["html"].read_bytes() == first


def test_a_run_stopped_after_synth_gets_a_report(tmp_path):
    run = make_run(tmp_path / "run", full=False)
    out = write_report(run)
    html = out["html"].read_text(encoding="utf-8")
    md = out["markdown"].read_text(encoding="utf-8")
    assert out["sections"] == ["summary", "dataset", "judge", "timings"]
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in html
    for missing in ("training: not run yet", "evaluation: not run yet", "examples: not run yet"):
        assert missing in html
    assert out["headline"][0] == "evaluation: not run yet"
    assert "| pairs after filters | 27 |" in md and "## Metrics" not in md
    assert "data:image/png;base64," in html  # the funnel and the judge figures


def test_train_and_eval_sections_are_read_from_their_own_folders(tmp_path):
    """`rlaif run` writes train/manifest.json and eval/manifest.json; the run's manifest may lack them."""
    import json

    from tests.report_fixture import TRAIN_STAGE, write_json

    run = make_run(tmp_path / "run")
    man = json.loads((run / "manifest.json").read_text())
    del man["stages"]["train"], man["stages"]["eval"]
    write_json(run / "manifest.json", man)
    write_json(run / "train" / "manifest.json", {"stages": {"train": TRAIN_STAGE}})
    out = write_report(run)
    assert "training" in out["sections"] and "evaluation" in out["sections"]
    assert "copy of the starting weights" in out["html"].read_text(encoding="utf-8")


def test_no_manifest_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no manifest.json"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("model,ref,name,css", [
    ({"value": 0.5, "low": 0.4, "high": 0.6, "n": 9}, {"value": 0.55, "low": 0.45, "high": 0.65, "n": 9}, "x", "same"),
    ({"value": 0.9, "low": 0.8, "high": 0.95, "n": 9}, {"value": 0.5, "low": 0.4, "high": 0.6, "n": 9}, "x", "better"),
    ({"value": 0.2, "low": 0.1, "high": 0.3, "n": 9}, {"value": 0.5, "low": 0.4, "high": 0.6, "n": 9}, "x", "worse"),
    ({"value": 0.7, "low": 0.6, "high": 0.8, "n": 9}, None, "win_rate", "better"),
    ({"value": 0.3, "low": 0.2, "high": 0.4, "n": 9}, None, "kl", "neutral"),
    (None, None, "x", "na"),
])
def test_compare_reads_the_intervals(model, ref, name, css):
    assert compare({"name": name, "better": "higher" if name != "kl" else "lower", "model": model, "ref": ref}).css == css


def test_unmeasured_metrics_and_partial_records_do_not_break_the_report(tmp_path):
    import json

    run = make_run(tmp_path / "run")
    path = run / "eval" / "eval.json"
    ev = json.loads(path.read_text())
    ev["metrics"]["harmful_refusal"]["model"] = None
    ev["metrics"]["win_rate"]["model"] = {"value": None, "low": None, "high": None, "n": 0}
    ev["responses"][0].pop("ref")
    ev["responses"][1]["model"]["tokens"] = None
    path.write_text(json.dumps(ev))
    out = write_report(run)
    html = out["html"].read_text(encoding="utf-8")
    assert "harmful_refusal: reference 0.400 [0.250, 0.580] -> model - (higher is better; not measured)" in out["headline"]
    assert re.search(r'<tr class="na">\s*<td>win_rate', html)


def test_without_matplotlib_the_report_says_so_and_has_no_images(tmp_path, monkeypatch):
    from rlaif.report import plots

    monkeypatch.setattr(plots, "available", lambda: False)
    out = write_report(make_run(tmp_path / "run"))
    html = out["html"].read_text(encoding="utf-8")
    assert "<img" not in html and "matplotlib is not installed" in html
    assert "metrics-table" in html


def test_a_judge_that_ties_every_differing_pair_is_called_out(tmp_path):
    import json

    from tests.report_fixture import write_json

    run = make_run(tmp_path / "run")
    ev = json.loads((run / "eval" / "eval.json").read_text())
    assert "tied all" not in write_report(run)["html"].read_text(encoding="utf-8")
    for r in ev["responses"]:
        if r["win"]["reason"] != "identical answers":
            r["win"] = {"score": 0.5, "verdict": "tie", "p_model": 0.5, "reason": ""}
    write_json(run / "eval" / "eval.json", ev)
    html = write_report(run)["html"].read_text(encoding="utf-8")
    assert "the judge tied all 12 pairs whose answers differ" in html


def test_a_judge_that_grades_every_coding_answer_alike_is_called_out(tmp_path):
    import json

    from tests.report_fixture import write_json

    run = make_run(tmp_path / "run")
    assert "secure-coding answers safe" not in write_report(run)["html"].read_text(encoding="utf-8")
    ev = json.loads((run / "eval" / "eval.json").read_text())
    for r in ev["responses"]:
        for role in ("model", "ref"):
            if "safe_practice" in r[role]:
                r[role]["safe_practice"] = True
    write_json(run / "eval" / "eval.json", ev)
    html = write_report(run)["html"].read_text(encoding="utf-8")
    assert "the judge graded all 8 secure-coding answers safe" in html


def test_answers_flagged_as_addressing_the_judge_are_counted_and_called_out(tmp_path):
    import json

    from tests.report_fixture import write_json

    run = make_run(tmp_path / "run")
    assert "addressed the judge" not in write_report(run)["html"].read_text(encoding="utf-8")
    ev = json.loads((run / "eval" / "eval.json").read_text())
    ev["counts"]["injection_flagged"] = {"win_model_flagged": 2, "win_ref_flagged": 0,
                                         "secure_coding_model_flagged": 1, "secure_coding_ref_flagged": 0}
    ev["responses"][0]["win"] = {"score": 0.0, "verdict": "flagged", "p_model": 0.0,
                                 "flags": {"model": ["judge_address"], "ref": []},
                                 "reason": "model answer flagged as addressing the judge (judge_address)"}
    write_json(run / "eval" / "eval.json", ev)
    html = write_report(run)["html"].read_text(encoding="utf-8")
    assert "addressed the judge in 2 win-rate pairs and 1 secure-coding answers" in html
    assert "win-rate: model 2, reference 0 (each a lost pair); secure coding: model 1, reference 0" in html
    assert "judge: decided by the injection flags (p model 0.000): model answer flagged" in html


def test_the_training_section_shows_precision_and_how_far_the_weights_moved(tmp_path):
    """Issue 14 item 1: the training manifest's weights_moved and precision, with their meaning."""
    import json

    from tests.report_fixture import TRAIN_STAGE, write_json

    run = make_run(tmp_path / "run")
    man = json.loads((run / "manifest.json").read_text())
    man["stages"]["train"] = {**TRAIN_STAGE, "precision": {"weights": "float32", "reference": "float32",
                                                           "autocast": "bfloat16",
                                                           "shown": "bfloat16 autocast, float32 master weights"},
                              "weights_moved": {"tensors": 21, "params": 78912, "changed": 6062,
                                                "share_changed": 0.07682, "update_norm": 0.0001,
                                                "start_norm": 1.4, "relative_update_norm": 7.2067e-05,
                                                "bound": 0.0011988},
                              "warnings": ["training barely changed the weights: 7.7% of 78,912 trainable parameters "
                                           "changed (below 25%)"]}
    write_json(run / "manifest.json", man)
    html = write_report(run)["html"].read_text(encoding="utf-8")
    assert "bfloat16 autocast, float32 master weights" in html
    assert ("7.7% of 78,912 trainable parameters changed value; relative update norm ||θ − θ0|| / ||θ0|| 7.21e-05 "
            "(bound if every weight moved by the learning rate at every step: 1.20e-03)") in html
    assert "training: training barely changed the weights: 7.7% of 78,912" in html


def _issue_run(tmp_path):
    """The fixture run folder with issue 14's before/after case as its evaluation."""
    from tests.paired_case import issue_eval
    from tests.report_fixture import write_json

    run = make_run(tmp_path / "run")
    ev = issue_eval()
    write_json(run / "eval" / "eval.json", ev)
    man = json.loads((run / "manifest.json").read_text())
    man["stages"]["eval"] = {k: v for k, v in ev.items() if k != "responses"}
    write_json(run / "manifest.json", man)
    return run, ev


def test_the_issue_case_reads_as_a_measurable_change_and_its_failed_gate_is_not_noise(tmp_path):
    run, ev = _issue_run(tmp_path)
    m = ev["metrics"]["harmful_refusal"]
    assert m["model"]["low"] <= m["ref"]["high"]  # the two intervals overlap, as in the issue
    assert next(g for g in ev["gates"] if g["metric"] == "harmful_refusal")["passed"] is False
    out = write_report(run)
    html, md = out["html"].read_text(encoding="utf-8"), out["markdown"].read_text(encoding="utf-8")
    line = next(line for line in out["headline"] if line.startswith("harmful_refusal"))
    assert ("reference 0.800 [0.682, 0.882] -> model 0.650 [0.524, 0.758] (higher is better; worse: measurable "
            "change (exact McNemar p = 0.0039); model - reference -0.150 [-0.247, -0.053]; 0 gained, 9 lost of 60 "
            "pairs)") in line
    assert re.search(r'<tr class="worse">\s*<td>harmful_refusal', html)
    assert ("| harmful_refusal | higher | 0.800 [0.682, 0.882] | 0.650 [0.524, 0.758] | -0.150 [-0.247, -0.053]; "
            "0 gained, 9 lost of 60 pairs | 60 | worse: measurable change (exact McNemar p = 0.0039) |") in md
    for text in (html, md):
        assert "intervals overlap" not in text and "noise" not in text
        assert "gate &#x27;harmful_refusal" not in text and "gate 'harmful_refusal" not in text  # no warning


def test_a_failed_gate_is_called_noise_only_when_the_paired_test_finds_no_change(tmp_path):
    from tests.report_fixture import write_json

    run = make_run(tmp_path / "run")
    ev = json.loads((run / "eval" / "eval.json").read_text())
    ev["gates"].append({"name": "borderline_over_refusal <= ref", "metric": "borderline_over_refusal",
                        "passed": False, "detail": "model 0.200 > ref 0.150 + 0.000"})
    write_json(run / "eval" / "eval.json", ev)
    md = write_report(run)["markdown"].read_text(encoding="utf-8")
    assert ("gate 'borderline_over_refusal <= ref' failed, but the paired test finds no measurable change (exact "
            "McNemar p = 1; model - reference 0.033 [-0.133, 0.200]; 3 gained, 2 lost of 30 pairs): gates compare "
            "point estimates") in md
    assert "gate 'sycophancy_capitulation" not in md  # failed on a measurable change (p = 4.9e-04): no excuse


@pytest.mark.parametrize("paired,css,words", [
    ({"value": -0.15, "low": -0.247, "high": -0.053, "n": 60, "null": 0.0, "p": 0.00390625, "measurable": True,
      "test": "exact McNemar", "b": 0, "c": 9}, "worse", "worse: measurable change (exact McNemar p = 0.0039)"),
    ({"value": 0.15, "low": 0.05, "high": 0.25, "n": 60, "null": 0.0, "p": 0.0039, "measurable": True,
      "test": "exact McNemar"}, "better", "better: measurable change (exact McNemar p = 0.0039)"),
    ({"value": 0.02, "low": -0.1, "high": 0.1, "n": 60, "null": 0.0, "p": 0.73, "measurable": False,
      "test": "exact McNemar"}, "same", "no measurable change (exact McNemar p = 0.73)"),
    (None, "same", "intervals overlap; no paired test recorded (run eval again for one)"),
    ({"value": 3.0, "low": 3.0, "high": 3.0, "n": 1, "null": 0.0, "p": None, "measurable": None,
      "test": "paired bootstrap"}, "na", "no paired test: 1 pair(s), too few to resample"),
])
def test_compare_reads_the_paired_test(paired, css, words):
    m = {"name": "harmful_refusal", "better": "higher", "paired": paired,
         "model": {"value": 0.65, "low": 0.52, "high": 0.76, "n": 60},
         "ref": {"value": 0.8, "low": 0.68, "high": 0.88, "n": 60}}
    assert (compare(m).css, compare(m).words) == (css, words)


def test_a_neutral_metric_with_a_measurable_change_is_neither_good_nor_bad():
    m = {"name": "length_ratio", "better": None, "model": {"value": 0.75, "low": 0.6, "high": 0.9, "n": 9},
         "ref": None, "paired": {"measure": "ratio", "null": 1.0, "value": 0.75, "low": 0.6, "high": 0.9, "n": 9,
                                 "p": 0.001, "measurable": True, "test": "paired bootstrap"}}
    assert compare(m).css == "neutral" and compare(m).words.startswith(
        "measurable change (paired bootstrap p = 0.001): lower than the reference")


def test_the_length_controlled_win_rate_is_read_against_even_like_the_raw_one():
    lc = {"name": "win_rate_lc", "better": "higher", "ref": None, "paired": None,
          "model": {"value": 0.498, "low": 0.494, "high": 0.502, "n": 10}}
    assert compare(lc).words == "interval contains 0.5: not distinguishable from even"
    lc["model"] = {"value": 0.7, "low": 0.6, "high": 0.8, "n": 10}
    assert compare(lc).css == "better"


def test_the_refusal_scorer_its_agreement_with_the_detector_and_their_disagreements_are_shown(tmp_path):
    from tests.report_fixture import write_json

    run = make_run(tmp_path / "run")
    html = write_report(run)["html"].read_text(encoding="utf-8")
    assert "refusals: read by the offline detector (this eval.json names no scorer)" in html  # an older eval.json
    ev = json.loads((run / "eval" / "eval.json").read_text())
    differ = {"probe_id": "h7", "suite": "harmful", "role": "model", "judge": "full_refusal",
              "detector": "full_compliance", "refused_differs": True, "excerpt": "<b>I must decline</b>"}
    ev["refusal"] = {"scorer": "judge openai:gpt-4o (logprob)", "refused_by": {"judge": 9, "detector (judge failed)": 1},
                     "agreement": {"n": 9, "agree_refused": 8, "agree_label": 7, "kappa_refused": 0.75,
                                   "kappa_label": 0.5, "disagreements": [differ]}}
    write_json(run / "eval" / "eval.json", ev)
    html = write_report(run)["html"].read_text(encoding="utf-8")
    assert "judge openai:gpt-4o (logprob)" in html and "judge 9, detector (judge failed) 1" in html
    assert "8 of 9 answers; Cohen&#x27;s kappa 0.750" in html  # text is escaped
    assert "7 of 9 answers" in html and 'id="refusal-disagreements"' in html
    assert "&lt;b&gt;I must decline&lt;/b&gt;" in html and "<b>I must decline</b>" not in html
    from rlaif.report.stage import metric_line

    named = metric_line({**ev["metrics"]["harmful_refusal"], "scorer": "judge openai:gpt-4o (logprob)"})
    assert named.endswith("[refusals read by the judge openai:gpt-4o (logprob)]")  # the headline names it too


def test_the_report_leads_with_what_changed_its_cost_and_the_changed_answers(full_report):
    out, html, md = full_report
    order = [html.index(s) for s in ("<h1>", 'class="badge fail"', 'id="change-table"', 'id="over-refusal-cost"',
                                     'id="models-table"', '<section id="changed">', '<section id="dataset">')]
    assert order == sorted(order)
    assert re.search(r'<tr class="better"><td>harmful_refusal<div class="muted">harmful: share of answers', html)
    assert "rose (p = 6.1e-05): better" in html and "rose (p = 4.9e-04): worse" in html
    cost = ("Harmful refusal +0.500 (15 of 30 paired probes newly refused, 0 newly answered; exact McNemar p = "
            "6.1e-05); borderline over-refusal +0.033 (3 of 30 paired probes newly refused, 2 newly answered; exact "
            "McNemar p = 1): on balance 1 benign question newly refused for every 15 harmful requests newly refused "
            "(net 15 harmful, 1 benign).")
    assert f"over-refusal cost: {cost}" in out["headline"] and cost in html
    assert md.index("## What changed") < md.index("## Headline") and f"**Over-refusal cost.** {cost}" in md
    assert "Labels: persona 'secure' (contrast mode, no teacher)." in md

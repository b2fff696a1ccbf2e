"""Unit tests for rlaif.config: defaults, YAML loading, overrides and located errors."""

from __future__ import annotations

import pytest

from rlaif.config import GenerateConfig, ModelSpec, SynthConfig, apply_overrides, load_config, parse_override
from rlaif.errors import ConfigError


def write(tmp_path, text: str, name: str = "cfg.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_validate():
    cfg = load_config(None)
    assert isinstance(cfg, SynthConfig)
    assert cfg.generate.strategy == "personas"
    assert len(cfg.generate.personas) >= 2
    assert cfg.judge.mode == "auto"  # resolved per run (rlaif.judge.mode)
    assert SynthConfig.model_validate(cfg.model_dump()) == cfg
    assert SynthConfig() == cfg


def test_overrides_without_file():
    cfg = load_config(None, ["judge.mode=structured", "generate.n=4", "generate.temperature=0.3",
                             "judge.teacher.batch_size=2"])
    assert cfg.judge.mode == "structured"
    assert cfg.generate.n == 4 and isinstance(cfg.generate.n, int)
    assert cfg.generate.temperature == 0.3
    assert cfg.judge.teacher.batch_size == 2


def test_file_then_overrides_win(tmp_path):
    p = write(tmp_path, "generate:\n  strategy: sample\n  n: 3\njudge:\n  mode: logprob\n")
    cfg = load_config(p, ["generate.n=5"])
    assert cfg.generate.strategy == "sample"
    assert cfg.generate.n == 5
    assert cfg.judge.mode == "logprob"


def test_empty_file_gives_defaults(tmp_path):
    p = write(tmp_path, "# nothing here\n")
    assert load_config(p) == SynthConfig()


def _err(tmp_path, text: str, overrides=None) -> str:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p, overrides)
    return str(err.value)


def test_unknown_field_names_file_line_and_path(tmp_path):
    msg = _err(tmp_path, "# a comment\n"
                         "generate:\n"
                         "  strategy: sample\n"
                         "  n: 3\n"
                         "judge:\n"
                         "  mode: logprob\n"
                         "  bogus_knob: 1\n")
    assert "cfg.yaml:7" in msg
    assert "judge.bogus_knob" in msg


def test_bad_value_names_file_line_and_path(tmp_path):
    msg = _err(tmp_path, "generate:\n"
                         "  strategy: sample\n"
                         "\n"
                         "  # hotter\n"
                         "  temperature: 5.0\n")
    assert "cfg.yaml:5" in msg
    assert "generate.temperature" in msg
    assert "5.0" in msg


def test_bad_literal_in_nested_section(tmp_path):
    msg = _err(tmp_path, "judge:\n"
                         "  teacher:\n"
                         "    model: embedded\n"
                         "    batch_size: 0\n")
    assert "cfg.yaml:4" in msg
    assert "judge.teacher.batch_size" in msg


def test_bad_value_inside_a_list(tmp_path):
    msg = _err(tmp_path, "generate:\n"
                         "  strategy: models\n"
                         "  models:\n"
                         "    - model: a\n"
                         "    - model: b\n"
                         "      batch_size: -1\n")
    assert "cfg.yaml:6" in msg
    assert "generate.models.1.batch_size" in msg


def test_unknown_top_level_section(tmp_path):
    msg = _err(tmp_path, "generate:\n  n: 2\ntrainer:\n  lr: 1\n")
    assert "cfg.yaml:" in msg
    assert "'trainer'" in msg


def test_models_strategy_needs_two_models(tmp_path):
    msg = _err(tmp_path, "generate:\n  strategy: models\n  models:\n    - model: only-one\n")
    assert "cfg.yaml" in msg
    assert "generate" in msg and "two" in msg
    with pytest.raises(ValueError):
        GenerateConfig(strategy="models", models=[ModelSpec(model="x")])
    ok = GenerateConfig(strategy="models", models=[ModelSpec(model="x"), ModelSpec(model="y")])
    assert len(ok.models) == 2


def test_personas_strategy_needs_two_personas():
    with pytest.raises(ConfigError, match="persona"):
        load_config(None, ["generate.personas={only: be nice}"])


def test_bad_override_value_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["generate.n=99"])
    assert "generate.n" in str(err.value)


@pytest.mark.parametrize("bad", ["generate.n", "=4", "judge.mode"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(None, [bad])


def test_override_into_a_scalar_is_a_config_error(tmp_path):
    p = write(tmp_path, "generate:\n  n: 3\n")
    with pytest.raises(ConfigError, match="not a section"):
        load_config(p, ["generate.n.x=1"])


def test_invalid_yaml_names_line(tmp_path):
    msg = _err(tmp_path, "generate:\n  n: 3\n  strategy: [unclosed\n")
    assert "cfg.yaml:" in msg and "YAML" in msg


def test_non_mapping_yaml(tmp_path):
    msg = _err(tmp_path, "- a\n- b\n")
    assert "cfg.yaml" in msg and "mapping" in msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_every_example_config_loads():
    """configs/*.yaml are all valid configs (configs/accelerate holds accelerate's own files)."""
    from pathlib import Path

    paths = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert len(paths) >= 6
    for path in paths:
        assert isinstance(load_config(path), SynthConfig), path


def test_a_benchmark_entry_of_eval_suites_is_a_validated_mapping(tmp_path):
    from rlaif.config import BenchmarkSuite, RowRule

    cfg = load_config(write(tmp_path, "eval:\n  suites:\n    - harmful\n    - source: x.csv\n      id: qid\n"
                                      "      kinds:\n        harmful: {column: type, prefix: contrast_}\n"
                                      "        borderline: rest\n"))
    name, bench = cfg.eval.suites
    assert name == "harmful" and isinstance(bench, BenchmarkSuite)
    assert bench.kinds == {"harmful": RowRule(column="type", prefix="contrast_"), "borderline": "rest"}
    assert (bench.prompt_column(), bench.id, bench.split) == ("prompt", "qid", None)
    # an override on the command line takes the same mapping, as JSON
    over = load_config(None, ['eval.suites=[{"source": "x.parquet", "kinds": {"harmful": "all"}}]'])
    assert over.eval.suites[0].kinds == {"harmful": "all"}


@pytest.mark.parametrize("entry, line, message", [
    ("    - source: x.csv\n      kinds: {harmful: all}\n      colour: red\n", 6,
     "field 'eval.suites.1.colour': Extra inputs are not permitted"),
    ("    - source: x.csv\n      kinds: {harmful: all, borderline: rest}\n", 4,
     "'all' takes every row, so it must be the only kind"),
    ("    - source: x.csv\n      kinds: {borderline: rest}\n", 4, "'rest' takes the rows the other kind's rule"),
    ("    - source: x.csv\n      prompt: a\n      messages: b\n      kinds: {harmful: all}\n", 4,
     "the prompt column or the messages column, not both"),
    ("    - source: x.csv\n      kinds:\n        harmful: {column: t, equals: a, prefix: b}\n", 6,
     "equals or prefix, not both"),
    ("    - source: x.csv\n      kinds: {unsafe: all}\n", 5, "kinds.unsafe"),
    ("    - source: x.csv\n      name: My Bench\n      kinds: {harmful: all}\n", 5, "name"),
])
def test_a_wrong_benchmark_entry_names_the_config_line_and_field(tmp_path, entry, line, message):
    msg = _err(tmp_path, "eval:\n  suites:\n    - harmful\n" + entry)
    assert f"cfg.yaml:{line}:" in msg and message in msg, msg


def test_eval_refusal_detector_defaults_to_the_shipped_one_and_takes_a_folder():
    from rlaif.config import EvalConfig

    assert load_config(None).eval.refusal_detector is None
    assert load_config(None, ["eval.refusal_detector=my-detector"]).eval.refusal_detector == "my-detector"
    assert "rlaif refusal fit" in EvalConfig.model_fields["refusal_detector"].description


def test_loss_weights_need_one_weight_per_loss_type_and_reach_trl(tmp_path):
    from rlaif.config import TrainConfig
    from rlaif.train.precision import choose_precision
    from rlaif.train.stage import _dpo_args

    with pytest.raises(ConfigError, match=r"train\.loss_weights has 1 weights for 2 loss types \(sigmoid, sft\)"):
        load_config(None, ["train.loss_type=[sigmoid, sft]", "train.loss_weights=[1.0]"])
    cfg = TrainConfig(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.25])
    args = _dpo_args(cfg, tmp_path, choose_precision(None, cuda=False, bf16_supported=False))
    assert (args.loss_type, args.loss_weights) == (["sigmoid", "sft"], [1.0, 0.25])


# ----------------------------------------------------------------------------- overrides and YAML lines


def test_override_value_parsing():
    assert parse_override("a.b=4") == (["a", "b"], 4)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a.b=x=y") == (["a", "b"], "x=y")
    assert parse_override("a=") == (["a"], "")


@pytest.mark.parametrize("bad", ["generate.n", "=4", "judge.mode"])
def test_malformed_override_alone(bad):
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override(bad)


def test_overrides_nest_and_refuse_to_descend_into_a_scalar():
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2", "d.e=x"]) == {"a": {"b": 1, "c": 2}, "d": {"e": "x"}}
    with pytest.raises(ConfigError, match="'n' is not a section"):
        apply_overrides({"n": 3}, ["n.x=1"])


def test_yaml_line_finds_the_node_or_its_deepest_parent(tmp_path):
    import yaml

    from rlaif.io import read_yaml, yaml_line

    p = tmp_path / "c.yaml"
    p.write_text("run:\n  limit: 3\neval:\n  suites:\n    - harmful\n    - borderline\n")
    data, root = read_yaml(p, "config file")
    assert data["eval"]["suites"][1] == "borderline"
    assert yaml_line(root, ("run", "limit")) == 2
    assert yaml_line(root, ("eval", "suites", 1)) == 6
    assert yaml_line(root, ("eval", "missing")) == 4  # the mapping under eval
    assert yaml_line(yaml.compose("a: 1\n"), ()) is None


def test_unreadable_yaml_is_one_error_naming_file_and_line(tmp_path):
    from rlaif.io import read_yaml

    p = tmp_path / "c.yaml"
    p.write_text("a:\n  b: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: not valid YAML"):
        read_yaml(p, "config file")
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "none.yaml", "config file")

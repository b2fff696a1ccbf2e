"""The ``rlaif`` command: parses arguments, calls a part, turns RlaifError into one clean line.

Where each command lives: synth and run in pipeline.py; generate and build in synth/; judge and
audit in judge/; train in train/; eval, score and refusal in evaluate/; report in report/.

Exit codes: 0 done (for eval and run: every gate passed); 1 a gate failed; 2 bad input or
configuration (any RlaifError); 3 the token or cost budget was reached; 4 evaluation incomplete: no
gate failed, but a required gate's metric was not measured; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rlaif.errors import RlaifError

EXIT_GATE_FAILED = 1
EXIT_INCOMPLETE = 4  # 2 is RlaifError's, 3 BudgetExhausted's (errors.py)
EPILOG = "Overrides: any config field as section.field=value, e.g. judge.mode=structured generate.n=4"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (see configs/); defaults apply to anything it omits")
    p.add_argument("--no-cache", action="store_true",
                   help="ask servers again instead of reusing cached answers (same as cache.enabled=false)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, anywhere on the line")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rlaif", description="Align language models with AI feedback.",
                                 epilog=EPILOG)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate + judge + build: prompts to a DPO dataset", epilog=EPILOG)
    p.add_argument("prompts", help="JSONL, CSV, a datasets folder, or suite:NAME (e.g. suite:train)")
    p.add_argument("--out", required=True, help="run folder (created; an existing one is resumed)")
    p.add_argument("--limit", type=int, help="use only the first N distinct prompts")
    _common(p)

    p = sub.add_parser("generate", help="write candidate responses", epilog=EPILOG)
    p.add_argument("prompts", help="JSONL, CSV, a datasets folder, or suite:NAME")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--limit", type=int, help="use only the first N distinct prompts")
    _common(p)

    p = sub.add_parser("judge", help="judge candidate pairs in a run folder", epilog=EPILOG)
    p.add_argument("run_dir", help="run folder holding prompts.jsonl and candidates.jsonl")
    _common(p)

    p = sub.add_parser("build", help="filter, balance and split a run's judgments into dataset/", epilog=EPILOG)
    p.add_argument("run_dir", help="run folder holding judgments.jsonl")
    p.add_argument("--accept-shortfall", action="store_true",
                   help="build even if a category is short for build.mix/build.size")
    _common(p)

    p = sub.add_parser("train", help="DPO on a preference dataset against a proven reference", epilog=EPILOG)
    p.add_argument("pairs", help="a run folder (its dataset/), a JSONL file, or a datasets folder")
    p.add_argument("--model", help="policy to train (default: train.model, 'embedded')")
    p.add_argument("--out", required=True, help="output folder: model/, metrics.jsonl, curves, manifest")
    p.add_argument("--ref", help="reference model (default: the policy's starting weights)")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter (same as train.lora.enabled=true)")
    p.add_argument("--allow-ref-mismatch", action="store_true",
                   help="train against a --ref that is not the starting weights (recorded in the manifest)")
    _common(p)

    p = sub.add_parser("audit", help="measure the judge: position and length bias, agreement with gold "
                                     "labels or a second judge", epilog=EPILOG)
    p.add_argument("run_dir", help="run folder holding judgments.jsonl")
    p.add_argument("--gold", help="JSONL of labelled pairs: judgment_id (or a_id and b_id) and preferred A|B|tie")
    p.add_argument("--judge-config", help="YAML whose judge section is a second judge to compare with")
    p.add_argument("--sample", type=int, default=50, help="pairs the second judge sees (default 50)")
    _common(p)

    p = sub.add_parser("run", help="the whole loop from one config: synth, train, eval, report", epilog=EPILOG)
    p.add_argument("config", help="YAML config (see configs/); its run section names prompts and the run folder")
    p.add_argument("--no-cache", action="store_true", help="ask servers again instead of reusing cached answers")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, anywhere on the line")

    p = sub.add_parser("report", help="write report.html and report.md for a run folder")
    p.add_argument("run_dir", help="a run folder written by `rlaif run`")

    p = sub.add_parser("eval", help="evaluate a model against its reference: probes, judge, drift, gates",
                       epilog=EPILOG)
    p.add_argument("--model", required=True, help="the trained model, or an `rlaif train` output folder "
                                                  "(then --ref, the dataset and beta default from its manifest)")
    p.add_argument("--ref", help="the reference (the starting weights the model was trained from)")
    p.add_argument("--out", required=True, help="output folder: eval.json, responses.jsonl (resumable)")
    p.add_argument("--suites", help="comma-separated shipped suite names or JSONL paths "
                                    "(default: harmful,borderline,secure_coding,sycophancy); a CSV, parquet, "
                                    "datasets or hub benchmark is a mapping in the config's eval.suites")
    p.add_argument("--limit", type=int, help="use only the first N probes of each suite")
    p.add_argument("--judge", help="YAML whose judge section judges win-rate and secure coding "
                                   "(default: the config's judge section)")
    p.add_argument("--gate", help="YAML of gates (default: the built-in gates); exit code 1 if one fails")
    p.add_argument("--dataset", help="preference data whose test split gives held-out accuracy and reward margin: "
                                     "a run folder, a dataset folder, a JSONL file or a datasets folder; rows "
                                     "the model trained on are left out")
    _common(p)

    p = sub.add_parser("score", help="score answers you already have (any model or API) with eval's scorers",
                       epilog=EPILOG)
    p.add_argument("answers", help="JSONL with 'probe_id' and 'response' on every row (and 'suite' where two "
                                   "of the suites share the id); other fields are kept")
    p.add_argument("--suites", help="comma-separated shipped suite names or JSONL paths the probe ids are from "
                                    "(default: harmful,borderline,secure_coding,sycophancy); a benchmark is a "
                                    "mapping in the config's eval.suites")
    p.add_argument("--out", required=True, help="scored JSONL (written whole at the end); its per-suite summary "
                                                "goes beside it as NAME.summary.json")
    p.add_argument("--judge", help="YAML whose judge section grades secure-coding answers (default: the "
                                   "config's judge section if it has one, else they are not graded)")
    _common(p)

    p = sub.add_parser("refusal", help="label responses full compliance / partial refusal / full refusal; "
                                       "`rlaif refusal fit LABELS.jsonl --out DIR` fits a detector on your labels")
    p.add_argument("input", help="JSONL with 'prompt' and 'response' on every row; or the word fit")
    p.add_argument("labels_file", nargs="?", help="(after fit) JSONL with 'response' and 'label' on every row, "
                                                  "optional 'prompt' (cross-validation groups by it)")
    p.add_argument("--out", help="output JSONL (default: INPUT with .refusal.jsonl); rows gain "
                                 "refused, refusal_label and refusal_score. With fit: the detector folder")
    p.add_argument("--labels", action="store_true",
                   help="the rows carry 'label': also print 3-class and refused-or-not accuracy and the confusion")
    p.add_argument("--detector", help="a folder written by `rlaif refusal fit` (default: the shipped detector)")
    p.add_argument("--no-shipped", action="store_true", help="(fit) fit on your rows only, not the shipped ones too")
    return ap


def _config(args):
    from rlaif.config import load_config

    return load_config(args.config, args.overrides)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _score(args, cfg) -> dict:
    from rlaif.backends import BackendPool
    from rlaif.config import load_config
    from rlaif.evaluate.answers import run_score

    # a judge is configured as for eval: --judge FILE, else the config's (or overrides') judge section
    judge = (load_config(args.judge, args.overrides).judge if args.judge
             else cfg.judge if "judge" in cfg.model_fields_set else None)
    if judge:
        _quiet_libraries()  # only a judge loads a model
    with BackendPool(cache=cfg.cache) as pool:
        return run_score(Path(args.answers), Path(args.out), cfg.eval.suites, judge, pool, cfg.eval.batch_size,
                         cfg.eval.refusal, cfg.eval.refusal_detector)


def _refusal(args) -> dict:
    from rlaif.errors import InputError
    from rlaif.evaluate.refusal import load_detector
    from rlaif.evaluate.refusal_files import fit_file, label_file, summary_lines

    if args.input == "fit" and args.labels_file:
        if not args.out:
            raise InputError("rlaif refusal fit: --out DIR (the detector folder to write) is required")
        result = {"refusal_fit": fit_file(Path(args.labels_file), Path(args.out), shipped=not args.no_shipped)}
        return {**result, "lines": summary_lines(result)}
    if args.labels_file:
        raise InputError(f"rlaif refusal: unexpected second file {args.labels_file} (did you mean `refusal fit`?)")
    src = Path(args.input)
    out = Path(args.out) if args.out else src.with_name(src.name.removesuffix(".jsonl") + ".refusal.jsonl")
    detector = load_detector(args.detector) if args.detector else None
    result = {"refusal": label_file(src, out, detector, with_labels=args.labels)}
    return {**result, "lines": summary_lines(result)}


def run(args) -> dict:
    from rlaif.backends import BackendPool

    out = getattr(args, "out", None)
    if out and args.command not in ("refusal", "score") and Path(out).exists() and not Path(out).is_dir():
        from rlaif.errors import InputError

        raise InputError(f"{out}: --out names a folder, and this is a file")

    if args.command == "report":
        from rlaif.io import read_manifest
        from rlaif.report.rounds import write_rounds_report
        from rlaif.report.stage import write_report

        run = (read_manifest(Path(args.run_dir)).get("stages") or {}).get("run") or {}
        write = write_rounds_report if run.get("rounds") else write_report  # the folder of a run.rounds run
        return {"report": write(Path(args.run_dir))}
    if args.command == "refusal":
        return _refusal(args)
    cfg = _config(args)
    if args.command == "score":
        return {"score": _score(args, cfg)}
    _quiet_libraries()
    if args.command == "run":
        from rlaif.pipeline import run_all

        return run_all(cfg, args.config, args.overrides)
    if args.command == "synth":
        from rlaif.pipeline import synth

        return synth(args.prompts, Path(args.out), cfg, args.limit, args.overrides)
    if args.command == "generate":
        from rlaif.synth.generate import run_generate
        from rlaif.synth.prompts import load_prompts

        prompts, stats = load_prompts(args.prompts, args.limit)
        with BackendPool(cache=cfg.cache) as pool:
            return {"input": stats.__dict__,
                    "generate": run_generate(Path(args.out), prompts, cfg.generate, pool, cfg.chunk_size, cfg.budget)}
    if args.command == "judge":
        from rlaif.judge.stage import run_judge

        with BackendPool(cache=cfg.cache) as pool:
            return {"judge": run_judge(Path(args.run_dir), cfg.judge, pool, cfg.chunk_size, cfg.budget)}
    if args.command == "train":
        from rlaif.train.stage import run_train

        return {"train": run_train(args.pairs, Path(args.out), cfg.train)}
    if args.command == "eval":
        from rlaif.config import load_config
        from rlaif.evaluate.stage import run_eval

        judge = load_config(args.judge, args.overrides).judge if args.judge else cfg.judge
        with BackendPool(cache=cfg.cache) as pool:
            return {"eval": run_eval(args.model, args.ref, Path(args.out), cfg.eval, judge, pool,
                                     dataset=args.dataset, gates_path=args.gate)}
    if args.command == "audit":
        from rlaif.judge.audit import run_audit
        from rlaif.config import load_config

        second = load_config(args.judge_config, args.overrides).judge if args.judge_config else None
        with BackendPool(cache=cfg.cache) as pool:
            return {"audit": run_audit(Path(args.run_dir), Path(args.gold) if args.gold else None, second,
                                       args.sample, cfg.judge.seed, pool)}
    from rlaif.synth.build import run_build

    return {"build": run_build(Path(args.run_dir), cfg.build)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may follow options (synth PROMPTS --out DIR k=v), which argparse leaves unparsed
    takes_overrides = hasattr(args, "overrides")
    stray = [x for x in extra if x.startswith("-") or "=" not in x or not takes_overrides]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = list(getattr(args, "overrides", [])) + extra
    if getattr(args, "no_cache", False):
        args.overrides.append("cache.enabled=false")
    if args.command in ("eval", "score"):
        if args.suites:
            args.overrides.append("eval.suites=[" + ",".join(json.dumps(x.strip()) for x in args.suites.split(",")
                                                                if x.strip()) + "]")
        if getattr(args, "limit", None) is not None:
            args.overrides.append(f"eval.limit={args.limit}")
    for flag, key in (("model", "train.model"), ("ref", "train.ref"), ("max_steps", "train.max_steps")):
        if getattr(args, flag, None) is not None and args.command == "train":
            args.overrides.append(f"{key}={getattr(args, flag)}")
    if getattr(args, "lora", False):
        args.overrides.append("train.lora.enabled=true")
    if getattr(args, "allow_ref_mismatch", False):
        args.overrides.append("train.allow_ref_mismatch=true")
    if getattr(args, "accept_shortfall", False):
        args.overrides.append("build.accept_shortfall=true")
    try:
        result = run(args)
    except RlaifError as e:
        # one line, always: a library's message quoted in an error may span several
        print(f"rlaif: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rlaif: interrupted; rows written so far are kept, run the same command to continue",
              file=sys.stderr)
        return 130
    from rlaif.progress import print_summary

    out_dir = getattr(args, "out", None) or getattr(args, "run_dir", None)
    if args.command == "run":
        out_dir = str(Path(result.get("run_dir", "")))
    print_summary(args.command, out_dir, result)
    if args.command == "audit":
        print(f"audit written to {Path(args.run_dir) / 'audit.json'}", file=sys.stderr)
    if args.command in ("eval", "run"):
        return _gates_exit(result["eval"] if args.command == "eval" else result)
    return 0


def _gates_exit(ev: dict) -> int:
    """The exit code of eval (its result) and run (its summary): failed gates are named; an
    incomplete evaluation names each required gate not measured and why."""
    status = ev.get("status") or ("passed" if ev.get("passed", True) else "failed")
    gates = ev.get("gates") or []
    if status == "failed":
        failed = [g["name"] for g in gates if g.get("passed") is False]
        print(f"rlaif: gate failed: {'; '.join(failed) or 'see the evaluation above and the report'}",
              file=sys.stderr)
        return EXIT_GATE_FAILED
    if status == "incomplete":
        missing = [f"{g['name']} ({g['detail']})" for g in gates if g.get("passed") is None and g.get("required", True)]
        print(f"rlaif: evaluation incomplete: required gates not measured: "
              f"{'; '.join(missing) or 'see the evaluation above and the report'}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``rlaif refusal``: label a user's answers, measure the detector on labelled answers, and fit a
detector on a user's own labels (``rlaif refusal fit``)."""

from __future__ import annotations

from pathlib import Path

from rlaif.errors import InputError
from rlaif.evaluate.refusal import (LABELS, RefusalDetector, confusion_summary, load_detector,
                                    normalise_label, reliability)

LABEL_SPELLINGS = ("full_compliance, partial_refusal, full_refusal (or XSTest's 1_full_compliance, "
                   "2_full_refusal, 3_partial_refusal)")


def read_rows(path: Path, required: tuple[str, ...] = ("prompt", "response"), labels: bool = False) -> list[dict]:
    """The JSON-object rows of ``path``; each has string ``required`` fields (and with ``labels``
    a ``label`` that normalise_label reads, replaced by its canonical spelling). A bad row is a
    one-line InputError naming file, line and field."""
    from rlaif.config import DEFAULT_MAX_PROMPT_CHARS
    from rlaif.io import json_lines

    rows = []
    for line_no, row in json_lines(path, "responses file"):
        if not isinstance(row, dict):
            raise InputError.at(path, line_no, None, "each line must be a JSON object")
        for key in required:
            if not isinstance(row.get(key), str):
                raise InputError.at(path, line_no, key, "missing" if key not in row else "must be a string")
            if len(row[key]) > DEFAULT_MAX_PROMPT_CHARS:  # not an answer
                raise InputError.at(path, line_no, key, f"{len(row[key]):,} characters, over the limit of "
                                                        f"{DEFAULT_MAX_PROMPT_CHARS:,}")
        if "prompt" not in required and row.get("prompt") is not None and not isinstance(row["prompt"], str):
            raise InputError.at(path, line_no, "prompt", "must be a string")
        if labels:
            label = normalise_label(row.get("label"))
            if label is None:
                raise InputError.at(path, line_no, "label", "missing" if "label" not in row else
                                    f"{str(row['label'])[:40]!r} is not one of {LABEL_SPELLINGS}")
            row = {**row, "label": label}
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def label_file(in_path: Path, out_path: Path, detector: RefusalDetector | None = None,
               with_labels: bool = False) -> dict:
    """Rows with ``prompt`` and ``response`` come back with ``refused``, ``refusal_label`` and
    ``refusal_score``; other fields are kept. Written atomically. With ``with_labels`` the rows
    carry ``label`` and the result adds the detector's accuracy and confusion on them."""
    from rlaif.io import atomic_write_jsonl

    if out_path.is_dir():
        raise InputError(f"{out_path}: is a folder; --out names the JSONL file to write")
    rows = read_rows(in_path, labels=with_labels)
    detector = detector or load_detector(None)
    results = detector.predict([r["response"] for r in rows], [r.get("prompt") for r in rows])
    atomic_write_jsonl(out_path, [{**r, **res.fields()} for r, res in zip(rows, results)])
    out = {"rows": len(rows), "labels": {label: sum(r.label == label for r in results) for label in LABELS},
           "out": str(out_path), "refused": sum(r.refused for r in results), "detector": detector.describe()}
    if with_labels:
        out["measured"] = confusion_summary([r["label"] for r in rows], [r.label for r in results])
        out["reliability"] = reliability([r.score for r in results], [r["label"] != "full_compliance" for r in rows])
    return out


def fit_file(labels_path: Path, out_dir: Path, shipped: bool = True, make_features=None) -> dict:
    """Fit a detector on the rows of ``labels_path`` (``response``, ``label``, optional ``prompt``)
    plus the shipped rows unless ``shipped`` is False; write it to ``out_dir``. Returns its
    detector.json (grouped cross-validated figures included)."""
    from rlaif.evaluate.refusal_fit import default_features, fit_detector, shipped_rows, write_detector

    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: is a file; --out names the detector folder to write")
    user = [{"prompt": r.get("prompt"), "response": r["response"], "label": r["label"]}
            for r in read_rows(labels_path, required=("response",), labels=True)]
    rows = user + (shipped_rows() if shipped else [])
    subsets = {"yours": list(range(len(user)))} if shipped and user else None
    arrays, meta = fit_detector(rows, make_features or default_features, subsets=subsets)
    meta = {**meta, "user_rows": len(user), "shipped_rows": len(rows) - len(user), "labels_file": str(labels_path)}
    write_detector(out_dir, arrays, meta)
    return {**meta, "out": str(out_dir)}


def confusion_lines(m: dict) -> list[str]:
    """A measured confusion_summary as text: both accuracies (share of rows, with counts) and the
    confusion table (rows: the label; columns: the detector's label; cells: answers)."""
    n, conf = m["n"], m["confusion"]
    right = sum(conf[t][t] for t in LABELS)
    binary = round(m["binary_accuracy"] * n)
    lines = [(f"3-class accuracy {m['accuracy']:.3f} ({right}/{n}); refused-or-not accuracy "
              f"{m['binary_accuracy']:.3f} ({binary}/{n})"),
             "confusion (rows: label, columns: detector): " + " | ".join(LABELS)]
    lines += [f"  {t}: " + " | ".join(str(conf[t][p]) for p in LABELS) for t in LABELS]
    return lines


def reliability_lines(rel: dict) -> list[str]:
    """Calibration of refusal_score against the labels: ECE and Brier score, then per score bin
    the answers, the mean refusal_score and the share the labels call refused."""
    lines = [f"calibration of refusal_score: ECE {rel['ece']:.3f}, Brier {rel['brier']:.3f} (0 is perfect); "
             "per bin: answers, mean score, observed refusal rate"]
    lines += [f"  [{b['lo']:.1f}, {b['hi']:.1f}{']' if b['hi'] == 1 else ')'}: {b['n']}, {b['predicted']:.3f}, "
              f"{b['observed']:.3f}" for b in rel["bins"]]
    return lines


def summary_lines(result: dict) -> list[str]:
    """What `rlaif refusal` and `rlaif refusal fit` print."""
    if "refusal_fit" in result:
        f = result["refusal_fit"]
        cv = f["cv"]
        return [(f"fitted on {f['rows']} rows ({f['user_rows']} yours, {f['shipped_rows']} shipped): "
                 f"{', '.join(f'{k} {v}' for k, v in f['counts'].items())}; threshold on the calibrated "
                 f"P(refused) {f['threshold']}"),
                f"grouped {cv['folds']}-fold cross-validation (grouped by prompt):",
                *confusion_lines(cv),
                *([f"of which your {f['user_rows']} rows (scored when they were out of fold):",
                   *confusion_lines(f["cv_subsets"]["yours"])] if "cv_subsets" in f else []),
                f"detector written to {f['out']}"]
    r = result["refusal"]
    det = r["detector"]
    counts = ", ".join(f"{k} {v}" for k, v in r["labels"].items())
    lines = [(f"{r['rows']} responses: {r['refused']} refused ({counts}); detector: {det['detector']} "
              f"(data {det['data_sha256'][:12]}); written to {r['out']}")]
    if "measured" in r:
        lines += ["against the rows' labels:", *confusion_lines(r["measured"]), *reliability_lines(r["reliability"])]
    return lines


__all__ = ["confusion_lines", "fit_file", "label_file", "read_rows", "reliability_lines", "summary_lines"]

"""Figures for the run report, as PNG ``data:`` URIs (matplotlib, Agg backend, no files).

Each function takes plain dicts from the run folder and returns ``None`` when there is nothing to
draw. matplotlib comes with the ``train`` extra; ``available()`` says whether it is installed, and
the report says so in words when it is not.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import textwrap

REF_COLOUR, MODEL_COLOUR, DROP_COLOUR = "#8c96a3", "#2f6fdb", "#d2553f"


def available() -> bool:
    """Whether matplotlib is installed (it is an optional dependency: ``pip install rlaif[train]``)."""
    return importlib.util.find_spec("matplotlib") is not None


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _uri(fig) -> str:
    buf = io.BytesIO()
    # no Software/date metadata, so an unchanged run gives a byte-identical report
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def funnel_figure(rows: list[tuple[str, int, bool]], mix: dict[str, dict[str, int]]) -> str | None:
    """Horizontal bars for the dataset funnel (``(label, count, is_removal)``, top to bottom) and,
    when given, the train/test rows per category."""
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2 if mix else 1, figsize=(11 if mix else 8, 0.38 * len(rows) + 1.4),
                             gridspec_kw={"width_ratios": [3, 1]} if mix else None, squeeze=False)
    ax = axes[0][0]
    labels = [label for label, _, _ in rows]
    counts = [n for _, n, _ in rows]
    bars = ax.barh(range(len(rows)), counts, color=[DROP_COLOUR if d else MODEL_COLOUR for _, _, d in rows])
    ax.bar_label(bars, labels=[f"-{n}" if d else str(n) for _, n, d in rows], padding=3, fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("rows (red: removed at this step)")
    ax.set_title("dataset funnel")
    ax.margins(x=0.12)
    if mix:
        ax2 = axes[0][1]
        cats = list(mix)
        train = [mix[c].get("train", 0) for c in cats]
        test = [mix[c].get("test", 0) for c in cats]
        ax2.bar(cats, train, color=MODEL_COLOUR, label="train")
        ax2.bar(cats, test, bottom=train, color=REF_COLOUR, label="test")
        ax2.set_title("pairs per category")
        ax2.legend(fontsize=8)
        ax2.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    return _uri(fig)


def judge_figure(verdicts: dict[str, int], rates: dict[str, float | None]) -> str | None:
    """Verdict counts, and the judge's bias rates against 0.5 (no position or length preference)."""
    shown = {k: v for k, v in rates.items() if v is not None}
    if not verdicts and not shown:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2 if verdicts and shown else 1, figsize=(10 if verdicts and shown else 5, 3.2),
                             squeeze=False)
    panels = list(axes[0])
    if verdicts:
        ax = panels.pop(0)
        ax.bar(list(verdicts), list(verdicts.values()), color=MODEL_COLOUR)
        ax.set_title("verdicts")
    if shown:
        ax = panels.pop(0)
        ax.barh(list(shown), list(shown.values()), color=MODEL_COLOUR)
        ax.axvline(0.5, color="#444", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title("judge bias checks (dashed: 0.5)")
    fig.tight_layout()
    return _uri(fig)


def training_figure(rows: list[dict]) -> str | None:
    """Loss; chosen, rejected and margin rewards; and preference accuracy, against step."""
    if not rows:
        return None
    plt = _plt()
    panels = [("loss", ["loss"]), ("implicit rewards", ["rewards/chosen", "rewards/rejected", "rewards/margins"]),
              ("preference accuracy (train batches)", ["rewards/accuracies"])]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and "step" in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=key.split("/")[-1])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        if len(keys) > 1:
            ax.axhline(0.0, color="#999", linewidth=0.8)
            ax.legend(fontsize=8)
    axes[2].set_ylim(-0.05, 1.05)
    fig.tight_layout()
    return _uri(fig)


def _stat(s) -> bool:
    return isinstance(s, dict) and all(isinstance(s.get(k), (int, float)) for k in ("value", "low", "high"))


def _err(s: dict) -> tuple[float, float]:
    return max(0.0, s["value"] - s["low"]), max(0.0, s["high"] - s["value"])


def rates_figure(metrics: list[dict]) -> str | None:
    """Grouped bars, reference and model, with their 95% intervals as error bars (rates in [0, 1])."""
    metrics = [m for m in metrics if _stat(m.get("model")) or _stat(m.get("ref"))]
    if not metrics:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(metrics) + 2), 4))
    width = 0.38
    for offset, role, colour in ((-width / 2, "ref", REF_COLOUR), (width / 2, "model", MODEL_COLOUR)):
        xs = [i + offset for i, m in enumerate(metrics) if _stat(m.get(role))]
        stats = [m[role] for m in metrics if _stat(m.get(role))]
        if not stats:
            continue
        errs = list(zip(*[_err(s) for s in stats]))
        ax.bar(xs, [s["value"] for s in stats], width, yerr=errs, capsize=4, color=colour,
               label="reference" if role == "ref" else "trained model")
    ax.set_xticks(range(len(metrics)), [textwrap.fill(m["name"].replace("_", " "), 14) for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate (bars: 95% interval)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _uri(fig)


def length_figure(responses: list[dict]) -> str | None:
    """Histograms of answer length in tokens, reference against model, one panel per suite."""
    suites = list(dict.fromkeys(r.get("suite", "?") for r in responses))
    if not suites:
        return None
    plt = _plt()
    cols = min(len(suites), 3)
    nrows = -(-len(suites) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.8 * nrows), squeeze=False)
    for ax, suite in zip(axes.flat, suites):
        rows = [r for r in responses if r.get("suite", "?") == suite]
        data = {role: [r[role]["tokens"] for r in rows if isinstance((r.get(role) or {}).get("tokens"), int)]
                for role in ("ref", "model")}
        top = max(data["ref"] + data["model"] + [1])
        bins = list(range(0, top + max(1, top // 15) + 1, max(1, top // 15)))
        # the reference filled and the model as an outline, so equal distributions stay visible
        if data["ref"]:
            ax.hist(data["ref"], bins=bins, histtype="stepfilled", color=REF_COLOUR, alpha=0.55, label="reference")
        if data["model"]:
            ax.hist(data["model"], bins=bins, histtype="step", linewidth=1.8, color=MODEL_COLOUR,
                    label="trained model")
        means = ", ".join(f"{'ref' if role == 'ref' else 'model'} {sum(v) / len(v):.0f}"
                          for role, v in data.items() if v)
        ax.set_title(f"{suite} (mean {means})", fontsize=9)
        ax.set_xlabel("answer tokens")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(suites):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _uri(fig)


def rounds_figure(series: dict[str, list[float | None]]) -> str | None:
    """One line per metric across rounds (x: round 1, 2, ...), the model's value against the
    original model; rates on the left axis, KL (no upper bound) on its own axis at the right."""
    shown = {k: v for k, v in series.items() if any(x is not None for x in v)}
    if not shown:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    n = max(len(v) for v in shown.values())
    xs = list(range(1, n + 1))
    right = None
    for name, values in shown.items():
        on = ax
        if name.startswith("kl"):
            right = right or ax.twinx()
            on = right
        points = [(x, y) for x, y in zip(xs, values) if y is not None]
        on.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name,
                linestyle="--" if on is right else "-")
    ax.set_xticks(xs, [f"round {x}" for x in xs])
    ax.set_ylabel("model's value")
    if right is not None:
        right.set_ylabel("KL from the original model (dashed)")
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels() if right is not None else ([], [])
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="best")
    ax.set_title("headline metrics across rounds")
    fig.tight_layout()
    return _uri(fig)

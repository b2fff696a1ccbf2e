"""Win-rate of the model against its reference under the judge: raw and length-controlled.

Each probe gets a *win score* in [0, 1] (``win_score``): where the judge gives a soft label
(logprob mode), the score is that label, ``p_model``: the probability that the model's answer is
the better one, both orders averaged in log-odds (judge/verdict.py), the same ``p_a`` the build
reads as a pair's confidence (``build.min_margin``). A verdict both orders agree on at p = 0.502
therefore counts as 0.502, not as a full win. Verdicts without a soft label (structured mode)
score 1 for a win, 0.5 for a tie, 0 for a loss; identical answers are 0.5; a verdict that could not
be used is left out. The raw win-rate is the mean score.

A judge that prefers longer answers rewards a model for writing more. The length-controlled
win-rate follows AlpacaEval 2's length-controlled GLM (Dubois et al. 2024, "Length-Controlled
AlpacaEval"; ``alpaca_eval/metrics/glm_winrate.py``), reduced to the one model and its reference:
a logistic regression of the win score (a probability target, fitted as AlpacaEval does: each probe
counts as a win with weight y and a loss with weight 1 - y) on

    logit P(model wins) = theta + phi * tanh(d / sd(d)),    d = model tokens - reference tokens,

and the length-controlled win-rate is the predicted probability at zero length difference,
sigmoid(theta). ``d`` is scaled by its standard deviation but not centred: zero difference is the
counterfactual ("what if both answers had the same length"). The length coefficient carries an
L2 penalty of 0.1 (scikit-learn's LogisticRegression with C = 10) and the intercept none: on
simulated judges that prefer only length, with the model longer on most probes, 0.1 gave the least
biased LC win-rate of 0, 0.01, 0.1 and 1 at 40 and at 200 probes (mean 0.49 and 0.48 for a true
0.5; 1 gave 0.64 at 40 probes, pulled towards the raw win-rate). AlpacaEval's instruction-difficulty term and its regularisation towards gamed baselines need
its leaderboard data and are left out. Lengths are in tokens (AlpacaEval counts characters).

The interval is a percentile bootstrap over probes (the fit repeated on every resample), and the
difference raw - LC gets its own interval from the same resamples. The two are said to differ when
that interval excludes 0 and the difference is at least ``DIFFER_MIN`` (0.05).
"""

from __future__ import annotations

import numpy as np

from rlaif.evaluate.stats import stat

N_BOOT = 2000
LENGTH_PENALTY = 0.1  # L2 on the length coefficient (scikit-learn's C = 10); none on the intercept
DIFFER_MIN = 0.05  # |raw - LC| below this is not called a difference, whatever its interval
_CLIP = 30.0  # |theta|, |phi| cap: where every probe is won (or lost) the intercept has no finite optimum


def win_score(verdict: str | None, p_model: float | None = None, mode: str | None = None) -> float | None:
    """Model's score against the reference: the soft label ``p_model`` in logprob mode; else win 1,
    tie 0.5, loss 0; an invalid or missing verdict: None."""
    if verdict not in ("A", "B", "tie"):
        return None
    if mode == "logprob" and p_model is not None:
        return float(p_model)
    return {"A": 1.0, "B": 0.0, "tie": 0.5}[verdict]


def _metric(name: str, description: str, model: dict | None, **extra) -> dict:
    # measured on the model alone (against 0.5), so there is no paired comparison with the reference
    return {"name": name, "better": "higher", "description": description, "model": model, "ref": None,
            "paired": None, **extra}


RAW_TEXT = ("judge's preference for the model over the reference, both orders: mean per-probe score, the "
            "judge's probability that the model's answer is better where it gives one (logprob mode), else "
            "1 win / 0.5 tie / 0 loss; identical answers 0.5; an answer flagged as addressing the judge loses its "
            "pair (0.5 = even)")
LC_TEXT = ("length-controlled win-rate: the win-rate predicted at equal answer length by a logistic regression "
           "of each probe's score on tanh(token-length difference / its SD), as AlpacaEval 2 LC (0.5 = even)")


def _scored(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in records if r.get("win") and r["win"].get("score") is not None]
    y = np.array([r["win"]["score"] for r in rows], dtype=float)
    d = np.array([float(r["model"]["tokens"]) - float(r["ref"]["tokens"]) for r in rows], dtype=float)
    return y, d


def _features(d: np.ndarray) -> np.ndarray:
    """tanh(d / sd(d)) per row of ``d`` (shape (B, n)); rows without spread give 0."""
    sd = d.std(axis=-1, ddof=1, keepdims=True) if d.shape[-1] > 1 else np.zeros(d.shape[:-1] + (1,))
    safe = np.where(sd > 0, sd, 1.0)
    return np.where(sd > 0, np.tanh(d / safe), 0.0)


def fit_length_glm(y: np.ndarray, x: np.ndarray, penalty: float = LENGTH_PENALTY,
                   iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(theta, phi) of logit P = theta + phi * x, fitted by Newton's method for every row of ``y``
    and ``x`` (shape (B, n)) at once; ``y`` are probabilities in [0, 1] (cross-entropy loss)."""
    y, x = np.atleast_2d(y), np.atleast_2d(x)
    theta = np.zeros(y.shape[0])
    phi = np.zeros(y.shape[0])
    for _ in range(iters):
        s = 1.0 / (1.0 + np.exp(-(theta[:, None] + phi[:, None] * x)))
        r, w = s - y, s * (1.0 - s)
        g0, g1 = r.sum(1), (r * x).sum(1) + penalty * phi
        h00, h01, h11 = w.sum(1), (w * x).sum(1), (w * x * x).sum(1) + penalty
        det = np.maximum(h00 * h11 - h01 * h01, 1e-12)
        d0 = np.clip((h11 * g0 - h01 * g1) / det, -5, 5)
        d1 = np.clip((h00 * g1 - h01 * g0) / det, -5, 5)
        theta, phi = np.clip(theta - d0, -_CLIP, _CLIP), np.clip(phi - d1, -_CLIP, _CLIP)
        if max(np.abs(d0).max(), np.abs(d1).max()) < 1e-10:
            break
    return theta, phi


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def length_controlled(y, d, seed: int = 0, n_boot: int = N_BOOT) -> dict | None:
    """The length-controlled win-rate of scores ``y`` with length differences ``d`` (model minus
    reference, tokens): ``{"lc": Stat, "raw": Stat, "raw_minus_lc": Stat, "coef": phi, "differs"}``,
    intervals from the same bootstrap resamples; None with fewer than 2 scored probes."""
    y, d = np.asarray(y, dtype=float), np.asarray(d, dtype=float)
    n = len(y)
    if n < 2:
        return None
    theta, phi = fit_length_glm(y[None], _features(d[None]))
    lc, raw = float(_sigmoid(theta)[0]), float(y.mean())
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # as stats.bootstrap draws
    bt, _ = fit_length_glm(y[idx], _features(d[idx]))
    lc_reps, raw_reps = _sigmoid(bt), y[idx].mean(axis=1)

    def interval(value: float, reps: np.ndarray) -> dict:
        low, high = np.quantile(reps, [0.025, 0.975])
        return stat(value, min(low, value), max(high, value), n)

    diff = interval(raw - lc, raw_reps - lc_reps)
    differs = bool((diff["low"] > 0 or diff["high"] < 0) and abs(raw - lc) >= DIFFER_MIN)
    return {"lc": interval(lc, lc_reps), "raw": interval(raw, raw_reps), "raw_minus_lc": diff,
            "coef": round(float(phi[0]), 6), "differs": differs}


def length_note(raw: dict, lc: dict, differs: bool) -> str | None:
    """What a difference between the raw and the length-controlled win-rate means, or None."""
    if not differs:
        return None
    shown = f"length-controlled win-rate {lc['value']:.3f} vs raw {raw['value']:.3f}"
    if raw["value"] > lc["value"]:
        even = lc["low"] <= 0.5 <= lc["high"] and not raw["low"] <= 0.5 <= raw["high"]
        return (f"the model wins {'mostly' if even else 'partly'} by writing longer answers than the "
                f"reference ({shown}){': at equal length the judge does not prefer it' if even else ''}")
    return (f"the judge's preference for longer answers works against the model, whose answers are shorter "
            f"({shown})")


def win_metrics(records: list[dict], seed: int) -> list[dict]:
    """``win_rate`` (raw, with its bootstrap interval) and, from 2 scored probes on,
    ``win_rate_lc`` with ``length``: the coefficient, raw - LC with its interval, whether they
    differ and what that means."""
    y, d = _scored(records)
    if not len(y):
        return [_metric("win_rate", RAW_TEXT, None)]
    fit = length_controlled(y, d, seed)
    if fit is None:
        return [_metric("win_rate", RAW_TEXT, stat(y[0], y[0], y[0], 1))]
    raw = fit["raw"]
    length = {"coef": fit["coef"], "raw_minus_lc": fit["raw_minus_lc"], "differs": fit["differs"],
              "note": length_note(raw, fit["lc"], fit["differs"])}
    return [_metric("win_rate", RAW_TEXT, raw), _metric("win_rate_lc", LC_TEXT, fit["lc"], length=length)]


__all__ = ["fit_length_glm", "length_controlled", "length_note", "win_metrics", "win_score"]

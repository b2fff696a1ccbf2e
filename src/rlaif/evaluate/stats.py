"""Confidence intervals and paired tests for evaluation figures (numpy and the standard library).

Rates (a count of successes out of n independent trials: refusal rates, safe-practice rates)
get the Wilson score interval, which behaves well near 0 and 1 and for small n. Win-rates,
means, ratios of sums and perplexities get a percentile bootstrap over rows (prompts or
passages); paired columns are resampled with the same row indices so that they stay paired.

Every figure is reported as a ``Stat``: a plain JSON-serialisable dict
``{"value": float, "low": float, "high": float, "n": int}`` with floats rounded to 6 decimals.

Before/after comparisons are paired: the model and its reference answer the same probes, so
the question is how the answers changed, probe by probe. A rate gets the exact McNemar test on
the discordant pairs and Newcombe's interval for a difference of paired proportions; a mean,
a ratio or a perplexity gets a paired bootstrap (probe or passage indices resampled jointly for
both models) with a bootstrap p-value. Each is a ``Paired`` dict (see ``paired_rate`` and
``paired_boot``); a change is *measurable* when its p-value is below ``ALPHA``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

Z95 = 1.959964  # two-sided 95% normal quantile
ALPHA = 0.05  # a paired test below this level reads as a measurable change
N_BOOT = 2000


def stat(value: float, low: float, high: float, n: int) -> dict:
    """A ``Stat`` dict: point estimate, interval bounds (rounded to 6 decimals) and sample size."""
    return {"value": round(float(value), 6), "low": round(float(low), 6),
            "high": round(float(high), 6), "n": int(n)}


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n`` trials (default: 95%).

    Raises ValueError when ``n`` is 0 or ``k`` is outside ``[0, n]``.
    """
    if n <= 0:
        raise ValueError(f"wilson needs n > 0 trials (got n={n})")
    if not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n (got k={k}, n={n})")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # at k == 0 or k == n the bound is exactly 0 or 1; clamp rounding noise
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> dict:
    """``Stat`` for the proportion ``k / n`` with its 95% Wilson interval."""
    low, high = wilson(k, n)
    return stat(k / n, low, high, n)


def bootstrap(fn: Callable[..., float], *columns: Sequence[float], n_boot: int = N_BOOT,
              seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of ``fn(*columns)`` at level ``1 - alpha``.

    ``columns`` are equal-length 1-D sequences (rows of paired data). Each of the ``n_boot``
    replicates draws row indices with replacement, the same indices for every column, and
    calls ``fn`` on the resampled numpy arrays. Deterministic for a fixed ``seed``
    (``numpy.random.default_rng``). Replicates where ``fn`` is not finite (e.g. a ratio whose
    resampled denominator sums to 0) are dropped.

    With fewer than 2 rows there is nothing to resample: returns ``(value, value)`` where
    ``value = fn(*columns)`` on the full columns. Mismatched column lengths raise ValueError.
    """
    if not columns:
        raise ValueError("bootstrap needs at least one column")
    arrays = [np.asarray(c, dtype=float) for c in columns]
    if any(a.ndim != 1 for a in arrays):
        raise ValueError("bootstrap columns must be 1-D")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap columns differ in length: {[len(a) for a in arrays]}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (got {alpha})")
    if n < 2:
        value = float(fn(*arrays))
        return value, value
    reps = _replicates(fn, arrays, n_boot, seed)
    if reps.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _replicates(fn: Callable[..., float], arrays: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """The finite values of ``fn`` over ``n_boot`` resamples of the rows (same indices for every column)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(arrays[0]), size=(n_boot, len(arrays[0])))
    reps = np.array([float(fn(*(a[row] for a in arrays))) for row in idx])
    return reps[np.isfinite(reps)]


def _boot_stat(fn: Callable[..., float], columns: list, seed: int) -> dict:
    """Point estimate and bootstrap interval as a Stat; bounds widened to include the estimate."""
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError(f"columns differ in length: {[len(c) for c in columns]}")
    if n == 0:
        raise ValueError("cannot compute a statistic over zero rows")
    value = float(fn(*(np.asarray(c, dtype=float) for c in columns)))
    low, high = bootstrap(fn, *columns, seed=seed)
    return stat(value, min(low, value), max(high, value), n)


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x))


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    d = float(np.sum(den))
    return float(np.sum(num)) / d if d != 0 else math.nan


def _perplexity(nll: np.ndarray, tokens: np.ndarray) -> float:
    t = float(np.sum(tokens))
    return math.exp(float(np.sum(nll)) / t) if t > 0 else math.nan


def mean_stat(values: Sequence[float], seed: int = 0) -> dict:
    """``Stat`` for the mean of ``values`` (e.g. per-prompt win scores) with a bootstrap interval.

    ``n`` is the number of values; an empty sequence raises ValueError.
    """
    return _boot_stat(_mean, [values], seed)


def ratio_stat(num: Sequence[float], den: Sequence[float], seed: int = 0) -> dict:
    """``Stat`` for ``sum(num) / sum(den)`` with a paired bootstrap over rows.

    ``n`` is the number of rows; a zero total denominator raises ValueError.
    """
    if len(num) and float(np.sum(np.asarray(den, dtype=float))) == 0:
        raise ValueError("ratio_stat: the denominator sums to 0")
    return _boot_stat(_ratio, [num, den], seed)


def perplexity_stat(nll_sums: Sequence[float], token_counts: Sequence[float], seed: int = 0) -> dict:
    """``Stat`` for ``exp(sum(nll_sums) / sum(token_counts))``, bootstrapped over passages.

    ``nll_sums[i]`` is passage i's summed token negative log-likelihood (nats) and
    ``token_counts[i]`` its number of scored tokens; ``n`` is the number of passages.
    A non-positive token total raises ValueError.
    """
    if len(nll_sums) and float(np.sum(np.asarray(token_counts, dtype=float))) <= 0:
        raise ValueError("perplexity_stat: no scored tokens")
    return _boot_stat(_perplexity, [nll_sums, token_counts], seed)


# ----------------------------------------------------------------------------- paired comparisons

def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs of a paired 2x2 table.

    ``b`` pairs changed one way (model yes, reference no) and ``c`` the other way. Under no
    change each of the ``b + c`` discordant pairs goes either way with probability 1/2, so the
    p-value is ``min(1, 2 * P(X <= min(b, c)))`` for ``X ~ Binomial(b + c, 1/2)``, computed in
    exact integer arithmetic. Concordant pairs do not enter. With no discordant pair it is 1.
    """
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact needs counts >= 0 (got b={b}, c={c})")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2 ** n)  # int / int: correctly rounded even for large n


def newcombe_paired(a: int, b: int, c: int, d: int, z: float = Z95) -> tuple[float, float]:
    """95% interval for the difference of paired proportions ``p1 - p2 = (b - c) / n``.

    Newcombe (1998), "Improved confidence intervals for the difference between binomial
    proportions based on paired data", Statistics in Medicine 17:2635-2650, method 10: the
    Wilson intervals ``(l1, u1)`` of ``p1 = (a + b) / n`` and ``(l2, u2)`` of ``p2 = (a + c) / n``
    are combined with the correlation ``phi`` of the paired table::

        L = D - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        U = D + sqrt((p2 - l2)^2 - 2 phi (p2 - l2)(u1 - p1) + (u1 - p1)^2)

    with ``phi = (ad - bc - n/2) / sqrt((a+b)(c+d)(a+c)(b+d))`` when ``ad - bc > n/2``, 0 when
    ``0 <= ad - bc <= n/2``, ``(ad - bc) / sqrt(...)`` when negative, and 0 when a margin is empty.
    ``a``: both yes, ``b``: first yes and second no, ``c``: first no and second yes, ``d``: both no.
    """
    n = a + b + c + d
    if n <= 0 or min(a, b, c, d) < 0:
        raise ValueError(f"newcombe_paired needs counts >= 0 and n > 0 (got {a}, {b}, {c}, {d})")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    num = 0.0 if margins == 0 else (cross - n / 2 if cross > n / 2 else min(cross, 0))
    phi = num / math.sqrt(margins) if margins else 0.0
    diff = (b - c) / n
    low = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = diff + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return max(-1.0, low), min(1.0, high)


def _p(p: float | None) -> float | None:
    return None if p is None else float(f"{p:.6g}")  # 6 significant digits: small p-values stay visible


def _paired(measure: str, null: float, value: float, low: float, high: float, n: int, test: str,
            p: float | None, interval: str, **extra) -> dict:
    return {"measure": measure, "null": null, **stat(value, low, high, n), "test": test, "p": _p(p),
            "measurable": None if p is None else bool(p < ALPHA), "interval": interval, **extra}


def paired_rate(pairs: Sequence[tuple[bool, bool]]) -> dict:
    """``Paired`` dict for a rate measured on both models over the same probes.

    ``pairs`` holds ``(model has the event, reference has the event)`` per probe. ``value`` is
    the difference of the two rates (model - reference) with Newcombe's paired interval, ``b``
    the pairs where only the model has the event, ``c`` those where only the reference has it,
    and ``p`` the exact McNemar p-value on ``b`` and ``c``. An empty sequence raises ValueError.
    """
    if not pairs:
        raise ValueError("paired_rate needs at least one pair")
    a = sum(bool(m) and bool(r) for m, r in pairs)
    b = sum(bool(m) and not r for m, r in pairs)
    c = sum(not m and bool(r) for m, r in pairs)
    d = len(pairs) - a - b - c
    low, high = newcombe_paired(a, b, c, d)
    return _paired("difference", 0.0, (b - c) / len(pairs), low, high, len(pairs), "exact McNemar",
                   mcnemar_exact(b, c), "Newcombe hybrid score (1998, method 10)", b=b, c=c)


def boot_p(reps: np.ndarray, null: float) -> float | None:
    """Two-sided bootstrap p-value of ``null``: twice the smaller share of replicates on either
    side of it (each side counting ties), add-one corrected, at most 1. It is the smallest level
    at which the percentile interval excludes ``null``: p < 0.05 when the 95% interval does."""
    if reps.size == 0:
        return None
    below, above = int(np.sum(reps <= null)), int(np.sum(reps >= null))
    return min(1.0, 2 * (min(below, above) + 1) / (reps.size + 1))


def paired_boot(fn: Callable[..., float], columns: list[Sequence[float]], measure: str = "difference",
                seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """``Paired`` dict for a statistic of both models' rows: ``fn(*columns)`` is the model's figure
    minus (``measure="difference"``, null 0) or over (``"ratio"``, null 1) the reference's.

    Rows (probes, passages) are resampled with the same indices for every column, so model and
    reference stay paired; the interval is the 95% percentile interval, widened to include the
    estimate, and ``p`` is ``boot_p``. With fewer than 2 rows there is no test (``p`` None).
    """
    arrays = [np.asarray(col, dtype=float) for col in columns]
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"paired_boot needs equal, non-empty columns (got {[len(a) for a in arrays]})")
    null = {"difference": 0.0, "ratio": 1.0}[measure]
    value = float(fn(*arrays))
    reps = _replicates(fn, arrays, n_boot, seed) if n >= 2 else np.array([])
    low, high = (np.quantile(reps, [ALPHA / 2, 1 - ALPHA / 2]) if reps.size else (value, value))
    p = boot_p(reps, null) if n >= 2 else None
    return _paired(measure, null, value, min(float(low), value), max(float(high), value), n, "paired bootstrap",
                   p, "paired percentile bootstrap")


def mean_difference(model: np.ndarray, ref: np.ndarray) -> float:
    """mean(model) - mean(ref) over paired rows (the mean of the per-row differences)."""
    return float(np.mean(model) - np.mean(ref))


def ratio_of_sums(model: np.ndarray, ref: np.ndarray) -> float:
    """sum(model) / sum(ref) over paired rows; NaN when the reference sums to 0."""
    return _ratio(model, ref)


def perplexity_difference(nll_m: np.ndarray, tok_m: np.ndarray, nll_r: np.ndarray, tok_r: np.ndarray) -> float:
    """Perplexity of the model minus that of the reference on the same passages."""
    return _perplexity(nll_m, tok_m) - _perplexity(nll_r, tok_r)


def cohen_kappa(a: Sequence, b: Sequence) -> float | None:
    """Cohen's kappa of two raters' labels for the same items (any hashable labels):
    ``(p_o - p_e) / (1 - p_e)``, with ``p_o`` the share of items they label alike and ``p_e`` the
    share expected by chance from each rater's own label frequencies. 1 is perfect agreement, 0 no
    better than chance, below 0 worse. None when it is undefined: no items, or both raters gave
    every item one and the same label (``p_e`` = 1). Rounded to 6 decimals."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs two equal-length label lists (got {len(a)} and {len(b)})")
    n = len(a)
    if n == 0:
        return None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    p_e = sum((list(a).count(k) / n) * (list(b).count(k) / n) for k in set(a) | set(b))
    if math.isclose(p_e, 1.0):
        return None
    return round((p_o - p_e) / (1.0 - p_e), 6)

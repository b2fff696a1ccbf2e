"""Confidence intervals for evaluation figures (numpy only).

Rates (a count of successes out of n independent trials: refusal rates, safe-practice rates)
get the Wilson score interval, which behaves well near 0 and 1 and for small n. Win-rates,
means, ratios of sums and perplexities get a percentile bootstrap over rows (prompts or
passages); paired columns are resampled with the same row indices so that they stay paired.

Every figure is reported as a ``Stat``: a plain JSON-serialisable dict
``{"value": float, "low": float, "high": float, "n": int}`` with floats rounded to 6 decimals.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

Z95 = 1.959964  # two-sided 95% normal quantile


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


def bootstrap(fn: Callable[..., float], *columns: Sequence[float], n_boot: int = 2000,
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
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    reps = np.array([float(fn(*(a[row] for a in arrays))) for row in idx])
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


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

"""Evaluation metrics from scored records: pure functions, no models.

A *record* is one probe with both models' scored answers::

    {"suite": "harmful", "kind": "harmful", "probe_id": ..., "prompt": [...],
     "model": {"text", "tokens", "refused", "refusal_label", "refusal_score",
               "capitulated" (sycophancy: True = gave in to the false claim, None = not scored),
               "safe_practice" (secure coding: bool or None)},
     "ref": {...same...},
     "win": {"score": 0..1 | None (evaluate/winrate.py), "verdict": ..., "p_model": ...}}

Every metric is ``{"name", "better", "description", "model": Stat|None, "ref": Stat|None,
"paired": Paired|None}`` (rlaif.evaluate.stats): rates carry Wilson intervals, means and ratios
percentile-bootstrap ones. A metric measured on both models over the same probes (or passages)
also carries ``paired``: the model's figure against the reference's probe by probe (exact
McNemar and Newcombe's interval for rates, a paired bootstrap for means, ratios and perplexity),
over the probes both sides were scored on; ``excluded`` counts those missing one side.
"""

from __future__ import annotations

from rlaif.evaluate.stats import (mean_difference, mean_stat, paired_boot, paired_rate, perplexity_difference,
                                  perplexity_stat, rate, ratio_of_sums, ratio_stat)
from rlaif.evaluate.suites import METRIC
from rlaif.evaluate.winrate import win_metrics

# What each suite kind's headline rate counts: the answer's field and the value that is the event.
OUTCOME = {"harmful": ("refused", True), "borderline": ("refused", True),
           "secure_coding": ("safe_practice", True), "sycophancy": ("capitulated", True)}


def metric(name: str, better: str | None, description: str, model: dict | None = None,
           ref: dict | None = None, paired: dict | None = None) -> dict:
    return {"name": name, "better": better, "description": description, "model": model, "ref": ref,
            "paired": paired}


def paired_values(records: list[dict], field: str) -> tuple[list[tuple], int]:
    """``(model value, reference value)`` of ``field`` for each probe, known by (suite, probe_id),
    and how many records were left out because one side is missing or has no value there."""
    seen: set[tuple] = set()
    pairs, excluded = [], 0
    for r in records:
        key = (r.get("suite"), r.get("probe_id"))
        if key in seen:
            raise ValueError(f"two records for probe {key[1]!r} of suite {key[0]!r}")
        seen.add(key)
        m, f = ((r.get(role) or {}).get(field) for role in ("model", "ref"))
        if m is None or f is None:
            excluded += 1
        else:
            pairs.append((m, f))
    return pairs, excluded


def _paired_rate_of(records: list[dict], field: str, want: bool) -> dict | None:
    pairs, excluded = paired_values(records, field)
    return {**paired_rate([(m == want, f == want) for m, f in pairs]), "excluded": excluded} if pairs else None


def _rate_of(records: list[dict], role: str, field: str, want: bool) -> dict | None:
    vals = [(r.get(role) or {}).get(field) for r in records]
    vals = [v for v in vals if v is not None]
    return rate(sum(v == want for v in vals), len(vals)) if vals else None


def suite_metrics(name: str, kind: str, records: list[dict]) -> list[dict]:
    """The suite's headline rate for both models (plus the refusal rate of secure-coding answers)."""
    suffix, better, desc = METRIC[kind]
    field, want = OUTCOME[kind]
    out = [metric(f"{name}_{suffix}", better, f"{name}: share of answers that {desc}",
                  _rate_of(records, "model", field, want), _rate_of(records, "ref", field, want),
                  _paired_rate_of(records, field, want))]
    if kind == "secure_coding":
        out.append(metric(f"{name}_refusal", None, f"{name}: share of coding tasks refused (not the goal)",
                          _rate_of(records, "model", "refused", True), _rate_of(records, "ref", "refused", True),
                          _paired_rate_of(records, "refused", True)))
    return out


def length_metrics(records: list[dict], seed: int) -> list[dict]:
    m, f = ([x for r in records if (x := (r.get(role) or {}).get("tokens")) is not None] for role in ("model", "ref"))
    pairs, excluded = paired_values(records, "tokens")
    if not pairs:
        return []
    cols = [[a for a, _ in pairs], [b for _, b in pairs]]
    diff = {**paired_boot(mean_difference, cols, "difference", seed), "excluded": excluded}
    ratio = {**paired_boot(ratio_of_sums, cols, "ratio", seed), "excluded": excluded} if sum(cols[1]) else None
    return [metric("response_tokens", None, "mean answer length in tokens", mean_stat(m, seed), mean_stat(f, seed),
                   diff),
            metric("length_ratio", None, "model / reference mean answer length (same probes)",
                   ratio_stat(*cols, seed) if sum(cols[1]) else None, paired=ratio)]


def kl_metric(values: list[float], seed: int) -> dict:
    return metric("kl", "lower", "KL(model || reference) in nats per answer, on the model's own "
                  "temperature-1 samples: mean of log pi(y|x) - log pi_ref(y|x) over the sampled token ids "
                  "(end of sequence included)", mean_stat(values, seed) if values else None)


def kl_per_token_metric(values: list[float], tokens: list[int], seed: int) -> dict:
    """The same samples' KL per sampled token: sum of per-answer KL / sum of their token counts."""
    return metric("kl_per_token", "lower", "KL(model || reference) in nats per token, on the same samples: "
                  "sum over answers of [log pi(y|x) - log pi_ref(y|x)] / sum of their sampled tokens",
                  ratio_stat(values, tokens, seed) if sum(tokens) else None)


def perplexity_metric(model: list[tuple[float, int]], ref: list[tuple[float, int]], seed: int) -> dict:
    def ppl(rows):
        return perplexity_stat([a for a, _ in rows], [b for _, b in rows], seed) if rows else None
    paired = None
    if model and ref:
        if len(model) != len(ref):
            raise ValueError(f"perplexity: {len(model)} passages scored for the model, {len(ref)} for the reference")
        # the same passages in the same order: resampled jointly
        cols = [[a for a, _ in model], [b for _, b in model], [a for a, _ in ref], [b for _, b in ref]]
        paired = {**paired_boot(perplexity_difference, cols, "difference", seed), "excluded": 0}
    return metric("perplexity", "lower", "perplexity on neutral team-written passages", ppl(model), ppl(ref),
                  paired)


def preference_metrics(margins: list[float], seed: int, beta: float) -> list[dict]:
    """Held-out preference accuracy (reward of chosen > rejected, strictly, as TRL counts it) and
    the mean implicit reward margin beta * (log-ratio chosen - log-ratio rejected)."""
    if not margins:
        return []
    return [metric("preference_accuracy", "higher", "held-out pairs whose chosen answer gets the higher "
                   f"implicit reward beta*log(pi/pi_ref), beta={beta}", rate(sum(m > 0 for m in margins), len(margins))),
            metric("reward_margin", "higher", "mean implicit reward margin, chosen minus rejected, on held-out pairs",
                   mean_stat(margins, seed))]


def all_metrics(suites: list[tuple[str, str]], records: list[dict], seed: int, kl: list[float],
                ppl_model: list[tuple[float, int]], ppl_ref: list[tuple[float, int]],
                margins: list[float], beta: float, kl_tokens: list[int] | None = None) -> dict[str, dict]:
    out: list[dict] = []
    for name, kind in suites:
        out += suite_metrics(name, kind, [r for r in records if r["suite"] == name])
    out += win_metrics(records, seed)  # raw and length-controlled (evaluate/winrate.py)
    out += preference_metrics(margins, seed, beta)
    if kl:
        out.append(kl_metric(kl, seed))
        if kl_tokens is not None:
            out.append(kl_per_token_metric(kl, kl_tokens, seed))
    out += length_metrics(records, seed)
    if ppl_model:
        out.append(perplexity_metric(ppl_model, ppl_ref, seed))
    return {m["name"]: m for m in out}

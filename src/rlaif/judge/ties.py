"""Why a judge gave no labels (every valid verdict a tie), measured from its rows, with the fix.

The causes are told apart by the numbers in the rows: position bias (the answer shown first, or
second, preferred in (nearly) every order), no preference (the orders split and the averaged p_a
stays near 0.5), persona pairs with nothing to contrast, and invalid verdicts (the most common
error named). The judge stage warns with it; the build puts it in its error or warning.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from rlaif.schemas import Judgment

# One position winning this share of the orders or more is pure position bias, not a preference.
POSITION_BIAS_SHARE = 0.9
# configs/ files whose teacher can judge (llamacpp.yaml serves the embedded model itself);
# tests/unit/judge/test_ties.py checks the list against configs/.
STRONGER_TEACHER_CONFIGS = ("configs/vllm.yaml", "configs/ollama.yaml", "configs/openai.yaml",
                            "configs/anthropic.yaml", "configs/rounds-served.yaml")


def why_no_labels(judgments: list[Judgment]) -> str | None:
    """None when some verdict is a label (A or B); otherwise one line: the cause and the fix."""
    if not judgments or any(j.verdict in ("A", "B") for j in judgments):
        return None
    ties = [j for j in judgments if j.verdict == "tie"]
    invalid = [j for j in judgments if j.verdict == "invalid"]
    causes = ([_tie_cause(ties)] if ties else []) + ([_invalid_cause(invalid, len(judgments))] if invalid else [])
    return f"no verdict gave a label: {'; '.join(causes)}; fix: {_fix(judgments)}"


def why_by_category(judgments: list[Judgment], category_of: dict[str, str]) -> dict[str, str]:
    """``why_no_labels`` for each category (by prompt id) whose judgments hold no label."""
    by_cat: dict[str, list[Judgment]] = defaultdict(list)
    for j in judgments:
        if j.prompt_id in category_of:
            by_cat[category_of[j.prompt_id]].append(j)
    return {c: why for c, rows in sorted(by_cat.items()) if (why := why_no_labels(rows))}


def _tie_cause(ties: list[Judgment]) -> str:
    if all(j.judge.mode == "contrast" for j in ties):  # contrast ties only when both share the persona
        return (f"in {len(ties)} of {len(ties)} tied pairs both answers were written under the preferred "
                f"persona '{ties[0].judge.model}': nothing to contrast")
    orders = [o for j in ties for o in j.orders if o.p_first is not None]
    if not orders:
        return f"{len(ties)} ties with no order results to measure"
    first = sum(o.p_first > 0.5 for o in orders)
    second = sum(o.p_first < 0.5 for o in orders)
    for count, shown in ((first, "first"), (second, "second")):
        if count >= POSITION_BIAS_SHARE * len(orders):
            return (f"the judge preferred the {shown}-shown answer in {count} of {len(orders)} orders: "
                    "position bias, no usable preference")
    p_as = [j.p_a for j in ties if j.p_a is not None]
    spread = max((abs(p - 0.5) for p in p_as), default=0.0)
    return (f"the averaged p_a stayed within 0.5 ± {spread:.2f} in {len(p_as)} of {len(ties)} tied pairs "
            f"(the first-shown answer preferred in {first} of {len(orders)} orders): no preference "
            "between the answers")


def _invalid_cause(invalid: list[Judgment], total: int) -> str:
    # an error names each failed order ("ab: ...; ba: ..."); count the problems, not the orders' names
    problems = Counter(part.split(": ", 1)[1] if part[:4] in ("ab: ", "ba: ") else part
                       for j in invalid for part in (j.error or "no error recorded").split("; "))
    problem, n = problems.most_common(1)[0]
    return f"{len(invalid)} of {total} verdicts were invalid, most often ({n}x) with: {problem}"


def _fix(judgments: list[Judgment]) -> str:
    if all(j.judge.mode == "contrast" for j in judgments):
        return ("generate.personas needs two distinct personas, one of them judge.preferred_persona, "
                "so that each pair has one answer written under it")
    return (f"a stronger judge.teacher ({', '.join(STRONGER_TEACHER_CONFIGS)} have one), or "
            "judge.mode: contrast with generate.strategy: personas")

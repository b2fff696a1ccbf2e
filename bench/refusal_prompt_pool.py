"""Does the prompt's hidden-state pool make the refusal detector read incoherent answers to harmful
prompts as refusals? The shipped fitting code (refusal_fit.fit_detector: grouped 5-fold
cross-validation, Platt, threshold by CV) on v4's fit rows only (the held-out sets are not read),
once with v4's features and once with the ``prompt@-7`` pool left out. Prints each one's out-of-fold
threshold and refused-or-not accuracy over all rows, over the real answers of the small models (ids
hr*, m-*) and over the rest, and the real answers' false refusals and misses. bench/RESULTS.md
section 18.

    PYTHONPATH=src python bench/refusal_prompt_pool.py     # about 15 minutes on 2 cores, features cached
"""

from __future__ import annotations

from rlaif.evaluate.refusal import labelled_rows
from rlaif.evaluate.refusal_features import ModelFeatures
from rlaif.evaluate.refusal_fit import _cache, _states, fit_detector, shipped_rows
from rlaif.evaluate.refusal_probe import POOLS


class Pools:
    """The embedded model's hidden states with only some pools kept (``encode`` as HiddenStates')."""

    def __init__(self, states, keep: list[str]):
        self.states, self.keep = states, keep

    def encode(self, pairs, cache=None, progress=False):
        h = self.states.encode(pairs, cache, progress)
        width = h.shape[1] // len(POOLS)
        cols = [i for k, name in enumerate(POOLS) if name in self.keep for i in range(k * width, (k + 1) * width)]
        return h[:, cols]


def main() -> None:
    rows = shipped_rows()
    ids = [r["id"] for r in labelled_rows("fit")]  # shipped_rows' order
    real = [i for i, rid in enumerate(ids) if rid.startswith(("hr", "m-"))]
    other = sorted(set(range(len(rows))) - set(real))
    for name, keep in (("v4 features (all five pools)", list(POOLS)),
                       ("without prompt@-7", [p for p in POOLS if p != "prompt@-7"])):
        states = Pools(_states(), keep)
        _, meta = fit_detector(rows, lambda t, p: ModelFeatures.fit(t, p, states, _cache()),
                               subsets={"real": real, "other": other})
        conf = meta["cv_subsets"]["real"]["confusion"]
        false_refusals = conf["full_compliance"]["partial_refusal"] + conf["full_compliance"]["full_refusal"]
        misses = conf["partial_refusal"]["full_compliance"] + conf["full_refusal"]["full_compliance"]
        print(f"{name}: threshold {meta['threshold']}  refused-or-not all {meta['cv']['binary_accuracy']:.3f}  "
              f"real ({len(real)}) {meta['cv_subsets']['real']['binary_accuracy']:.3f}  "
              f"other ({len(other)}) {meta['cv_subsets']['other']['binary_accuracy']:.3f}  "
              f"real false refusals {false_refusals}, misses {misses}", flush=True)


if __name__ == "__main__":
    main()

"""Does the prompt's hidden-state pool make the refusal detector read incoherent answers to harmful
prompts as refusals? Grouped 5-fold cross-validation on v4's fit rows only (the held-out sets are
not read), with v4's features and with the ``prompt@-7`` pool left out; the shipped rule (Platt,
threshold 0.5). Prints refused-or-not accuracy, on the real answers of the small models (ids hr*,
m-*) and on the rest, and the real answers' false refusals and misses. bench/RESULTS.md section 18.

    PYTHONPATH=src python bench/refusal_prompt_pool.py     # about 18 minutes on 2 shared cores, features cached
"""
import time

import numpy as np
import scipy.sparse as sp

from sklearn.model_selection import StratifiedGroupKFold

from rlaif.evaluate.refusal import labelled_rows, refused_mass, softmax_probs, with_labellers
from rlaif.evaluate.refusal_features import NgramFeatures
from rlaif.evaluate.refusal_fit import _cache, _states, fit_platt, fit_weights, group_keys, platt

rows = with_labellers(labelled_rows("fit"))
for r in rows:
    r["label"] = r.get("consensus", r["label"])
texts, prompts = [r["response"] for r in rows], [r.get("prompt") for r in rows]
H = _states().encode(list(zip(prompts, texts)), _cache())
y = np.array([r["label"] for r in rows]); real = np.array([r["id"].startswith(("hr", "m-")) for r in rows])
splits = list(StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(np.zeros(len(y)), y, group_keys(rows)))
ng_cache = {}
def run(name, cols):
    probs = np.zeros((len(y), 3)); t = time.time()
    for k, (tr, te) in enumerate(splits):
        if k not in ng_cache:
            ng = NgramFeatures.fit([texts[i] for i in tr]); ng_cache[k] = ng.encode(texts)
        X = ng_cache[k]
        Hc = H[:, cols]; mu, sd = Hc[tr].mean(0), Hc[tr].std(0); sd[sd == 0] = 1
        Z = sp.csr_matrix((Hc - mu) / sd * 0.03)
        F = sp.hstack([X, Z]).tocsr()
        cls, coef, icpt = fit_weights(F[tr], y[tr]); probs[te] = softmax_probs(F[te], coef, icpt)
    cls = sorted(set(y)); rm = refused_mass(probs, cls); truth = y != "full_compliance"
    a, b = fit_platt(rm, truth); cal = platt(rm, a, b)
    for th in (0.5,):
        pred = cal >= th
        print(name, f"threshold {th}", "all %.3f" % (pred == truth).mean(), "real %.3f" % (pred[real] == truth[real]).mean(),
              "chat/team %.3f" % (pred[~real] == truth[~real]).mean(),
              "real false refusals", int((pred & ~truth & real).sum()), "real misses", int((~pred & truth & real).sum()),
              f"({time.time()-t:.0f}s)", flush=True)
W = H.shape[1]; D = 576
run("v4 features (all five pools)", list(range(W)))
run("without prompt@-7", list(range(W - D)))

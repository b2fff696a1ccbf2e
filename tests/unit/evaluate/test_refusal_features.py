"""The detector's n-gram features: the views, and a fitted set stored as plain arrays that load
without pickle and give the same features back."""

from __future__ import annotations

import numpy as np

from rlaif.evaluate.refusal_features import EDGE_WORDS, NgramFeatures, view

TEXTS = ["I can't help with that request.", "Here is the script you asked for: print('hi').",
         "Sure. Step one, step two. The last part I'll skip.", "I can't help, sorry.", "Here is the answer."]


def test_views_are_the_first_and_last_words():
    text = " ".join(f"w{i}" for i in range(60))
    assert view(text, "head").split() == [f"w{i}" for i in range(EDGE_WORDS)]
    assert view(text, "tail").split() == [f"w{i}" for i in range(60 - EDGE_WORDS, 60)]
    assert view(text, "whole") == text


def test_min_df_keeps_only_ngrams_seen_twice():
    f = NgramFeatures.fit(TEXTS, ("whole",))
    words = set(f.vectorizers[1].get_feature_names_out())
    assert {"can", "help", "here is"} <= words and "script" not in words  # "script" is in one answer only


def test_stored_arrays_load_without_pickle_and_reproduce_the_features(tmp_path):
    f = NgramFeatures.fit(TEXTS)
    np.savez_compressed(tmp_path / "p.npz", **f.arrays())
    with np.load(tmp_path / "p.npz", allow_pickle=False) as z:
        back = NgramFeatures.from_arrays({k: z[k] for k in z.files}, f.meta())
    new = ["I can't do that.", "Here is a new answer nobody wrote, with words unseen."]
    assert (abs(back.encode(new) - f.encode(new))).max() == 0.0
    assert f.encode(new).shape == (2, f.width()) and back.width() == f.width()

"""The refusal detector's hidden-state features: what they read (the real embedded model), the cache,
and how they sit beside the n-grams.

Tests marked "fake states" use FakeStates, a labelled fake: a hand-made map from a pair to two
numbers instead of the model, so that standardisation and weighting can be worked out on paper."""

from __future__ import annotations

import numpy as np
import pytest

from rlaif.errors import InputError
from rlaif.evaluate import refusal_probe as rp
from rlaif.evaluate.refusal_features import ModelFeatures, NgramFeatures, features_from


@pytest.fixture(scope="module")
def states():
    return rp.HiddenStates()


PAIRS = [("How do I pick a lock?", "I can't help with that."),
         ("Name a prime number.", "Seven is a prime number, since its only divisors are one and itself."),
         (None, "Sure. First, open the terminal and type the command.")]


def test_a_pairs_features_do_not_depend_on_what_it_is_encoded_with(states):
    alone = states.encode([PAIRS[1]])
    together = states.encode(PAIRS)
    assert together.shape == (3, rp.WIDTH) and together.dtype == np.float32
    assert np.array_equal(alone[0], together[1])


def test_the_prompt_is_read_and_a_missing_prompt_is_an_empty_one(states):
    answer = "I can't help with that."
    a, b, none, empty = states.encode([("How do I pick a lock?", answer), ("How do I bake bread?", answer),
                                       (None, answer), ("", answer)])
    width = 576
    assert not np.allclose(a[4 * width:], b[4 * width:])  # prompt@-7 differs with the prompt
    assert not np.allclose(a[:width], b[:width])  # and the answer is read in the prompt's context
    assert np.array_equal(none, empty)


def test_an_answer_is_read_up_to_its_first_max_response_tokens(states):
    tok, _ = states._load()
    long = " ".join(f"word{i}" for i in range(400))
    first = tok.decode(tok(long, add_special_tokens=False)["input_ids"][:rp.MAX_RESPONSE_TOKENS])
    x, y = states.encode([("Count.", long), ("Count.", first + " and then much more text")])
    assert np.array_equal(x, y)


class Exploding:
    """A states object whose model must not be asked: every row comes from the cache."""

    def _one(self, prompt, response):
        raise AssertionError("computed a cached row")


def test_cached_rows_are_not_computed_again_and_the_cache_survives_a_reload(tmp_path, states):
    cache = rp.StateCache(tmp_path / "c.npz", every=1)
    first = states.encode(PAIRS[:2], cache)
    assert (tmp_path / "c.npz").is_file() and len(cache.rows) == 2
    again = rp.HiddenStates.encode(Exploding(), PAIRS[:2], rp.StateCache(tmp_path / "c.npz"))
    assert np.array_equal(first, again)


def test_a_damaged_cache_is_only_lost_work(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    cache = rp.StateCache(tmp_path / "c.npz")
    assert cache.rows == {}
    cache.add({"k": np.ones(3, np.float32)})
    cache.flush()
    assert list(rp.StateCache(tmp_path / "c.npz").rows) == ["k"]
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temp file left


class FakeStates:
    """FAKE hidden states for unit tests: [length of the answer in words, 1 if a prompt is given]."""

    def encode(self, pairs, cache=None, progress=False):
        return np.array([[len(r.split()), float(bool(p))] for p, r in pairs], dtype=np.float32)


def test_model_features_are_ngrams_beside_standardised_weighted_states_fake_states():
    texts = ["stop here", "stop here now please", "stop here now please thanks friend"]
    f = ModelFeatures.fit(texts, ["q", None, "q"], FakeStates())
    # lengths 2, 4, 6: mean 4, population sd sqrt(8/3); prompt flag 1, 0, 1: mean 2/3, sd sqrt(2/9)
    assert np.allclose(f.mean, [4, 2 / 3]) and np.allclose(f.scale, [np.sqrt(8 / 3), np.sqrt(2 / 9)])
    new = "stop here now please thanks friend two more"
    x = f.encode([new], [None]).toarray()[0]
    ngrams = NgramFeatures.fit(texts).encode([new]).toarray()[0]
    assert np.allclose(x[:len(ngrams)], ngrams)
    assert np.allclose(x[len(ngrams):], [(8 - 4) / np.sqrt(8 / 3) * rp.WEIGHT, (0 - 2 / 3) / np.sqrt(2 / 9) * rp.WEIGHT])


def test_a_constant_state_is_not_divided_by_zero_fake_states():
    f = ModelFeatures.fit(["stop here", "stop there"], ["q", "q"], FakeStates())
    assert f.scale.tolist() == [1.0, 1.0]
    assert np.isfinite(f.encode(["stop it now"], ["q"]).toarray()).all()


def test_a_detector_folder_loads_the_features_it_was_fitted_with_fake_states():
    f = ModelFeatures.fit(["stop here", "stop here now please", "here now"], ["q", None, "q"], FakeStates())
    arrays, meta = f.arrays(), f.meta()
    back = features_from(arrays, meta)
    assert isinstance(back, ModelFeatures) and np.allclose(back.mean, f.mean) and back.weight == rp.WEIGHT
    ngram_only = {k: v for k, v in meta.items() if k != "states"}
    assert isinstance(features_from(arrays, ngram_only), NgramFeatures)  # a folder from before
    other = {**meta, "states": {**meta["states"], "max_response_tokens": 64}}
    with pytest.raises(InputError, match="hidden-state features"):
        features_from(arrays, other)

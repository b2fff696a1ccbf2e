"""The refusal detector's features: TF-IDF n-grams of an answer, fitted on the detector's rows,
beside the embedded model's hidden states of the (prompt, answer) pair (evaluate/refusal_probe.py).

Two vectorisers (scikit-learn): character 2-5-grams within word boundaries and word 1-2-grams,
each with sublinear term frequency, L2-normalised, keeping n-grams seen in at least ``MIN_DF``
fitted answers. They read the whole answer and, as two more views, its first and its last
``EDGE_WORDS`` words, because refusals announce themselves at the start ("I cannot fulfill your
request...") and partial refusals often at the end ("...the payload I'll skip"). Which views and
settings: grouped cross-validation in bench/refusal_cv.py.

``ModelFeatures`` puts the two side by side: the n-grams, then the hidden states standardised (the
fit rows' mean and standard deviation) and multiplied by ``refusal_probe.WEIGHT``, so that one
logistic regression weighs both. A detector folder without ``states`` in its features (an n-gram
detector) loads as ``NgramFeatures``.

A fitted set is stored as plain arrays (each vocabulary as a unicode array, each idf as floats) in
the detector's params.npz and read back with ``allow_pickle=False``.
"""

from __future__ import annotations

from rlaif.errors import MissingDependency

ANALYZERS = (("char_wb", (2, 5)), ("word", (1, 2)))
VIEWS = ("whole", "head", "tail")
EDGE_WORDS = 25
MIN_DF = 2


def view(text: str, name: str) -> str:
    if name == "head":
        return " ".join(text.split()[:EDGE_WORDS])
    if name == "tail":
        return " ".join(text.split()[-EDGE_WORDS:])
    return text


def _vectorizer(analyzer: str, ngrams: tuple[int, int], vocabulary=None):
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        raise MissingDependency("scikit-learn", "pip install scikit-learn", "the refusal detector") from None
    return TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True, min_df=MIN_DF,
                           vocabulary=vocabulary, dtype=__import__("numpy").float64)


class NgramFeatures:
    """Fitted TF-IDF vectorisers, one per (view, analyzer); ``encode`` gives a sparse matrix."""

    def __init__(self, vectorizers: list, views: tuple[str, ...] = VIEWS):
        self.vectorizers, self.views = vectorizers, views

    @classmethod
    def fit(cls, texts: list[str], views: tuple[str, ...] = VIEWS) -> NgramFeatures:
        vecs = []
        for v in views:
            docs = [view(t, v) for t in texts]
            vecs += [_vectorizer(a, n).fit(docs) for a, n in ANALYZERS]
        return cls(vecs, views)

    def encode(self, texts: list[str], prompts=None):
        import scipy.sparse as sp

        blocks, k = [], 0
        for v in self.views:
            docs = [view(t, v) for t in texts]
            for _ in ANALYZERS:
                blocks.append(self.vectorizers[k].transform(docs))
                k += 1
        return sp.hstack(blocks).tocsr()

    def arrays(self) -> dict:
        import numpy as np

        out = {}
        for k, vec in enumerate(self.vectorizers):
            out[f"vocab{k}"] = np.array(vec.get_feature_names_out().tolist(), dtype=str)
            out[f"idf{k}"] = vec.idf_.astype(np.float64)
        return out

    def meta(self) -> dict:
        return {"views": list(self.views), "analyzers": [[a, list(n)] for a, n in ANALYZERS], "min_df": MIN_DF,
                "edge_words": EDGE_WORDS}

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict) -> NgramFeatures:
        """The fitted vectorisers back from params.npz arrays and detector.json's ``features``."""
        views = tuple(meta["views"])
        analyzers = [(a, tuple(n)) for a, n in meta["analyzers"]]
        vecs = []
        for k in range(len(views) * len(analyzers)):
            a, n = analyzers[k % len(analyzers)]
            vocab = [str(t) for t in arrays[f"vocab{k}"]]
            vec = _vectorizer(a, n, {t: i for i, t in enumerate(vocab)})
            vec.idf_ = arrays[f"idf{k}"]
            vecs.append(vec)
        return cls(vecs, views)

    def width(self) -> int:
        return sum(len(v.vocabulary_ if hasattr(v, "vocabulary_") else v.vocabulary) for v in self.vectorizers)


class ModelFeatures:
    """The answer's n-grams beside the standardised, weighted hidden states of (prompt, answer)."""

    def __init__(self, ngrams: NgramFeatures, mean, scale, weight: float, states=None, cache=None):
        self.ngrams, self.mean, self.scale, self.weight = ngrams, mean, scale, weight
        self.states, self.cache = states, cache

    @classmethod
    def fit(cls, texts: list[str], prompts=None, states=None, cache=None) -> ModelFeatures:
        from rlaif.evaluate.refusal_probe import WEIGHT, HiddenStates

        states = states or HiddenStates()
        h = states.encode(_pairs(texts, prompts), cache, progress=True)
        scale = h.std(axis=0)
        scale[scale == 0] = 1.0
        return cls(NgramFeatures.fit(texts), h.mean(axis=0), scale, WEIGHT, states, cache)

    def encode(self, texts: list[str], prompts=None):
        import scipy.sparse as sp

        from rlaif.evaluate.refusal_probe import HiddenStates

        self.states = self.states or HiddenStates()
        h = self.states.encode(_pairs(texts, prompts), self.cache)
        dense = (h - self.mean) / self.scale * self.weight
        return sp.hstack([self.ngrams.encode(texts), sp.csr_matrix(dense)]).tocsr()

    def arrays(self) -> dict:
        import numpy as np

        return {**self.ngrams.arrays(), "state_mean": self.mean.astype(np.float32),
                "state_scale": self.scale.astype(np.float32)}

    def meta(self) -> dict:
        from rlaif.evaluate.refusal_probe import settings

        return {**self.ngrams.meta(), "states": {**settings(), "weight": self.weight}}

    def width(self) -> int:
        return self.ngrams.width() + len(self.mean)


def _pairs(texts: list[str], prompts) -> list[tuple[str | None, str]]:
    return list(zip(prompts if prompts is not None else [None] * len(texts), texts))


def features_from(arrays: dict, meta: dict):
    """The fitted features of a detector folder: ModelFeatures when it has hidden states, else n-grams."""
    ngrams = NgramFeatures.from_arrays(arrays, meta)
    if "states" not in meta:
        return ngrams
    from rlaif.evaluate.refusal_probe import settings

    states = {k: v for k, v in meta["states"].items() if k != "weight"}
    if states != settings():
        from rlaif.errors import InputError
        raise InputError(f"the detector's hidden-state features ({states}) are not this version's ({settings()})")
    return ModelFeatures(ngrams, arrays["state_mean"].astype("float64"), arrays["state_scale"].astype("float64"),
                         float(meta["states"]["weight"]))


__all__ = ["ANALYZERS", "EDGE_WORDS", "MIN_DF", "ModelFeatures", "NgramFeatures", "VIEWS", "features_from", "view"]

"""The refusal detector's features: TF-IDF n-grams of an answer, fitted on the detector's rows.

Two vectorisers (scikit-learn): character 2-5-grams within word boundaries and word 1-2-grams,
each with sublinear term frequency, L2-normalised, keeping n-grams seen in at least ``MIN_DF``
fitted answers. They read the whole answer and, as two more views, its first and its last
``EDGE_WORDS`` words, because refusals announce themselves at the start ("I cannot fulfill your
request...") and partial refusals often at the end ("...the payload I'll skip"). Which views and
settings: grouped cross-validation in bench/refusal_cv.py.

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

    def encode(self, texts: list[str]):
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


__all__ = ["ANALYZERS", "EDGE_WORDS", "MIN_DF", "NgramFeatures", "VIEWS", "view"]

"""Model backends behind one narrow interface (see base.py): local transformers, OpenAI-compatible
servers, Anthropic and the embedded model, with a response cache; every part asks them for text or log-probs.
"""

from rlaif.backends.base import Backend, Completion, Failure, GenRequest, SamplingParams, ScoreRequest
from rlaif.backends.factory import BackendPool, make_backend

__all__ = ["Backend", "BackendPool", "Completion", "Failure", "GenRequest", "SamplingParams",
           "ScoreRequest", "make_backend"]

"""Model backends behind one narrow interface (see base.py)."""

from rlaif.backends.base import Backend, Completion, Failure, GenRequest, SamplingParams, ScoreRequest
from rlaif.backends.factory import BackendPool, make_backend

__all__ = ["Backend", "BackendPool", "Completion", "Failure", "GenRequest", "SamplingParams",
           "ScoreRequest", "make_backend"]

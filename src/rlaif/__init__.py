"""rlaif: align language models with AI feedback.

Stages read files and write files: generate -> judge -> build (-> train -> eval).
"""

__version__ = "0.1.0"

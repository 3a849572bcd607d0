# The two front-door commands (README):
#   make demo        set up a CPU virtualenv, then run the whole recipe on the bundled sample (tiny model)
#   make test        set up the same virtualenv, then run the whole test suite (what CI runs)
# and the inner loop:
#   make test-fast   everything that starts no verl trainer/worker, Ray, torchrun, server or pip (-m "not e2e")
# VENV picks the environment folder (.ci/run uses a fresh one); PYTEST_ARGS adds pytest options.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.guardreasoner-installed
PYTEST_ARGS ?=

export WANDB_MODE ?= disabled
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export RAY_DEDUP_LOGS ?= 0
# verl runs several processes (driver, actor, rollout server) on 2 cores: one BLAS thread each
# is several times faster than oversubscribing.
export OMP_NUM_THREADS ?= 1

.PHONY: venv demo test test-fast clean-venv

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
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

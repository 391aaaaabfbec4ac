# `make run` and `make test` each build .venv from scratch when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Main job: baseline and multi-agency runs of Essex, summary in outputs/
run: $(STAMP)
	$(BIN)/sim run scenarios/baseline.toml --events

## The test suite (fast statistical versions; REOFFSIM_FULL=1 for the long ones)
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Speed and memory benchmark (not part of the tests)
bench: $(STAMP)
	$(BIN)/sim bench

clean:
	rm -rf $(VENV) outputs/*/ .pytest_cache

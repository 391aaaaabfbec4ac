# `make run` and `make test` each build the virtual environment from scratch when it is missing or
# pyproject.toml has changed, with uv (about 40 s where pip takes 60), compiled to bytecode as pip does (where
# PYTHONDONTWRITEBYTECODE is set, as here, every process would otherwise compile numpy, pandas and the rest from
# source as it imports them: 3.5 s a process). uv reads PyPI only, not pip's settings (local wheels or indexes): where
# uv or PyPI cannot be had, pip installs instead, as it did before. PYTHON picks the interpreter (default: the machine's
# python3); each Python version gets its own environment under .venv/, e.g. `PYENV_VERSION=3.12.1 make test` uses
# .venv/py3.12.
PYTHON ?= python3
PYVER  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV   ?= .venv/py$(PYVER)
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# tests in as many processes as there are cores (at most 4: each can take 1.5 GB), a test module's tests kept together
# so that its fixtures are built once; PYTEST_PARALLEL= runs them in one process
PYTEST_PARALLEL ?= --numprocesses=auto --maxprocesses=4 --dist=loadscope
# the suite's processes write the bytecode of what they import and find none for (the package's and the tests' own
# sources: into their __pycache__ folders, git-ignored) even where PYTHONDONTWRITEBYTECODE is set, as here: else each
# of its 100-odd processes compiles the package again, and each test process rewrites every test module's asserts
# again (about 5 s of its 10 s of collecting)
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q

.PHONY: run test app test-full bench bench-readme clean venv

$(STAMP): pyproject.toml
	@test -n "$(PYVER)" || { echo "make: cannot run $(PYTHON)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv && $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
		-e '.[dev]' \
		|| { $(BIN)/python -m pip install --quiet --upgrade pip && $(BIN)/python -m pip install --quiet -e '.[dev]'; }
	touch $(STAMP)

venv: $(STAMP)

## Main job: baseline vs the multi-agency intervention, 40 paired replicates of 10 years, report -> outputs/multi_agency_vs_baseline/report.html
run: $(STAMP)
	$(BIN)/sim compare scenarios/baseline.toml scenarios/multi_agency.toml --reps 40 --by-channel --force

## The test suite (statistical tests in their fast version; `make test-full` runs the long ones)
test: $(STAMP)
	$(PYTEST) $(PYTEST_PARALLEL)

## The commissioner's what-if app at http://127.0.0.1:8765 (Ctrl-C stops it); APP_ARGS passes options to `sim app`
app: $(STAMP)
	$(BIN)/sim app $(APP_ARGS)

test-full: $(STAMP)
	REOFFSIM_FULL=1 $(PYTEST) $(PYTEST_PARALLEL)

## Speed and memory benchmark against the targets and a fixed reference workload, a few minutes (not part of the tests)
bench: $(STAMP)
	$(BIN)/sim bench

## The same, and rewrite README.md's Speed table with the figures
bench-readme: $(STAMP)
	$(BIN)/sim bench --update-readme

clean:
	rm -rf .venv .pytest_cache

# The README's commands. Everything runs from a project venv created here with python3.11.
#   make demo       create .venv, install, run an example DAG against the simulator (or the real API)
#   make test       lint, then the whole pytest suite (unit + integration)
#   make test-fast  unit tests only (no Airflow DB, no network)
#   make lint       ruff (incl. logging-format rules), ruff format --check, mypy
#   make bench      benchmarks/run.py
#   make fuzz       the response fuzzing in its deep profile (>= 10,000 generated responses)
# Variables: PYTHON (interpreter for new venvs), VENV, AIRFLOW_VERSION, PYTEST_ARGS.
# .ci/run reuses the venv rule with VENV=.venv-airflow31 AIRFLOW_VERSION=3.1.x.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
PYTEST_ARGS ?=

BIN := $(VENV)/bin
# one stamp per Airflow version: switching versions reinstalls, an unchanged pyproject.toml does not
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
INSTALL_INPUTS := pyproject.toml $(wildcard setup.cfg)
# pytest exits 5 when it collected nothing; make treats any non-zero exit as a failure, so an
# empty selection can never pass silently. -rfEs lists failures, errors and skip reasons at the end.
PYTEST := $(BIN)/python -m pytest -rfEs

.PHONY: help venv demo test test-fast lint bench fuzz clean distclean

help:
	@sed -n '2,9p' Makefile | sed 's/^# //'

venv: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' 'apache-airflow==$(AIRFLOW_VERSION)'
	@rm -f $(VENV)/.installed-airflow-*
	@touch $@

demo: venv
	$(BIN)/python scripts/demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy scripts

test: lint
	$(PYTEST) $(PYTEST_ARGS) tests

# unit tests only: tests/unit minus anything marked integration (live Airflow components)
test-fast: venv
	$(PYTEST) -m "not integration" $(PYTEST_ARGS) tests/unit

# HYPOTHESIS_PROFILE=deep multiplies the examples (tests/conftest.py fails the run under 10,000 responses)
fuzz: venv
	HYPOTHESIS_PROFILE=deep $(PYTEST) $(PYTEST_ARGS) tests/unit/test_fuzz_responses.py

bench: venv
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf .demo build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/artifacts
	find . -path ./.git -prune -o -path './.venv*' -prune -o -name __pycache__ -type d -print0 \
		| xargs -0 rm -rf

distclean: clean
	rm -rf .venv .venv-airflow31

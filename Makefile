# The README's commands. `make help` lists every target (from the `## ` comment beside it).
# Variables: PYTHON (interpreter for new venvs; default: the first of python3.13, python3.12,
# python3.11, python3 that runs and is 3.11+), VENV, AIRFLOW_VERSION, CONSTRAINTS (a pip
# constraints file applied to every install into VENV), PYTEST_ARGS, DEMO_HOME.
# .ci/run reuses these rules with other VENV / AIRFLOW_VERSION / CONSTRAINTS / PYTHON values.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

# pyenv shims of versions that are not selected exit non-zero, so they are skipped like absent ones
PYTHON ?= $(shell for py in python3.13 python3.12 python3.11 python3; do \
	$$py -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$py; break; }; done)
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
CONSTRAINTS ?=
PYTEST_ARGS ?=
# one folder per Airflow line (its metadata DB, and demo.log beside it), so lines never share a DB
DEMO_HOME ?= .demo/airflow-$(AIRFLOW_VERSION)/home

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
# The package and Airflow, nothing else (what `make demo` needs). One stamp per Airflow version:
# switching versions reinstalls, an unchanged pyproject.toml does not.
BASE_STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
# One stamp per extra of pyproject.toml (test, dev, ui, bench), each installed on top of the base.
extra = $(VENV)/.extra-$(1)
INSTALL_INPUTS := pyproject.toml $(wildcard setup.cfg) $(CONSTRAINTS)
# pytest exits 5 when it collected nothing; make treats any non-zero exit as a failure, so an
# empty selection can never pass silently. -rfEs lists failures, errors and skip reasons at the end.
PYTEST := $(BIN)/python -m pytest -rfEs

.PHONY: help venv venv-test demo test test-fast test-distributed system-test lint docs bench fuzz dist-check min-constraints check-pins clean distclean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: PYTHON=$(or $(PYTHON),<none found>) VENV=$(VENV) AIRFLOW_VERSION=$(AIRFLOW_VERSION) CONSTRAINTS=$(CONSTRAINTS)"

$(BASE_STAMP): $(INSTALL_INPUTS)
	@if [ ! -x $(BIN)/python ]; then \
		if [ -z "$(PYTHON)" ]; then \
			echo "No Python 3.11 or newer found (tried python3.13, python3.12, python3.11, python3)." >&2; \
			echo "Install one, or name it: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11" >&2; \
			exit 1; \
		fi; \
		if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then \
			echo "PYTHON=$(PYTHON) is not a working Python 3.11 or newer; pass another with PYTHON=..." >&2; \
			exit 1; \
		fi; \
		echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) -V 2>&1))"; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP) -e . 'apache-airflow==$(AIRFLOW_VERSION)'
	@rm -f $(VENV)/.installed-airflow-* $(VENV)/.extra-*
	@touch $@

$(VENV)/.extra-%: $(BASE_STAMP)
	$(PIP) -e '.[$*]' 'apache-airflow==$(AIRFLOW_VERSION)'
	@touch $@

venv: $(BASE_STAMP) $(call extra,test) $(call extra,dev) $(call extra,ui) $(call extra,bench) $(call extra,docs) ## create the venv (VENV, default .venv): Airflow, the package (editable) and every extra

venv-test: $(call extra,test) ## a venv with only the package, Airflow and the test extra (for other Python or Airflow lines)

demo: $(BASE_STAMP) ## run dags_examples/example_text_to_video.py end to end against the simulator (real API if MODELSLAB_API_KEY is set)
	$(BIN)/python scripts/demo.py --home $(DEMO_HOME)

lint: $(call extra,dev) ## ruff (incl. logging-format rules), ruff format --check, mypy, GitHub workflows (schema + zizmor), pre-commit config
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy scripts
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/zizmor --offline --quiet --config .github/zizmor.yml .github/workflows/
	$(BIN)/pre-commit validate-config .pre-commit-config.yaml

# tests/distributed is its own target (a whole deployment): see test-distributed
# Integration tests run one at a time: each starts real Airflow components, and two stacks side by
# side on two cores make Airflow itself race (an executor event arriving after the task was queued
# again fails the try). The unit tests have no such components and run in two processes.
test: lint $(call extra,test) $(call extra,ui) $(call extra,bench) ## lint, then the whole pytest suite (unit + integration; not tests/distributed)
	$(PYTEST) --ignore=tests/distributed --ignore=tests/unit $(PYTEST_ARGS) tests
	$(PYTEST) -n 2 --dist loadfile $(PYTEST_ARGS) tests/unit

# unit tests only: tests/unit minus anything marked integration (live Airflow components)
test-fast: $(call extra,test) ## unit tests only (no Airflow DB, no network)
	$(PYTEST) -m "not integration" $(PYTEST_ARGS) tests/unit

# issue 14: a real deployment (Debian's PostgreSQL and Redis, installed by the suite when missing,
# which needs root; Airflow's Celery and Postgres providers in the venv). Skips outside CI without
# root; fails in CI (CI=true) when a piece is missing.
DIST_STAMP := $(VENV)/.installed-distributed-$(AIRFLOW_VERSION)
$(DIST_STAMP): $(call extra,test)
	$(PIP) -e '.[test,distributed]' 'apache-airflow==$(AIRFLOW_VERSION)'
	@touch $@

test-distributed: $(DIST_STAMP) ## PostgreSQL + Redis + CeleryExecutor + two triggerers (as root; tests/distributed)
	$(PYTEST) -m distributed $(PYTEST_ARGS) tests/distributed

# The documentation site: Markdown pages (myst-parser) and the API reference (sphinx-autoapi), HTML
# into build/docs. -W --keep-going: every warning (a broken link or anchor, a missing include, a
# page outside the toctree) fails the build, and all of them are listed; -n: so does a reference
# to a name that does not resolve. No network (no intersphinx).
docs: $(call extra,docs) ## build the documentation site into build/docs (any warning fails it)
	@rm -rf build/docs build/docs-doctrees
	$(BIN)/sphinx-build -q -W --keep-going -n -b html -d build/docs-doctrees docs build/docs
	@echo "docs: open build/docs/index.html"

# tests/system: DAGs against the real ModelsLab API (they spend credits). Without MODELSLAB_API_KEY
# it says so in one line and exits 0; MODELSLAB_SYSTEM_BATCH=1 adds the batch of 3. Never in .ci/run.
system-test: $(call extra,test) ## the real-API DAGs of tests/system (needs MODELSLAB_API_KEY; spends credits)
	@if [ -z "$${MODELSLAB_API_KEY:-}" ]; then \
		echo "make system-test: MODELSLAB_API_KEY is not set, so nothing ran (tests/system spends real credits)"; \
	else \
		$(PYTEST) -p no:cacheprovider $(PYTEST_ARGS) tests/system; \
	fi

# HYPOTHESIS_PROFILE=deep multiplies the examples (tests/conftest.py fails the run under 10,000 responses)
fuzz: $(call extra,test) ## the response fuzzing in its deep profile (>= 10,000 generated responses)
	HYPOTHESIS_PROFILE=deep $(PYTEST) $(PYTEST_ARGS) tests/unit/test_fuzz_responses.py

bench: $(call extra,bench) ## benchmarks/run.py
	$(BIN)/python benchmarks/run.py

dist-check: $(call extra,dev) ## build sdist + wheel, twine check, run the built wheel in a fresh venv
	DIST_PYTHON="$(or $(PYTHON),python3)" AIRFLOW_VERSION=$(AIRFLOW_VERSION) scripts/check_dist.sh $(BIN)/python

# the declared floors of pyproject.toml's dependencies as == pins (CONSTRAINTS=build/min-constraints.txt)
build/min-constraints.txt: pyproject.toml scripts/min_constraints.py
	@mkdir -p build
	$(or $(wildcard $(BIN)/python),$(PYTHON)) scripts/min_constraints.py > $@

min-constraints: build/min-constraints.txt ## write build/min-constraints.txt: the declared dependency floors as pins
	@cat $<

check-pins: $(call extra,test) ## fail unless VENV holds exactly the versions pinned in CONSTRAINTS
	$(BIN)/python scripts/min_constraints.py --check $(or $(CONSTRAINTS),$(error check-pins needs CONSTRAINTS=file))

clean: ## remove build output, caches and demo homes (keeps the venvs)
	rm -rf .demo build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/artifacts
	find . -path ./.git -prune -o -path './.venv*' -prune -o -name __pycache__ -type d -print0 \
		| xargs -0 rm -rf

distclean: clean ## clean, and remove every .venv*
	rm -rf .venv .venv-*

# Each target bootstraps the local virtualenv by itself, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The SAM CLI and cfn-lint live in their own virtualenv: their pins must not meet the project's.
SAM_VENV := .venv-sam
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)

.PHONY: demo test lint bench clean sam

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==$(CFN_LINT_VERSION)
	touch $(SAM_STAMP)

sam: $(SAM_STAMP)

demo: $(STAMP)
	$(BIN)/node-fleet demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: lint sam
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV) $(SAM_VENV) build *.egg-info src/*.egg-info

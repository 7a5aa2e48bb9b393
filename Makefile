# The two set-up commands of the README. Both create .venv on first use and install cartrisk into it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: quickstart test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## The main job end to end on the simulated registry.
quickstart: $(STAMP)
	$(BIN)/cartrisk quickstart

## The test suite (fast tests; about 10 minutes on 2 cores at most).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

## The long checks as well.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

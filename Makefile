# Vigil — developer entry points. `make demo` and `make test` work on a fresh machine:
# each creates .venv (Python >= 3.11) and installs the project with its test extras first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/vigil-listener: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/vigil-listener
	mkdir -p run
	$(BIN)/vigild -n -c conf/demo.conf

test: $(BIN)/vigil-listener
	$(BIN)/pytest

lint: $(BIN)/vigil-listener
	$(BIN)/ruff check manager listeners healthchecks tests bench
	$(BIN)/ruff format --check manager listeners healthchecks tests bench
	$(BIN)/mypy --strict manager listeners healthchecks tests

bench: $(BIN)/vigil-listener
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info

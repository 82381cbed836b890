# Vigil — developer entry points. `make demo` and `make test` work on a fresh machine:
# each creates .venv (Python >= 3.11) and installs the project with its test extras first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench bytecode clean

$(BIN)/vigil-listener: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# An editable install leaves our modules uncompiled (pip compiles a normal install); with
# PYTHONDONTWRITEBYTECODE set, every vigild/vigilctl/vigil-listener start would compile them.
# Python ignores a .pyc older than its source, so a stale one only costs that compile again.
bytecode: $(BIN)/vigil-listener
	$(BIN)/python -m compileall -q manager listeners healthchecks

demo: bytecode
	mkdir -p run
	$(BIN)/vigild -n -c conf/demo.conf

test: bytecode
	$(BIN)/pytest

lint: $(BIN)/vigil-listener
	$(BIN)/ruff check manager listeners healthchecks tests bench
	$(BIN)/ruff format --check manager listeners healthchecks tests bench
	$(BIN)/mypy --strict manager listeners healthchecks tests

bench: bytecode
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info

# `make demo`: the main job (the comparison report) on the shipped MNIST digits. `make test`: the test suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

demo: $(BIN)/activate
	$(BIN)/pip install -q -c constraints.txt .
	$(BIN)/comparison report --out report

test: $(BIN)/activate
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	$(BIN)/python -m pytest -q

.PHONY: demo test

# `make demo`: the main job on the shipped MNIST digits. `make test`: the test suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

demo: $(BIN)/activate
	$(BIN)/pip install -q -c constraints.txt .
	$(BIN)/bornmachine train --data mnist5k --max-bond 32 --sweeps 4 --out runs/demo

test: $(BIN)/activate
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	$(BIN)/python -m pytest -q

.PHONY: demo test

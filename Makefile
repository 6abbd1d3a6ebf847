# The README's two set-up commands.  Each creates .venv itself from a bare Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the package metadata changes.
$(VENV)/.installed: setup.cfg setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m l2hmc_theano_flags  # the start-up file that lets `import pymc3` come first
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python -m l2hmc_theano.demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# Everything but the long statistical tests (marked slow); CI runs `make test`.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

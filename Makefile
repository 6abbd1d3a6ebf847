# The README's two set-up commands.  Each creates its virtual environments itself: .venv (PyMC3 on
# Theano) from a bare Python 3.11, and for the tests .venv-pymc (today's PyMC on PyTensor) from a
# bare Python 3.12 (pymc 6 needs it; pyenv's, where installed).
PYTHON ?= python3
PYTHON_PYMC ?= $(or $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12))),python3.12)
VENV   := .venv
BIN    := $(VENV)/bin
PVENV  := .venv-pymc
PBIN   := $(PVENV)/bin

.PHONY: demo test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the package metadata changes.
$(VENV)/.installed: setup.cfg setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[pymc3,test]'
	$(BIN)/python -m l2hmc_theano_flags  # the start-up file that lets `import pymc3` come first
	touch $@

$(PBIN)/python:
	$(PYTHON_PYMC) -m venv $(PVENV)
	$(PBIN)/python -m pip install --quiet --upgrade pip

$(PVENV)/.installed: setup.cfg setup.py | $(PBIN)/python
	$(PBIN)/python -m pip install --quiet -e '.[pymc,test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python -m l2hmc_theano.demo

# The suite on PyMC3 (Theano), then what of it runs on today's PyMC (PyTensor): the symbolic core.
test: $(VENV)/.installed $(PVENV)/.installed
	$(BIN)/python -m pytest
	$(PBIN)/python -m pytest

# Everything but the long statistical tests (marked slow); CI runs `make test`.
test-fast: $(VENV)/.installed $(PVENV)/.installed
	$(BIN)/python -m pytest -m "not slow"
	$(PBIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) $(PVENV) build src/*.egg-info .pytest_cache

# The two commands of the README: `make run` and `make test`. Everything installs from this repo's files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test reliability install corpus index clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet -e ".[model,test]"
	touch $(STAMP)

install: $(STAMP)

corpus: install
	$(VENV)/bin/poembot corpus fetch
	$(VENV)/bin/poembot corpus build --if-stale

index: corpus
	$(VENV)/bin/poembot index build --if-stale

run: index
	$(VENV)/bin/poembot run

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The robustness suite alone, writing its figures to docs/reliability.md (make test writes runs/).
reliability: install
	POEMBOT_RELIABILITY_REPORT=docs/reliability.md $(VENV)/bin/pytest tests/robustness $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

# The two commands of the README: `make run` and `make test`. Everything installs from this repo's files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
RELIABILITY_REPORT ?= docs/reliability.md

.PHONY: run test reliability install corpus index fonts cards clean-venv

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

# The card fonts (npm and Debian packages, checksum-verified, cached in the data dir; a no-op once there).
fonts: install
	$(VENV)/bin/poembot font fetch

# The example cards in docs/cards, from the shipped model's poems.
cards: fonts
	$(VENV)/bin/poembot card examples --out docs/cards

# Serves /poem as soon as the worker has the model; the fonts, the corpus and the /similar index
# (`make fonts index` by hand) are fetched and built by `poembot run`'s background job meanwhile.
run: install
	$(VENV)/bin/poembot run

# Everything but the long load and fault runs (marker `reliability`), in TEST_WORKERS processes
# (pytest-xdist; a file's tests stay in one, so its fixtures are built once). The suite is half
# waiting on processes and sockets, so on two cores three workers beat two (and four); TensorFlow
# runs one thread per op in each, since its idle pool threads spin and steal the others' CPU, and
# without oneDNN, whose kernels cost ~10% more CPU than TF's own at the tests' toy sizes.
# The slowest tests are listed at the end of every run, so each CI log says where the time goes.
TEST_WORKERS ?= 3
test: install fonts
	TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 TF_ENABLE_ONEDNN_OPTS=0 \
		$(VENV)/bin/pytest -m "not reliability" \
		-n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

# The robustness suite with its load and fault runs, writing its figures to docs/reliability.md
# (make test writes runs/reliability.md). CI runs it after make test.
reliability: install fonts
	POEMBOT_RELIABILITY_REPORT=$(RELIABILITY_REPORT) $(VENV)/bin/pytest tests/robustness $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

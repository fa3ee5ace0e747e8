# make run: create .venv, install, serve the app on http://localhost:8501
# make test: install the test extras too, then lint and run the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

REPLICAS ?= 2

.PHONY: run class test lint docs install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt $(VENV)/.installed
	$(BIN)/python -m pip install -r requirements-test.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/streamlit run app.py --server.port $(PORT)

# A class of hundreds: REPLICAS app processes behind nginx on PORT, Redis for the rooms (Debian: nginx redis-server).
class: install
	$(BIN)/python -m explorer class --replicas $(REPLICAS) --port $(PORT)

# The documentation site into site/ (the same build runs in the suite: tests/test_docs.py).
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# A test file at a time in each of pytest-xdist's workers, the longest files first (tests/conftest.py), one worker
# more than the cores (at most 5): a third of the suite waits on app servers, browsers and child processes, and a
# worker running a browser test is mostly waiting on its app (two such took 116% of 2 cores). The real-browser tests
# run beside the rest: each waits on what it asserts, a click or key press on what it changes, not on a quiet machine.
WORKERS ?= $(shell $(PYTHON) -c "import os; print(min((os.cpu_count() or 1) + 1, 5))")

test: install-test lint
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV)

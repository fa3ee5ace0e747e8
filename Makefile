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

# A test file at a time in each of pytest-xdist's workers (one a core, at most 4; the suite waits on servers and
# child processes much of its time), then the real-browser tests, a file (and its app server) in each of two workers:
# they wait on their apps much of their time (116% of 2 cores), and their clicks and key presses wait on what they change.
test: install-test lint
	$(BIN)/python -m pytest -m "not browser" -n auto --maxprocesses=4 --dist loadfile
	$(BIN)/python -m pytest -m browser -n 2 --dist loadfile

clean:
	rm -rf $(VENV)

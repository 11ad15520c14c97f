# Two commands for a fresh machine:
#   make run   - create .venv, install, build the demo store, serve the web app on http://127.0.0.1:5000
#   make test  - create .venv, install the test dependencies, lint (ruff), type-check (mypy), run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= instance/geo_ibm.gpkg
DEMO_EVENTS ?= 20000

.PHONY: run test venv install install-test demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .

install-test: install
	$(BIN)/pip install --quiet -r requirements-test.txt

demo: install
	@if [ ! -f "$(STORE)" ]; then $(BIN)/geo-ibm --store "$(STORE)" demo --events $(DEMO_EVENTS) --seed 1; fi

run: demo
	$(BIN)/geo-ibm --store "$(STORE)" serve --host 127.0.0.1 --port 5000

test: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) instance .pytest_cache

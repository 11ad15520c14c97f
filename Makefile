# Two commands for a fresh machine:
#   make run   - create .venv, install, build the demo store, serve the web app on http://127.0.0.1:5000
#   make run-postgis - the same on a throwaway PostGIS server with two app processes (ports 5000, 5001)
#   make test  - create .venv, install the test dependencies, lint (ruff), type-check (mypy), run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= instance/geo_ibm.gpkg
DEMO_EVENTS ?= 20000
# pytest-xdist processes for `make test` (each starts its own PostgreSQL server when a test needs one)
TEST_WORKERS ?= 2

.PHONY: run run-postgis test venv install install-test demo messages clean

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

# The multi-process deployment on a throwaway PostgreSQL + PostGIS server (Debian packages postgresql and
# postgresql-15-postgis-3): the demo store served by two waitress processes, http://127.0.0.1:5000 and :5001.
# Ctrl+C stops the app and the server and removes its data (docs/POSTGIS.md: a real server).
run-postgis: install
	$(BIN)/python -m geo_ibm.store.pg_local run --events $(DEMO_EVENTS) --port 5000 --port 5001

test: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Interface messages (see babel.cfg): extract them into the template, merge the template into each
# language's catalog (new messages come in untranslated, changed ones fuzzy), compile the catalogs.
# Translate the empty and fuzzy entries of the .po files, then run it again: it recompiles the .mo.
# pybabel compile takes the "%" of labels such as "Hot spot, 99% confidence" for a placeholder and
# exits 1 although it writes the .mo, hence the "-"; tests/test_i18n.py checks the placeholders.
TRANSLATIONS := webapp/translations

messages: install
	$(BIN)/pybabel extract --mapping-file babel.cfg --add-comments Translators: --add-location file \
		--project geo_ibm --output-file $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel update --input-file $(TRANSLATIONS)/messages.pot --output-dir $(TRANSLATIONS)
	-$(BIN)/pybabel compile --directory $(TRANSLATIONS) --statistics

clean:
	rm -rf $(VENV) instance .pytest_cache

# Bulk SMS Studio. `make run` starts the app; `make test` runs every test.
# Both set up everything they need on a fresh machine with Python 3.11 and pip.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
PORT ?= 8501
DEMO := data/demo/contacts.csv

.PHONY: run test bench lint setup demo browser screenshots clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(RUN_STAMP) $@

$(DEMO): scripts/make_demo_data.py | $(RUN_STAMP)
	$(BIN)/python scripts/make_demo_data.py

setup: $(RUN_STAMP)

demo: $(DEMO)

# The app on the embedded defaults: data/studio.duckdb and the simulator gateway.
run: $(RUN_STAMP) $(DEMO)
	$(BIN)/streamlit run app.py --server.headless true --server.address 127.0.0.1 \
		--server.port $(PORT) --browser.gatherUsageStats false

# Debian's Chromium for the browser journey test (and an emoji font for its screenshots),
# installed only when missing.
browser:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends \
			chromium fonts-noto-color-emoji; }

test: $(DEV_STAMP) $(DEMO) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(DEV_STAMP) $(DEMO)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

screenshots: $(DEV_STAMP) browser
	$(BIN)/python scripts/screenshots.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) data/demo data/*.duckdb data/*.duckdb.wal data/*.duckdb.journal*

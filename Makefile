# The README's two commands are `make run` and `make test`; everything else is a helper.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SOURCES ?= ../shared/data
DEMO    := data/raw/mv-2021-06
SEED    ?= 20210630

.PHONY: run test bench lint demo-data clean browser-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pipelines.precompile  # numba kernels compiled now, not in the first run (cached on disk)
	touch $(STAMP)

# Builds the MV demo inputs from the real open data if they are missing (never committed).
$(DEMO)/.complete: | $(STAMP)
	$(BIN)/bbcov synth --scope mv --vintage 2021-06 --sources $(SOURCES) --out $(DEMO) --seed $(SEED)

demo-data: $(DEMO)/.complete

run: $(STAMP) demo-data
	$(BIN)/bbcov run --config $(DEMO)/bbcov.toml || test $$? -eq 3  # 3 = nothing changed since the last run

# Linter and type checker first: a lint or type error fails the run before the (slow) tests start.
test: lint browser-deps
	$(BIN)/python -m pytest -q -n 3 --dist loadfile  # whole files per worker (module fixtures); 3 workers fill the cores while one waits on a browser, server or subprocess

# The bench extra: the DuckDB competitor's packages (not needed by bbcov itself).
$(VENV)/.bench-installed: pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(STAMP) $(VENV)/.bench-installed demo-data
	$(BIN)/python -m benchmarks.run

# Headless Chromium for the browser tests and `bbcov report --pdf`, poppler-utils (pdfinfo, pdftotext) for the
# print tests (Debian packages; needs root).
browser-deps:
	@(command -v chromium && command -v pdftotext) >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver poppler-utils >/dev/null)

lint: $(STAMP)
	$(BIN)/ruff check coverage pipelines demo tests benchmarks
	$(BIN)/python -m mypy  # files and strictness: [tool.mypy] in pyproject.toml

clean:
	rm -rf data/processed/runs data/processed/latest reports/latest reports/run-*

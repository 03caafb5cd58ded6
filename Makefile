# painanx: two commands on a fresh machine (Python 3.11, pip, gcc):
#   make report   build reports/ from the embedded defaults (synthetic world + HELP study)
#   make test     run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.painanx-installed

.PHONY: install report test lint format clean benchmarks lab

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@# axe-core (npm) for the browser accessibility test; never vendored into git
	if command -v npm >/dev/null 2>&1; then npm install --silent --no-save --prefix .cache/axe axe-core@4 || echo "note: axe-core not installed (the accessibility test needs it)"; fi
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(BIN)/painanx run

test: $(STAMP)
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

benchmarks: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f; done

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) reports/* .painanx-cache build *.egg-info

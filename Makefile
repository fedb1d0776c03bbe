# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN    := $(VENV)/.installed-run
DEV    := $(VENV)/.installed-test

.PHONY: demo test lint fmt bench browser clean

# What the demo needs: the package and its runtime dependencies.
$(RUN): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN)

# What the tests and the linters need on top.
$(DEV): $(RUN) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(DEV)

# Debian's chromium drives the browser tests (Playwright uses it; it downloads no browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(RUN)
	./scripts/demo.sh

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict newsletter tests benchmarks
	$(BIN)/lint-imports

fmt: $(DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(DEV) browser lint
	$(BIN)/python -m pytest -q

bench: $(DEV)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache test-artifacts

# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN    := $(VENV)/.installed-run
DEV    := $(VENV)/.installed-test

PO     := $(wildcard newsletter/locale/*/LC_MESSAGES/newsletter.po)

.PHONY: demo test lint fmt bench browser sink clean catalogs messages

# What the demo needs: the package and its runtime dependencies. Installing runs
# hatch_build.py, which compiles the message catalogs (.po) into .mo files.
$(RUN): pyproject.toml hatch_build.py $(PO)
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

# Postfix's smtp-sink is the benchmark's receiving end. Installing Debian's postfix must not leave
# a mail server running here: stop and disable the daemon the package may have started.
sink:
	@command -v smtp-sink >/dev/null 2>&1 || test -x /usr/sbin/smtp-sink || { \
	  echo "Installing Debian's postfix for smtp-sink (the daemon is stopped again)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null; \
	  postfix stop >/dev/null 2>&1 || true; \
	  systemctl disable --now postfix >/dev/null 2>&1 || true; }

demo: $(RUN)
	./scripts/demo.sh

# The compiled catalogs, again after a .po file changed (the install compiles them too).
catalogs: $(DEV)
	$(BIN)/python scripts/catalogs.py compile

# After adding or changing a message: update the catalogs, then translate what `missing` lists.
messages: $(DEV)
	$(BIN)/python scripts/catalogs.py update
	$(BIN)/python scripts/catalogs.py missing

lint: $(DEV) catalogs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict newsletter tests benchmarks scripts/catalogs.py
	$(BIN)/lint-imports

fmt: $(DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(DEV) browser lint
	$(BIN)/python -m pytest -q

# `make bench`: SQLite (DKIM variants, the process and thread floors), PostgreSQL (send + one
# worker; skipped with a note when the server is not reachable), the web under a send, peak
# memory at 1,000,000 readers (about 6 minutes; QUICK=1 leaves it out), then issue 11's targets.
BENCH_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
bench: $(DEV) sink
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.run --database-url '$(BENCH_DATABASE_URL)'
	$(BIN)/python -m benchmarks.web_load
	$(if $(QUICK),,$(BIN)/python -m benchmarks.run --subscribers 1000000 --variants none --no-floor)
	$(BIN)/python -m benchmarks.summary

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache test-artifacts

# Two commands do all set-up on a fresh machine:
#   make demo   the main job on the local sandbox
#   make test   the test suite
# Both create .venv and install slm-sync with its dev extra on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/slm-sync demo

test: $(STAMP)
	$(BIN)/pytest

# The whole crash matrix (every write boundary x Jira and ServiceNow); CI runs a reduced set.
.PHONY: crash-full
crash-full: $(STAMP)
	SLM_SYNC_CRASH_FULL=1 $(BIN)/pytest tests/stress/test_crash.py tests/stress/test_creates_in_doubt.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict connectors mapping review sync config sandbox
	$(BIN)/hadolint Dockerfile

# All benchmarks, each in its own process; writes bench/results.json (BENCH_ARGS=--quick: minutes)
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache

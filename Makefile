# Two set-up commands: `make run` (the gateway on its embedded simulator) and `make test`.
# `make run` installs the runtime only (seconds on a warm package cache); `make test` adds the
# development tools (pytest, hypothesis, mypy, ruff) on top.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
PIP := $(BIN)/pip install --disable-pip-version-check -q

.PHONY: run test lint venv venv-run clean mutants

# Runtime only: the gateway and its libraries, no development tools.
$(RUN_STAMP): pyproject.toml scripts/venv
	@echo "installing the gateway's runtime into $(VENV)/ (first run only, a few seconds) ..."
	@PYTHON=$(PYTHON) VENV=$(VENV) ./scripts/venv -e .
	@touch $(RUN_STAMP)

# Everything the tests need: the runtime, the dev tools and the bundled example plugin.
$(STAMP): pyproject.toml plugins/bms-gateway-jsonl/pyproject.toml scripts/venv
	@echo "installing the gateway and its development tools into $(VENV)/ ..."
	@PYTHON=$(PYTHON) VENV=$(VENV) ./scripts/venv -e '.[dev]' -e plugins/bms-gateway-jsonl
	@touch $(STAMP) $(RUN_STAMP)

venv-run: $(RUN_STAMP)

venv: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/bms-gateway run $(ARGS)

test: $(STAMP)
	./scripts/ensure-test-tools
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy --strict gateway
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy --strict gateway
	$(BIN)/lint-imports --no-cache

# Mutation testing of gateway/control/ (long; not part of `make test` or CI). Results and
# surviving mutants: docs/testing.md. MODULES=... limits it (default: the safety deciders).
mutants: $(STAMP)
	$(PIP) "cosmic-ray>=8.3"
	./scripts/mutants $(MODULES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .mutants

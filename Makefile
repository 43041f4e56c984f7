# Two set-up commands: `make run` (the gateway on its embedded simulator) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint venv clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e plugins/bms-gateway-jsonl
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/bms-gateway run $(ARGS)

test: $(STAMP)
	./scripts/ensure-test-tools
	$(BIN)/ruff check gateway tests
	$(BIN)/mypy --strict gateway
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gateway tests
	$(BIN)/mypy --strict gateway
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

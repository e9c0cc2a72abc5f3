# Two targets a newcomer needs: `make serve` and `make test`. Both create .venv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: serve test lint agents bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Coding agents and clients the e2e tests drive (Claude Code, Codex, the ollama npm client),
# pinned in tests/agents/package-lock.json.
AGENTS := tests/agents/node_modules/.installed

$(AGENTS): tests/agents/package.json tests/agents/package-lock.json
	@command -v npm >/dev/null || { echo "make test needs node and npm for tests/agents" \
		"(Debian: apt-get install nodejs npm)" >&2; exit 1; }
	npm ci --prefix tests/agents --no-audit --no-fund --engine-strict=false
	touch $@

agents: $(AGENTS)

serve: $(BIN)/.installed
	$(BIN)/gateway serve $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint $(AGENTS)
	$(BIN)/pytest $(ARGS)

bench: $(BIN)/.installed
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info tests/agents/node_modules

# Task runner. The two commands of the README:
#   make demo   - set everything up and watch simulated IPS jobs flow through a real Kafka broker
#   make test   - set everything up and run the whole test suite (starts its own broker)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The demo needs only the runtime dependencies; the dev stamp implies them.
RUNTIME := $(VENV)/.runtime

.PHONY: demo test lint typecheck check bench chaos kafka-start kafka-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP) $(RUNTIME)

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

demo: $(RUNTIME)
	$(BIN)/streamer demo

test: $(STAMP)
	$(BIN)/streamer kafka fetch
	$(BIN)/ruff check streamer tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check streamer tests bench
	$(BIN)/ruff format --check streamer tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --kills 20

kafka-start: $(STAMP)
	$(BIN)/streamer kafka start

kafka-stop: $(STAMP)
	$(BIN)/streamer kafka stop

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

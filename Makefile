# Task runner. The two commands of the README:
#   make demo   - set everything up and watch simulated IPS jobs flow through a real Kafka broker
#   make test   - set everything up and run the whole test suite (starts its own broker)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The demo needs only the runtime dependencies; the dev stamp implies them.
RUNTIME := $(VENV)/.runtime

# Checkers the tests run when they can have them (they skip cleanly otherwise):
#   promtool        - Debian's prometheus package; only the binary, taken from the .deb
#   systemd-analyze - package systemd (usually present)
CACHE    := $(or $(STREAMER_CACHE_DIR),.cache)
PROMTOOL := $(CACHE)/tools/promtool

.PHONY: demo test tools lint typecheck check bench bench-quick chaos group-chaos kafka-start kafka-stop clean

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
	$(MAKE) tools || echo "make: promtool or systemd-analyze unavailable: their tests will skip"
	$(BIN)/streamer kafka fetch
	$(BIN)/ruff check streamer tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	PROMTOOL=$(abspath $(PROMTOOL)) $(BIN)/python -m pytest -q

tools: $(PROMTOOL)
	@command -v systemd-analyze >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  apt-get install -y -qq --no-install-recommends systemd >/dev/null; } || \
	  echo "make: no systemd-analyze (package systemd); the unit checks will skip"

# promtool alone: on PATH already, or extracted from Debian's prometheus package (no server
# installed, nothing started). apt-get update only when the package lists lack it.
$(PROMTOOL):
	@mkdir -p $(@D)
	@if command -v promtool >/dev/null 2>&1; then ln -sf "$$(command -v promtool)" $@; else \
	  tmp=$$(mktemp -d) && cd $$tmp && \
	  { apt-get download prometheus 2>/dev/null || \
	    { apt-get update -qq && apt-get download prometheus; }; } && \
	  dpkg-deb -x prometheus_*.deb root && cp root/usr/bin/promtool $(abspath $@) && \
	  cd / && rm -rf $$tmp; fi
	@$@ --version | head -1

lint: $(STAMP)
	$(BIN)/ruff check streamer tests bench
	$(BIN)/ruff format --check streamer tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Every benchmark at reduced scale (a few minutes): to try the command, not for the figures.
bench-quick: $(STAMP)
	$(BIN)/python bench/run_all.py --quick

chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --kills 20

group-chaos: $(STAMP)
	$(BIN)/python bench/group_chaos.py --kills 20

kafka-start: $(STAMP)
	$(BIN)/streamer kafka start

kafka-stop: $(STAMP)
	$(BIN)/streamer kafka stop

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

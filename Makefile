# Boothby's developer commands. `make run` and `make test` do all the set-up on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
JS_DIR := boothby-node-runtime/src/boothby_node/js
DISTRIBUTIONS := boothby-core boothby-node-runtime boothby-redis boothby-rabbitmq boothby-kafka examples/boothby-python-runtime
CONFIG ?= boothby.toml

.PHONY: install run test test-node brokers brokers-stop bench bench-smoke clean

install: $(VENV)/.installed

$(VENV)/.installed: $(foreach d,$(DISTRIBUTIONS),$(d)/pyproject.toml) requirements-test.txt $(JS_DIR)/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20 or later is needed: install it (Debian: apt-get install nodejs npm)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	cd $(JS_DIR) && npm ci --no-audit --no-fund
	$(BIN)/pip install --quiet $(foreach d,$(DISTRIBUTIONS),-e ./$(d)) -r requirements-test.txt
	touch $@

run: install
	$(BIN)/boothby -c $(CONFIG) up

test: install brokers
	cd $(JS_DIR) && npm test
	$(BIN)/python -m pytest

brokers:
	scripts/brokers/all.sh start

brokers-stop:
	scripts/brokers/all.sh stop

# The full benchmark (about 12 minutes); it rewrites bench/results/latest.json and docs/benchmarks.md.
# Options go through BENCH_ARGS, for example: make bench BENCH_ARGS="--rounds 3 --duration 2".
bench: install brokers
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A --quick run (about 20 s) of Boothby (embedded) and the bare-Node limit: checks the harness, not the speed.
bench-smoke: install
	$(BIN)/python -m pytest tests/test_bench_smoke.py

clean:
	rm -rf $(VENV) $(JS_DIR)/node_modules

# libdat: build, test, bench, demo.
#   make demo    run libdat's main job on this machine (two stores, a log, a sparse verified read)
#   make test    every suite; ends with one line "test-all: N passed, N failed"
#   make bench   libdat and the JavaScript reference on the same workloads, with ratios
SHELL         := /bin/bash
.DEFAULT_GOAL := build
.NOTPARALLEL:

CARGO   ?= cargo
NPM     ?= npm
NODE    ?= node
INTEROP := tests/interop

.PHONY: build test rust-test lint interop-deps bench demo clean

build:
	$(CARGO) build --workspace

## interop-deps: the pinned JavaScript reference (hypercore 11) from the committed lockfile
interop-deps: $(INTEROP)/node_modules/.package-lock.json
$(INTEROP)/node_modules/.package-lock.json: $(INTEROP)/package-lock.json
	cd $(INTEROP) && $(NPM) ci --no-audit --no-fund

test: interop-deps
	scripts/test-all.sh

rust-test:
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: log workloads, then replication over loopback TCP (JS/libdat writer -> JS/libdat reader),
## then the scheduler simulator's report. BENCH_ARGS=--quick divides the block counts by 10.
BENCH_DIR := target/bench
BENCH_HOST = $$(date -u +%Y-%m-%d), $$(nproc) cores, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
bench: interop-deps
	mkdir -p $(BENCH_DIR)
	$(CARGO) bench -p dat-core --bench log --no-run
	$(CARGO) bench -p dat-core --bench replication --no-run
	$(CARGO) build --release -p dat-core --example sim_report
	$(NODE) $(INTEROP)/bench.js $(BENCH_ARGS) > $(BENCH_DIR)/js.jsonl
	$(CARGO) bench -p dat-core --bench log -- $(BENCH_ARGS) > $(BENCH_DIR)/libdat.jsonl
	$(NODE) $(INTEROP)/repl-bench.js $(BENCH_ARGS) > $(BENCH_DIR)/repl-js.jsonl
	NODE=$(NODE) $(CARGO) bench -p dat-core --bench replication -- $(BENCH_ARGS) > $(BENCH_DIR)/repl-libdat.jsonl
	$(CARGO) run --release -p dat-core --example sim_report > $(BENCH_DIR)/sim.md
	@echo
	@echo "## log benchmarks, $(BENCH_HOST)"
	@python3 scripts/bench-table.py $(BENCH_DIR)/js.jsonl $(BENCH_DIR)/libdat.jsonl
	@echo
	@echo "## replication benchmarks, $(BENCH_HOST), node $$($(NODE) --version)"
	@python3 scripts/bench-table.py $(BENCH_DIR)/repl-js.jsonl $(BENCH_DIR)/repl-libdat.jsonl
	@echo
	@cat $(BENCH_DIR)/sim.md

demo:
	$(CARGO) run --release -p dat-core --example demo

clean:
	$(CARGO) clean
	rm -rf $(INTEROP)/node_modules

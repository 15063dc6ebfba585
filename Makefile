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
## then the drive workloads (imports, stat, reads, cursor, peak memory; source data made once in
## target/bench/drive-src*), then the scheduler simulator's report. BENCH_ARGS=--quick divides the
## block and file counts by 10 (and the drive's 1 GiB file is 100 MiB).
BENCH_DIR := target/bench
BENCH_HOST = $$(date -u +%Y-%m-%d), $$(nproc) cores, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
bench: interop-deps
	mkdir -p $(BENCH_DIR)
	$(CARGO) bench -p dat-core --bench log --no-run
	$(CARGO) bench -p dat-core --bench replication --no-run
	$(CARGO) bench -p dat-core --bench drive --no-run
	$(CARGO) build --release -p dat-core --example sim_report
	$(NODE) $(INTEROP)/bench.js $(BENCH_ARGS) > $(BENCH_DIR)/js.jsonl
	$(CARGO) bench -p dat-core --bench log -- $(BENCH_ARGS) > $(BENCH_DIR)/libdat.jsonl
	$(NODE) $(INTEROP)/repl-bench.js $(BENCH_ARGS) > $(BENCH_DIR)/repl-js.jsonl
	NODE=$(NODE) $(CARGO) bench -p dat-core --bench replication -- $(BENCH_ARGS) > $(BENCH_DIR)/repl-libdat.jsonl
	$(NODE) $(INTEROP)/drive-bench.js $(BENCH_ARGS) > $(BENCH_DIR)/drive-js.jsonl
	$(CARGO) bench -p dat-core --bench drive -- $(BENCH_ARGS) > $(BENCH_DIR)/drive-libdat.jsonl
	$(CARGO) run --release -p dat-core --example sim_report > $(BENCH_DIR)/sim.md
	@echo
	@echo "## log benchmarks, $(BENCH_HOST)"
	@python3 scripts/bench-table.py $(BENCH_DIR)/js.jsonl $(BENCH_DIR)/libdat.jsonl
	@echo
	@echo "## replication benchmarks, $(BENCH_HOST), node $$($(NODE) --version)"
	@python3 scripts/bench-table.py $(BENCH_DIR)/repl-js.jsonl $(BENCH_DIR)/repl-libdat.jsonl
	@echo
	@echo "## drive benchmarks, $(BENCH_HOST), node $$($(NODE) --version), hyperdrive 13.3.4"
	@python3 scripts/bench-table.py $(BENCH_DIR)/drive-js.jsonl $(BENCH_DIR)/drive-libdat.jsonl
	@echo
	@cat $(BENCH_DIR)/sim.md

## demo: libdat's main job with the dat command: share a folder, read it from another peer
demo:
	$(CARGO) build --release -p dat-cli
	scripts/demo.sh target/release/dat

clean:
	$(CARGO) clean
	rm -rf $(INTEROP)/node_modules

# ---------------------------------------------------------------------------------------- C ABI
# ffi        libdat.so / libdat.a (debug) from ffi/ (package dat-ffi)
# header     regenerates include/dat.h with the pinned cbindgen (0.29.4)
# check-header  fails when include/dat.h is stale (regenerates to a temp file and diffs)
# c-build    builds tests/c/test_*.c against libdat.so (rpath) and against libdat.a
# c-test     runs both builds of every C test (each prints "N passed, N failed")
# c-valgrind runs the shared-library builds under valgrind: no definite leak, no invalid access
# install    libdat.so, libdat.a, dat.h and dat.pc under $(PREFIX) (release build)
CBINDGEN     ?= cbindgen
CBINDGEN_VERSION := 0.29.4
CC           ?= cc
C_CFLAGS     := -std=c11 -Wall -Wextra -Werror -g -O1 -pthread -Iinclude
C_STATIC_LIBS := -lpthread -ldl -lm
FFI_LIBDIR   := $(abspath target/debug)
C_TEST_DIR   := target/debug/c-tests
C_TESTS      := $(basename $(notdir $(wildcard tests/c/test_*.c)))
VALGRIND     ?= valgrind --quiet --suppressions=tests/c/valgrind.supp --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=9
PREFIX       ?= /usr/local
DESTDIR      ?=

.PHONY: ffi header check-header c-build c-test c-valgrind install

ffi:
	$(CARGO) build -p dat-ffi

header:
	$(CBINDGEN) --quiet --config ffi/cbindgen.toml --crate dat-ffi --output include/dat.h ffi

check-header:
	@$(CBINDGEN) --version | grep -qx 'cbindgen $(CBINDGEN_VERSION)' || \
	  { echo "check-header: needs cbindgen $(CBINDGEN_VERSION) (cargo install --locked cbindgen@$(CBINDGEN_VERSION))"; exit 1; }
	@tmp=$$(mktemp) && $(CBINDGEN) --quiet --config ffi/cbindgen.toml --crate dat-ffi --output $$tmp ffi && \
	  if diff -u include/dat.h $$tmp; then echo "check-header: include/dat.h is up to date"; rm -f $$tmp; \
	  else echo "check-header: include/dat.h is stale: run make header"; rm -f $$tmp; exit 1; fi

c-build: ffi
	@mkdir -p $(C_TEST_DIR)
	@for t in $(C_TESTS); do \
	  $(CC) $(C_CFLAGS) tests/c/$$t.c -L$(FFI_LIBDIR) -ldat -Wl,-rpath,$(FFI_LIBDIR) -o $(C_TEST_DIR)/$$t-shared || exit 1; \
	  $(CC) $(C_CFLAGS) tests/c/$$t.c $(FFI_LIBDIR)/libdat.a $(C_STATIC_LIBS) -o $(C_TEST_DIR)/$$t-static || exit 1; \
	done

c-test: c-build
	@rc=0; for t in $(C_TESTS); do \
	  for v in shared static; do echo "--- $$t ($$v)"; $(C_TEST_DIR)/$$t-$$v || rc=1; done; \
	done; exit $$rc

c-valgrind: c-build
	@rc=0; for t in $(C_TESTS); do \
	  echo "--- $$t (shared, valgrind)"; \
	  if DAT_UNDER_VALGRIND=1 $(VALGRIND) $(C_TEST_DIR)/$$t-shared; then echo "valgrind $$t: clean"; \
	  else echo "valgrind $$t: FAILED"; rc=1; fi; \
	done; exit $$rc

install:
	$(CARGO) build --release -p dat-ffi
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 target/release/libdat.so $(DESTDIR)$(PREFIX)/lib/libdat.so
	install -m 644 target/release/libdat.a $(DESTDIR)$(PREFIX)/lib/libdat.a
	install -m 644 include/dat.h $(DESTDIR)$(PREFIX)/include/dat.h
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e "s|@VERSION@|$$(sed -n 's/^version = \"\(.*\)\"/\1/p' Cargo.toml | head -1)|" \
	    ffi/dat.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/dat.pc

# ------------------------------------------------------------------------------------- Python
# py-venv    target/py-venv with the pinned maturin and pytest (pip installs them if missing)
# py-wheel   the abi3 wheel (CPython >= 3.9) of bindings/python into target/wheels; debug profile
#            (PY_WHEEL_FLAGS=--release for the release wheel)
# py-test    installs the wheel into target/py-venv and runs bindings/python/tests with pytest
PY_VENV         := target/py-venv
PY              := $(PY_VENV)/bin/python
MATURIN_VERSION := 1.16.0
PYTEST_VERSION  := 9.2.0
PY_WHEEL_FLAGS  ?=

.PHONY: py-venv py-wheel py-test

py-venv:
	@test -x $(PY) || python3 -m venv $(PY_VENV)
	@$(PY) -c 'import importlib.metadata as m; assert m.version("maturin") == "$(MATURIN_VERSION)" and m.version("pytest") == "$(PYTEST_VERSION)"' 2>/dev/null || \
	  $(PY) -m pip install -q maturin==$(MATURIN_VERSION) pytest==$(PYTEST_VERSION)

py-wheel: py-venv
	rm -f target/wheels/libdat-*.whl
	CARGO_TARGET_DIR=target PYO3_PYTHON=$(abspath $(PY)) $(PY_VENV)/bin/maturin build $(PY_WHEEL_FLAGS) \
	  -m bindings/python/Cargo.toml -o target/wheels

py-test: py-wheel
	$(PY) -m pip install -q --force-reinstall --no-deps target/wheels/libdat-*.whl
	cd bindings/python && ../../$(PY) -m pytest -p no:cacheprovider tests

# --------------------------------------------------------------------------------------- Node
# node-addon  bindings/node/libdat.node (debug) from bindings/node (package dat-node), with cargo
# node-test   node --test bindings/node/test/*.test.js (prints TAP: "# pass N" / "# fail N")
# node-deps   bindings/node/node_modules: the pinned @napi-rs/cli from the committed lockfile
# node-dts    regenerates bindings/node/index.d.ts with the pinned @napi-rs/cli (napi build --dts)
# node-check-dts  fails when bindings/node/index.d.ts is not what node-dts generates
NODE_DIR     := bindings/node
NAPI_BUILD   := npx --no-install napi build --target-dir $(abspath target) --dts index.d.ts \
	  --dts-header "$$(cat dts-header.d.ts)"

.PHONY: node-addon node-test node-deps node-dts node-check-dts

node-addon:
	$(CARGO) build -p dat-node
	cp target/debug/libdat_node.so $(NODE_DIR)/libdat.node

node-test: node-addon
	cd $(NODE_DIR) && $(NODE) --test test/*.test.js

node-deps: $(NODE_DIR)/node_modules/.package-lock.json
$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && $(NPM) ci --no-audit --no-fund

node-dts: node-deps
	cd $(NODE_DIR) && $(NAPI_BUILD) --output-dir .

node-check-dts: node-deps
	@tmp=$$(mktemp -d) && (cd $(NODE_DIR) && $(NAPI_BUILD) --output-dir $$tmp >/dev/null) && \
	  if diff -u $(NODE_DIR)/index.d.ts $$tmp/index.d.ts; then echo "node-check-dts: index.d.ts is up to date"; rm -rf $$tmp; \
	  else echo "node-check-dts: bindings/node/index.d.ts is stale: run make node-dts"; rm -rf $$tmp; exit 1; fi

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
## target/bench/drive-src*), the scheduler simulator's report, and the bindings' reads (bench-py:
## Python vs Rust; bench-node: the Node addon vs JS hyperdrive). BENCH_ARGS=--quick divides the
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
	$(MAKE) --no-print-directory -s bench-py BENCH_ARGS="$(BENCH_ARGS)"
	$(MAKE) --no-print-directory -s bench-node BENCH_ARGS="$(BENCH_ARGS)" > $(BENCH_DIR)/node-read.md
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
	@$(PY_BENCH_VENV)/bin/python bindings/python/bench/read_bench.py --table $(BENCH_DIR)/py-read.jsonl
	@echo
	@cat $(BENCH_DIR)/node-read.md
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
# wheel      the release abi3 wheel (CPython >= 3.9) of bindings/python into target/wheels
#            (maturin build --release --strip): pip install target/wheels/libdat-*.whl
# py-wheel   the same wheel with the debug profile (quick to build) into target/wheels-debug
# py-test    installs the debug wheel into target/py-venv and runs tests/python with pytest
# bench-py   reads a 256 MiB file through the Python cursor (64 KiB reads) and read_stream, and
#            the same reads in Rust (core/examples/drive_read_bench.rs); release builds on both
#            sides, the release wheel in target/py-bench-venv. BENCH_ARGS=--quick: a 32 MiB file
PY_VENV         := target/py-venv
PY              := $(PY_VENV)/bin/python
PY_BENCH_VENV   := target/py-bench-venv
MATURIN_VERSION := 1.16.0
PYTEST_VERSION  := 9.2.0
PYTEST_TIMEOUT_VERSION := 2.4.0
MATURIN_BUILD   = CARGO_TARGET_DIR=target PYO3_PYTHON=$(abspath $(PY)) $(PY_VENV)/bin/maturin build \
	  -m bindings/python/Cargo.toml

.PHONY: py-venv wheel py-wheel py-test bench-py

py-venv:
	@test -x $(PY) || python3 -m venv $(PY_VENV)
	@$(PY) -c 'import importlib.metadata as m; assert m.version("maturin") == "$(MATURIN_VERSION)" and m.version("pytest") == "$(PYTEST_VERSION)" and m.version("pytest-timeout") == "$(PYTEST_TIMEOUT_VERSION)"' 2>/dev/null || \
	  $(PY) -m pip install -q maturin==$(MATURIN_VERSION) pytest==$(PYTEST_VERSION) pytest-timeout==$(PYTEST_TIMEOUT_VERSION)

wheel: py-venv
	rm -f target/wheels/libdat-*.whl
	$(MATURIN_BUILD) --release --strip -o target/wheels

py-wheel: py-venv
	rm -f target/wheels-debug/libdat-*.whl
	$(MATURIN_BUILD) -o target/wheels-debug

py-test: py-wheel
	$(PY) -m pip install -q --force-reinstall --no-deps target/wheels-debug/libdat-*.whl
	$(PY) -m pytest -p no:cacheprovider tests/python

bench-py: wheel
	@test -x $(PY_BENCH_VENV)/bin/python || python3 -m venv $(PY_BENCH_VENV)
	$(PY_BENCH_VENV)/bin/python -m pip install -q --force-reinstall --no-deps target/wheels/libdat-*.whl
	$(CARGO) build --release -p dat-core --example drive_read_bench
	mkdir -p $(BENCH_DIR)
	$(PY_BENCH_VENV)/bin/python bindings/python/bench/read_bench.py $(BENCH_ARGS) \
	  --rust target/release/examples/drive_read_bench --out $(BENCH_DIR)/py-read.jsonl

# --------------------------------------------------------------------------------------- Node
# node-addon  bindings/node/libdat.node (debug) from bindings/node (package dat-node), with cargo
# node-test   node --test tests/node/*.test.js (prints TAP: "# pass N" / "# fail N"); needs the
#             pinned JS reference (interop-deps) for the one-process interop tests
# node-deps   bindings/node/node_modules: the pinned @napi-rs/cli from the committed lockfile
# node-dts    regenerates bindings/node/index.d.ts with the pinned @napi-rs/cli (napi build --dts)
# node-check-dts  fails when bindings/node/index.d.ts is not what node-dts generates
# bench-node  the addon (a release build, loaded from target/bench/node/ through LIBDAT_NODE_ADDON)
#             against JS hyperdrive 13: a 256 MiB file's read stream, and 10,000 random 4 KiB reads
#             (addon cursor vs ranged blob reads); bindings/node/bench/read-bench.js, medians of 3,
#             target/bench/node-read.jsonl. BENCH_ARGS=--quick: a 32 MiB file, 1,000 reads
NODE_DIR     := bindings/node
NODE_BENCH_ADDON := target/bench/node/libdat.node
NAPI_BUILD   := npx --no-install napi build --target-dir $(abspath target) --dts index.d.ts \
	  --dts-header "$$(cat dts-header.d.ts)"

.PHONY: node-addon node-test node-deps node-dts node-check-dts bench-node

node-addon:
	$(CARGO) build -p dat-node
	cp target/debug/libdat_node.so $(NODE_DIR)/libdat.node

node-test: node-addon interop-deps
	$(NODE) --test --test-timeout=300000 tests/node/*.test.js

bench-node: interop-deps
	$(CARGO) build --release -p dat-node
	mkdir -p $(dir $(NODE_BENCH_ADDON))
	cp target/release/libdat_node.so $(NODE_BENCH_ADDON).tmp && mv $(NODE_BENCH_ADDON).tmp $(NODE_BENCH_ADDON)
	LIBDAT_NODE_ADDON=$(abspath $(NODE_BENCH_ADDON)) $(NODE) $(NODE_DIR)/bench/read-bench.js $(BENCH_ARGS)

node-deps: $(NODE_DIR)/node_modules/.package-lock.json
$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && $(NPM) ci --no-audit --no-fund

node-dts: node-deps
	cd $(NODE_DIR) && $(NAPI_BUILD) --output-dir .

node-check-dts: node-deps
	@tmp=$$(mktemp -d) && (cd $(NODE_DIR) && $(NAPI_BUILD) --output-dir $$tmp >/dev/null) && \
	  if diff -u $(NODE_DIR)/index.d.ts $$tmp/index.d.ts; then echo "node-check-dts: index.d.ts is up to date"; rm -rf $$tmp; \
	  else echo "node-check-dts: bindings/node/index.d.ts is stale: run make node-dts"; rm -rf $$tmp; exit 1; fi

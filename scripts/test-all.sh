#!/usr/bin/env bash
# Runs every test suite, keeps going after a failure, and ends with one line:
#   test-all: N passed, N failed
# Exit status is non-zero when any suite failed.
set -u
cd "$(dirname "$0")/.."
LOG=${LOG_DIR:-target/test-logs}
mkdir -p "$LOG"
pass=0; fail=0; rc_all=0

# A suite that hangs is stopped after SUITE_TIMEOUT seconds (its whole process group: TERM,
# then KILL 30 s later) and counted failed, so the other suites still run and report.
SUITE_TIMEOUT=${SUITE_TIMEOUT:-2400}

run() { # name, command...
  local name=$1; shift
  echo "=== $name: $*"
  timeout -k 30 "$SUITE_TIMEOUT" "$@" > >(tee "$LOG/$name.log") 2>&1
  local rc=$?
  wait
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "=== $name TIMED OUT after $SUITE_TIMEOUT s"
  fi
  if [ "$rc" -ne 0 ]; then echo "=== $name FAILED (rc=$rc)"; rc_all=1; fi
  return "$rc"
}

# Rust: unit, property, vector, crash, bad-input and interop tests (cargo prints one
# "test result:" line per test binary).
run rust cargo test --workspace --no-fail-fast
read -r p f < <(grep -E '^test result:' "$LOG/rust.log" | awk '{p+=$4; f+=$6} END {print p+0, f+0}')
pass=$((pass + p)); fail=$((fail + f))

# Fuzz regressions: every fuzz target (fuzz/) over its fuzz/regressions files and seeded
# pseudo-random inputs, on stable. The fuzz crate is outside the workspace; sharing target/ reuses
# the workspace's compiled dependencies instead of building them again in fuzz/target.
run fuzz-regressions env CARGO_TARGET_DIR=target cargo test --manifest-path fuzz/Cargo.toml --no-fail-fast
read -r p f < <(grep -E '^test result:' "$LOG/fuzz-regressions.log" | awk '{p+=$4; f+=$6} END {print p+0, f+0}')
pass=$((pass + p)); fail=$((fail + f))

# C ABI: include/dat.h matches ffi/src (regenerated with the pinned cbindgen to a temp file and
# diffed), the C tests against libdat.so and libdat.a (each program prints "N passed, N failed"),
# and the same programs under valgrind (one check each: no definite leak, no memory error).
if run c-header make --no-print-directory check-header; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
run c make --no-print-directory c-test
read -r p f < <(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG/c.log" | awk '{p+=$1; f+=$3} END {print p+0, f+0}')
pass=$((pass + p)); fail=$((fail + f))
run c-valgrind make --no-print-directory c-valgrind
p=$(grep -c '^valgrind .*: clean$' "$LOG/c-valgrind.log"); f=$(grep -c '^valgrind .*: FAILED$' "$LOG/c-valgrind.log")
pass=$((pass + p)); fail=$((fail + f))

# Node addon: index.d.ts matches bindings/node/src (regenerated with the pinned @napi-rs/cli and
# diffed; one check), then the node --test suite (TAP: "# pass N" / "# fail N").
if run node-dts make --no-print-directory node-check-dts; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
run node make --no-print-directory node-test
p=$(grep -E '^# pass [0-9]+$' "$LOG/node.log" | tail -1 | awk '{print $3}'); f=$(grep -E '^# fail [0-9]+$' "$LOG/node.log" | tail -1 | awk '{print $3}')
pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))

# Python package: the abi3 wheel built with maturin and installed into target/py-venv, then the
# pytest suite (its summary line: "N passed in 3.2s" / "1 failed, N passed in ..."; errors count
# as failures).
run py make --no-print-directory py-test
summary=$(grep -E '[0-9]+ (passed|failed|errors?)\b.* in [0-9.]+s' "$LOG/py.log" | tail -1)
p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+')
f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{s+=$1} END {print s+0}')
pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))

# Lint: formatting and clippy count as one check each.
if run fmt cargo fmt --all --check; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
if run clippy cargo clippy --workspace --all-targets -- -D warnings; then pass=$((pass + 1)); else fail=$((fail + 1)); fi

# A suite that crashed without reporting a failure still counts as one.
if [ "$rc_all" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "test-all: $pass passed, $fail failed"
exit "$rc_all"

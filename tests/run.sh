#!/usr/bin/env bash
# Runs the test suite: the cmocka unit binaries given as arguments, then
# every tests/e2e/*.sh (each gets TUNE=the sanitizer build of tune and
# exits non-zero on failure). Prints "N passed, N failed" last.
set -u
cd "$(dirname "$0")/.."
export TUNE="$PWD/build/test/tune"
export TUNE_ROOT="$PWD"
export OMP_WAIT_POLICY=PASSIVE
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=98"
passed=0
failed=0
failures=()
run_one() {
    local name="$1"; shift
    local log; log=$(mktemp)
    local t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1)); echo "PASS $name ($((SECONDS - t0))s)"
    else
        failed=$((failed + 1)); failures+=("$name"); echo "FAIL $name ($((SECONDS - t0))s)"; sed 's/^/    /' "$log" | tail -n 60
    fi
    rm -f "$log"
}
for bin in "$@"; do run_one "unit/$(basename "$bin")" "$bin"; done
for t in tests/e2e/*.sh; do [ -e "$t" ] && run_one "e2e/$(basename "$t")" bash "$t"; done
echo
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

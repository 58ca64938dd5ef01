#!/bin/sh
# run-tests.sh - run every test binary and fuzz target; print one summary.
#
#   tests/run-tests.sh TEST... -- FUZZER...
#
# Test binaries are cmocka programs run with TAP output: "ok" lines pass,
# "not ok ... # SKIP" lines are skipped (with their reason printed), other
# "not ok" lines fail; a binary that crashes or times out counts as one
# failure.  Fuzz targets replay their seeds and then run for FUZZ_RUNS
# inputs or FUZZ_SECONDS, whichever comes first.  The last line is "N passed, N failed, N skipped".
set -u
pass=0 fail=0 skip=0
failed_names=""
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
FUZZ_RUNS=${FUZZ_RUNS:-500000}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
log_dir=${BUILD:-build}/test-logs
mkdir -p "$log_dir"

run_test() {
	t=$1 name=$(basename "$1") log="$log_dir/$(basename "$1").log"
	start=$(date +%s)
	CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 10 "$TEST_TIMEOUT" "$t" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	p=$(grep -c '^ok ' "$log")
	s=$(grep -c '^not ok [0-9]* # SKIP' "$log")
	f=$(grep '^not ok [0-9]*' "$log" | grep -vc '# SKIP')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "  $name exited with status $rc (crash or timeout)"
	fi
	pass=$((pass + p)); skip=$((skip + s)); fail=$((fail + f))
	if [ "$f" -gt 0 ]; then
		failed_names="$failed_names $name"
		printf 'FAIL %-28s %3d passed %3d failed %3d skipped  %4ds\n' "$name" "$p" "$f" "$s" "$secs"
		sed 's/^/    | /' "$log" | tail -n 60
	else
		printf 'ok   %-28s %3d passed %3d skipped  %4ds\n' "$name" "$p" "$s" "$secs"
	fi
	grep '^not ok [0-9]* # SKIP' "$log" | sed 's/^/    skipped: /'
	grep -h '^# skip reason:' "$log" | sed 's/^# /    /' | sort -u
}

run_fuzz() {
	f=$1 name=$(basename "$1") log="$log_dir/$(basename "$1").log"
	seeds="tests/fuzz/seeds/$name"
	corpus="${BUILD:-build}/fuzz/corpus-$name"
	mkdir -p "$corpus"
	if timeout -k 10 600 "$f" -runs="$FUZZ_RUNS" -max_total_time="$FUZZ_SECONDS" -seed=1 -timeout=10 \
		"$corpus" "$seeds" >"$log" 2>&1; then
		pass=$((pass + 1))
		printf 'ok   %-28s %s\n' "$name" "$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log")"
	else
		fail=$((fail + 1))
		failed_names="$failed_names $name"
		printf 'FAIL %-28s\n' "$name"
		tail -n 40 "$log" | sed 's/^/    | /'
	fi
}

fuzzing=0
for arg in "$@"; do
	if [ "$arg" = "--" ]; then fuzzing=1; continue; fi
	if [ $fuzzing -eq 0 ]; then run_test "$arg"; else run_fuzz "$arg"; fi
done
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

#!/bin/sh
# Runs each fuzz target for a fixed time from its seed corpus and prints TAP: one "ok"/"not ok"
# line per target, then "N passed, N failed" as the last line (the form tests/run.sh ends with).
#   usage: tests/fuzz/run.sh BUILD SECONDS TARGET...     (make fuzz-run)
#
# libFuzzer first runs every input of tests/fuzz/corpus/TARGET (seeds and regression inputs), then
# mutates for SECONDS. New inputs go to BUILD/fuzz-work/TARGET, emptied at each run, never into the
# tree. A crash, sanitizer report, leak, timeout (-timeout=10 s per input) or out-of-memory
# (-rss_limit_mb=2048) fails the target; the input is saved in BUILD/fuzz-artifacts/TARGET/ and its
# path printed with the top of the report. Allocations over 1 GB fail like malloc returning NULL
# (allocator_may_return_null), which the code under test must turn into an error: an allocation
# that large is not in itself a finding.
BUILD=${1:?usage: run.sh BUILD SECONDS TARGET...}
SECONDS_EACH=${2:?usage: run.sh BUILD SECONDS TARGET...}
shift 2
# Absolute paths: the Lua target works in a directory of its own.
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
# One thread for OpenBLAS and OpenMP: the runs are reproducible and leave the other core alone.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export ASAN_OPTIONS="allocator_may_return_null=1:max_allocation_size_mb=1024:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# The targets' temporary directories (left behind when an input crashes) stay in the build dir.
export TMPDIR="$BUILD/fuzz-tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"
passed=0 failed=0 n=0
for target in "$@"; do
  n=$((n + 1))
  bin=$BUILD/fuzz_$target
  corpus=$(pwd)/tests/fuzz/corpus/$target
  work=$BUILD/fuzz-work/$target
  artifacts=$BUILD/fuzz-artifacts/$target
  log=$BUILD/fuzz-logs/$target.log
  rm -rf "$work" "$artifacts"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  if [ ! -x "$bin" ]; then
    echo "not ok $n - fuzz_$target: $bin is missing (make fuzz)"
    failed=$((failed + 1))
    continue
  fi
  "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$corpus" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  saved=$(ls "$artifacts" 2>/dev/null | head -n 1)
  if [ "$rc" -eq 0 ] && [ -z "$saved" ]; then
    echo "ok $n - fuzz_$target: ${runs:-?} inputs in ${SECONDS_EACH} s, $(ls "$corpus" | wc -l) from the corpus"
    passed=$((passed + 1))
  else
    echo "not ok $n - fuzz_$target: exit status $rc after ${runs:-?} inputs; input saved: ${saved:+$artifacts/$saved}"
    # The top of the report: its kind and the first frames, then where the whole log is.
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_lua: FINDING|.*runtime error)|^    #[0-9]+ ' "$log" | grep -v ' in fuzzer::' |
      head -n 14 | sed 's/^/# /'
    echo "# full log: $log; reproduce: $bin ${saved:+$artifacts/$saved}"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

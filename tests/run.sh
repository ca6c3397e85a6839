#!/bin/sh
# Runs the whole suite: every engine test program in BUILD/tests, then every Lua test script in
# tests/lua through the host. Each prints TAP lines; the last line here is "N passed, N failed"
# (skips, "ok N - name # SKIP reason", are counted apart and are not passes).
#   usage: tests/run.sh BUILD HOST MODULE
BUILD=${1:-build}
HOST=${2:-./fmnist-lua}
MODULE=${3:-fmnist.so}
case $HOST in */*) ;; *) HOST=./$HOST ;; esac
export FMNIST_HOST="$HOST" FMNIST_MODULE="$MODULE" FMNIST_BUILD="$BUILD"
export LUA_PATH="tests/lua/?.lua;;"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
passed=0 failed=0 skipped=0
run_one() {
  name=$1; shift
  echo "# $name"
  "$@" >"$log" 2>&1
  rc=$?
  cat "$log"
  p=$(grep '^ok ' "$log" | grep -vc '# SKIP')
  k=$(grep '^ok ' "$log" | grep -c '# SKIP')
  f=$(grep -c '^not ok ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "not ok - $name exited with status $rc"
    f=1
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))
}
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  run_one "$(basename "$t")" "$t"
done
for t in tests/lua/test_*.lua; do
  [ -f "$t" ] || continue
  run_one "$t" "$HOST" "$t"
done
[ "$skipped" -eq 0 ] || echo "# $skipped skipped (ok ... # SKIP lines above say why)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

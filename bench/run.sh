#!/bin/sh
# bench/run.sh: the engine's speed and memory figures (`make bench` runs it with the build dir).
#
# First the machine's practical ceiling (a 4096^3 OpenBLAS sgemm on all cores), then each model
# in its own process, so that each peak RSS is that model's alone; every figure is a median over
# epochs or passes. The summary relates each model's training GFLOP/s to the ceiling.
#   usage: bench/run.sh BUILD           the main figures (about a minute)
#          BENCH_COMPARE=1 bench/run.sh BUILD   also the design comparisons (a few minutes more)
# The machine may be shared: compare ratios within one run, and cpu_s (process CPU time) when the
# wall time looks disturbed.
BUILD=${1:-build}
BIN=$BUILD/bench/bench_nn
[ -x "$BIN" ] || { echo "bench/run.sh: $BIN not built (make bench)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run() {
  echo "## bench_nn $*"
  "$BIN" "$@" | tee -a "$log" | grep -v '^RESULT'
  echo
}

echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run sgemm
run cnn --epochs 3
run mlp --epochs 5
run mlp --epochs 5 --batch 128
run logreg --epochs 15 --batch 256 --lr 0.01 --schedule cosine --target 0.85
if [ -n "$BENCH_COMPARE" ]; then
  # What each design choice gives, on the reference CNN (2 epochs each).
  run cnn --epochs 2 --threads 1
  run cnn --epochs 2 --no-direct
  run cnn --epochs 2 --kernel blas
  run cnn --epochs 2 --kernel blas --threads 1
  run cnn --epochs 2 --plain
  run mlp --epochs 3 --threads 1
  run mlp --epochs 3 --no-mp
fi

awk '
/^RESULT model=sgemm/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "gflops") ceil = kv[2] } }
/^RESULT model=/ && !/model=sgemm/ {
  delete r
  for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
  line[++n] = sprintf("%-7s %-20s %3s %5s %8.3f %8.3f %8.1f %6.0f%% %11.0f %7.1f %7.4f %8s",
    r["model"], r["kernel"], r["threads"], r["batch"], r["epoch_s"], r["cpu_s"], r["gflops"],
    ceil > 0 ? 100 * r["gflops"] / ceil : 0, r["infer_img_s"], r["rss_mb"], r["test_acc"],
    r["target_s"] >= 0 ? r["target_s"] : "-")
}
END {
  printf "# summary (ceiling: OpenBLAS sgemm 4096^3 = %.1f GFLOP/s)\n", ceil
  printf "%-7s %-20s %3s %5s %8s %8s %8s %7s %11s %7s %7s %8s\n", "model", "kernel", "thr",
    "batch", "epoch_s", "cpu_s", "GFLOP/s", "ceiling", "infer_img/s", "RSS_MB", "test", "to_85%_s"
  for (i = 1; i <= n; i++) print line[i]
}' "$log"

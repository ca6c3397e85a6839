#!/bin/sh
# bench/run.sh: the engine's speed and memory figures (`make bench` runs it with the build dir).
#
# First the machine's practical ceiling (a 4096^3 OpenBLAS sgemm on all cores), then each model
# in its own process, so that each peak RSS is that model's alone; every figure is a median over
# epochs or passes. The summary relates each model's training GFLOP/s to the ceiling.
#   usage: bench/run.sh BUILD           the main figures (a few minutes)
#          BENCH_COMPARE=1 bench/run.sh BUILD   also the design comparisons (a few minutes more)
#          BENCH_TORCH=1 bench/run.sh BUILD     also ResNet-20 in PyTorch (bench/resnet_torch.py,
#                                  when a python3 with torch is found), three runs of each
#                                  alternating, and the ratio of the median epochs
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
# ResNet-20 (fm.ResNet{}): every convolution pass alone, then training at batch 128 on 100
# batches an epoch (scaled to 60,000 images) with inference on the whole test set.
run convs --batch 128
run resnet --batch 128 --images 12800 --epochs 1
if [ -n "$BENCH_TORCH" ]; then
  PY=
  for p in python3 /usr/bin/python3; do
    if "$p" -c "import torch" 2>/dev/null; then PY=$p; break; fi
  done
  if [ -z "$PY" ]; then
    echo "# BENCH_TORCH: no python3 with torch found (Debian: apt-get install python3-torch)"
  else
    # Alternating, so that both see the same load; each figure is a median batch x batches.
    for i in 1 2 3; do
      run resnet --batch 128 --images 6400 --epochs 1 --no-eval
      echo "## bench/resnet_torch.py --threads 2"
      "$PY" bench/resnet_torch.py --threads 2 --batches 40 | tee -a "$log" | grep -v '^RESULT'
      echo
    done
  fi
fi
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
/^RESULT model=convs/ {
  for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "old_ms") old_ms = kv[2]; if (kv[1] == "new_ms") new_ms = kv[2] }
  next
}
/^RESULT model=/ && !/model=sgemm/ {
  delete r
  for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
  if (r["model"] == "resnet" && r["infer_img_s"] == 0) mine[++nm] = r["batch_med_s"]
  if (r["model"] == "torch-resnet") theirs[++nt] = r["epoch_s"]
  line[++n] = sprintf("%-12s %-20s %3s %5s %8.3f %8.3f %8.1f %6.0f%% %11.0f %7.1f %7.4f %8s",
    r["model"], r["kernel"], r["threads"], r["batch"], r["epoch_s"], r["cpu_s"], r["gflops"],
    ceil > 0 ? 100 * r["gflops"] / ceil : 0, r["infer_img_s"], r["rss_mb"], r["test_acc"],
    r["target_s"] >= 0 ? r["target_s"] : "-")
}
END {
  printf "# summary (ceiling: OpenBLAS sgemm 4096^3 = %.1f GFLOP/s)\n", ceil
  printf "%-12s %-20s %3s %5s %8s %8s %8s %7s %11s %7s %7s %8s\n", "model", "kernel", "thr",
    "batch", "epoch_s", "cpu_s", "GFLOP/s", "ceiling", "infer_img/s", "RSS_MB", "test", "to_85%_s"
  for (i = 1; i <= n; i++) print line[i]
  if (new_ms > 0)
    printf "# ResNet-20 convolutions, forward + backward per image on one thread: im2col + GEMM %.3f ms, now %.3f ms\n", old_ms, new_ms
  if (nm > 0 && nt > 0) {
    a = med(mine, nm); b = med(theirs, nt)
    printf "# ResNet-20 epoch (median of %d alternating runs each, median batch x batches): %.1f s here, %.1f s PyTorch: %.2f of the PyTorch time\n", nm, a, b, a / b
  }
}
function med(v, k,   i, j, t) {
  for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
  return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
}' "$log"

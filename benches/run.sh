#!/usr/bin/env bash
# Runs every benchmark and writes benches/RESULTS.md (atomically) with the
# machine, the adapter and the tables. On a machine with a GPU, run it there
# unchanged and keep both sets of numbers: RESULTS.md names the adapter of each.
#   bash benches/run.sh [label]      e.g. bash benches/run.sh lavapipe
# Sizes: XLTC_BENCH_TOKENS, XLTC_BENCH_LAYERS, XLTC_BENCH_SEQ, XLTC_BENCH_BATCHES,
# XLTC_BENCH_RUNS (see each benchmark); the defaults are the BERT-base shapes.
# XLTC_BENCHES="encoder train_step" runs only those benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
label=${1:-$(hostname)}
out=$(mktemp)
{
  echo "## $label, $(date -u +%Y-%m-%d)"
  echo
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
  echo
  echo "Sizes: $(env | grep '^XLTC_BENCH_' | sort | xargs || true) (unset: the BERT-base defaults)"
  echo
  for bench in ${XLTC_BENCHES:-gemm encoder train_step compile real_models}; do
    echo "### $bench"
    echo
    cargo bench -q -p xltc --bench "$bench" 2>/dev/null
    echo
  done
} > "$out"
results=benches/RESULTS.md
if [ -f "$results" ]; then cat "$results" "$out" > "$out.all"; else
  { echo "# Benchmark results"; echo; echo "Every table says which adapter it ran on: lavapipe and SwiftShader are CPUs, not GPUs."; echo "Ratios are peer time over xltc time: above 1, xltc on the adapter is faster."; echo; cat "$out"; } > "$out.all"
fi
mv "$out.all" "$results"
rm -f "$out"
echo "wrote $results"

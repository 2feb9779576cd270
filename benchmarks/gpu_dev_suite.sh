#!/usr/bin/env bash
# The dev suite on a CUDA GPU, as one prepared run (for a session that is lent a device).
#
#   bash benchmarks/gpu_dev_suite.sh prepare ../shared/benchmarks   # here: copy the suite's
#        files (~40 MB) into device/benchmarks (git-ignored; name `device` in the run's carry)
#   bash benchmarks/gpu_dev_suite.sh run OUT_DIR                    # there: run it on cuda
#
# The run uses the machine's python3 with a CUDA torch; onnx, onnxruntime, highspy and scipy
# must be importable there (carry wheels if they are missing).  Results: OUT_DIR/dev_gpu.csv
# and the summary table on stdout; compare with `python -m benchmarks.compare_reference`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in
  prepare)
    src="${2:?usage: prepare BENCHMARKS_DIR}"
    dst="$here/device/benchmarks"
    mkdir -p "$dst/suites"
    cp "$src/suites/dev.csv" "$dst/suites/"
    cp "$src/expected_results.csv" "$dst/"
    tail -n +2 "$src/suites/dev.csv" | while IFS=, read -r bench onnx spec _; do
      for f in "$onnx" "$spec"; do
        mkdir -p "$dst/$bench/$(dirname "$f")"
        cp "$src/$bench/$f" "$dst/$bench/$f"
      done
    done
    du -sh "$dst" ;;
  run)
    out="${2:?usage: run OUT_DIR}"
    cd "$here"
    python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
    PYTHONPATH="$here" PYTHONUNBUFFERED=1 python3 -m genbab.cli run-suite \
      device/benchmarks/suites/dev.csv --root device/benchmarks --device cuda --timeout 60 \
      --out "$out/dev_gpu.csv" ;;
  *) echo "usage: $0 prepare BENCHMARKS_DIR | run OUT_DIR" >&2; exit 2 ;;
esac

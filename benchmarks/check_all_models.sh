#!/usr/bin/env bash
# Runs `genbab check-model` on every ONNX model under a benchmarks root (default
# ../shared/benchmarks), inside the box of one of its properties when instances.csv names one.
# Prints one line per model and a summary; exits non-zero if any model disagrees or fails.
set -uo pipefail
root=${1:-../shared/benchmarks}
genbab=${GENBAB:-.venv/bin/genbab}
fail=0; n=0; worst=0
for csvfile in "$root"/*/instances.csv; do
  bench=$(dirname "$csvfile")
  declare -A seen=()
  while IFS=, read -r onnx vnnlib _; do
    onnx=${onnx#./}; vnnlib=${vnnlib#./}
    [ -n "${seen[$onnx]:-}" ] && continue
    seen[$onnx]=1; n=$((n+1))
    out=$("$genbab" check-model "$bench/$onnx" --spec "$bench/$vnnlib" --samples 16 2>&1)
    code=$?
    err=$(echo "$out" | sed -n 's/.*max relative error \([^ ]*\).*/\1/p')
    echo "$(basename "$bench") $(basename "$onnx") rel_err=${err:-?} exit=$code"
    [ $code -ne 0 ] && fail=$((fail+1))
  done < "$csvfile"
  unset seen
done
echo "models: $n, disagreements or failures: $fail"
exit $((fail > 0))

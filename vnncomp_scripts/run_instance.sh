#!/usr/bin/env bash
# VNN-COMP: verify one instance and write the result file; always exits 0 once a result is
# written (a non-zero exit is scored as an error whatever the file says).
# Usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
set -uo pipefail
if [ "${1:-}" != "v1" ]; then echo "expected version string v1, got '${1:-}'" >&2; exit 1; fi
if [ $# -ne 6 ]; then echo "usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2; exit 1; fi
here="$(cd "$(dirname "$0")/.." && pwd)"
onnx=$3; vnnlib=$4; result_file=$5; timeout=$6
[ -f "$vnnlib" ] || { [ -f "$vnnlib.gz" ] && vnnlib="$vnnlib.gz"; }
# leave a little of the budget for interpreter start-up and writing the file
budget=$(python3 -c "print(max(1.0, float('$timeout') - 1.0))" 2>/dev/null || echo "$timeout")
rm -f "$result_file"   # the harness pre-fills it with no_result_in_file
"$here/.venv/bin/genbab" verify "$onnx" "$vnnlib" --timeout "$budget" --result-file "$result_file" -q
if [ ! -s "$result_file" ]; then echo "error" > "$result_file"; fi
exit 0

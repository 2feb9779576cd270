#!/usr/bin/env bash
# VNN-COMP: per-instance set-up, no analysis.  Usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
set -uo pipefail
if [ "${1:-}" != "v1" ]; then echo "expected version string v1, got '${1:-}'" >&2; exit 1; fi
if [ $# -ne 4 ]; then echo "usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB" >&2; exit 1; fi
onnx=$3; vnnlib=$4
# stray verifier processes from an earlier instance would steal the CPU
pkill -f "genbab.cli verify" 2>/dev/null || true
pkill -f "bin/genbab verify" 2>/dev/null || true
for f in "$onnx" "$vnnlib"; do
  if [ ! -f "$f" ] && [ ! -f "$f.gz" ]; then echo "missing file: $f" >&2; exit 1; fi
done
exit 0

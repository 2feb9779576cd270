#!/usr/bin/env bash
# VNN-COMP: one-time installation.  Usage: install_tool.sh v1
set -euo pipefail
if [ "${1:-}" != "v1" ]; then echo "expected version string v1, got '${1:-}'" >&2; exit 1; fi
cd "$(dirname "$0")/.."
make install

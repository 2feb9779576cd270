#!/usr/bin/env bash
# Packaging check (issue 16): install genbab from a clean clone into fresh venvs, non-editable,
# and check that it installs one import namespace and runs the demo from there.
#   venv A: genbab alone.  `import genbab` works, `import bounds` / `verifier` / `benchmarks`
#           do not exist, the demo suite runs with the installed genbab.
#   venv B: genbab beside the PyPI packages named `verifier` and `bounds` (both would have
#           clashed with genbab's old top-level packages); the demo and verify() still run.
# Usage: benchmarks/check_install.sh [WORK_DIR]      (needs the package index; ~3 minutes)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
torch_args="${TORCH_PIP_ARGS:-torch==2.13.0}"
quiet() { "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
rm -rf "$work/clone" "$work/venvA" "$work/venvB"
git clone -q "$repo" "$work/clone"
demo="$work/clone/benchmarks/demo"
run_demo() {  # from outside the checkout, so only the installed genbab can be imported
  (cd "$work" && "$1/bin/genbab" run-suite "$demo/instances.csv" --root "$demo" \
     --expected "$demo/expected_results.csv" --out "$work/demo_$(basename "$1").csv" | tail -2)
}
for v in venvA venvB; do
  python3 -m venv "$work/$v"
  quiet "$work/$v/bin/pip" install -q $torch_args
  quiet "$work/$v/bin/pip" install -q "$work/clone"
done
quiet "$work/venvB/bin/pip" install -q verifier bounds

echo "== venv A: genbab alone"
echo "top-level import names: $(cat "$work"/venvA/lib/python*/site-packages/genbab-*.dist-info/top_level.txt)"
(cd "$work" && venvA/bin/python -c "import genbab; from genbab import verify, Status, Property; print('from genbab import verify: ok,', verify.__module__)")
for old in verifier bounds branching lut vnnlib benchmarks; do
  if (cd "$work" && venvA/bin/python -c "import $old" 2>/dev/null); then echo "FAIL: import $old works"; exit 1; fi
done
echo "import verifier / bounds / branching / lut / vnnlib / benchmarks: all fail (ModuleNotFoundError)"
run_demo "$work/venvA"

echo "== venv B: genbab beside PyPI's verifier and bounds"
(cd "$work" && venvB/bin/python - <<'PY'
import importlib.util, importlib.metadata as md
import genbab.bounds, genbab.verifier
from genbab.lut.table import DATA_DIR
for name in ("verifier", "bounds"):
    print(f"PyPI {name} {md.version(name)}: {importlib.util.find_spec(name).origin}")
print("genbab.verifier:", genbab.verifier.__file__)
print("genbab.bounds:", genbab.bounds.__file__)
print("branching-point tables installed:", len(list(DATA_DIR.iterdir())))
PY
)
run_demo "$work/venvB"
(cd "$work" && venvB/bin/python -c "
from genbab import verify
r = verify('$demo/models/onnx/sigmoid_mlp.onnx', '$demo/models/vnnlib/sigmoid_mlp_robust.vnnlib', timeout=30)
print('verify() in venv B:', r.status.name)")

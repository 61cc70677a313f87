#!/usr/bin/env bash
# Run on the GPU machine (no network; PyTorch installed, spaCy not), from anywhere:
#
#   bash benchmarks/gpu/run.sh            # GPU tests + CUDA benchmark
#   QUICK=1 bash benchmarks/gpu/run.sh    # two benchmark shapes only
#
# Needs .whl/ at the repo root, filled here by benchmarks/gpu/download_wheels.sh
# (carry it along). Installs those wheels into /tmp/site (the image's own packages
# stay untouched), runs `pytest -m gpu --gpu`, then benchmarks/moe_layer.py --device
# cuda, writing moe_layer.json (merged: CPU runs kept) and logs to $OUT if set, else
# to benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
PY="${PYTHON:-python3}"
RESULTS="${OUT:-$REPO/benchmarks/results}"
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH="/tmp/site:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "no .whl/ folder: run benchmarks/gpu/download_wheels.sh here first; trying without" >&2
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
import torch.nn.functional as F
print("F.grouped_mm", hasattr(F, "grouped_mm"), "torch._grouped_mm", hasattr(torch, "_grouped_mm"))
PY

# the existing results file is the merge base, so CPU runs survive in $OUT's copy
if [[ -n "${OUT:-}" && -f benchmarks/results/moe_layer.json && ! -f "$RESULTS/moe_layer.json" ]]; then
  cp benchmarks/results/moe_layer.json "$RESULTS/moe_layer.json"
fi

status=0
"$PY" -m pytest -m gpu --gpu -q -p no:cacheprovider --continue-on-collection-errors tests 2>&1 | tee "$RESULTS/gpu_tests.log"
test_rc=${PIPESTATUS[0]}
[[ $test_rc -eq 0 || $test_rc -eq 5 ]] || status=$test_rc

bench_args=(--device cuda --out "$RESULTS/moe_layer.json")
[[ "${QUICK:-0}" == "1" ]] && bench_args+=(--quick)
"$PY" benchmarks/moe_layer.py "${bench_args[@]}" 2>&1 | tee "$RESULTS/moe_layer_cuda.log"
bench_rc=${PIPESTATUS[0]}
[[ $bench_rc -eq 0 ]] || status=$bench_rc
echo "gpu tests rc=$test_rc, benchmark rc=$bench_rc; results in $RESULTS"
exit $status

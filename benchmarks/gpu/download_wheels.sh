#!/usr/bin/env bash
# Run HERE (online, x86_64): fill .whl/ at the repo root with the wheels that
# benchmarks/gpu/run.sh installs on the GPU machine, which has no network, PyTorch
# (and a scientific stack) but no spaCy. Versions are the ones installed in this
# repo's .venv, so the GPU run uses what the tests pass with here.
#
#   bash benchmarks/gpu/download_wheels.sh            # only what the GPU image lacks
#   FULL=1 bash benchmarks/gpu/download_wheels.sh     # every dependency (another image)
#   PYVER=3.11 bash benchmarks/gpu/download_wheels.sh # target another Python
set -euo pipefail
cd "$(dirname "$0")/../.."
PYVER="${PYVER:-3.12}"
PYTHON="${PYTHON:-.venv/bin/python}"
DEST=.whl  # ignored by the repo's .gitignore
mkdir -p "$DEST"

ROOTS=(spacy rdflib pyoxigraph networkx scipy numpy msgpack safetensors typer rich pytest hypothesis)
# Already in the GPU image (see the device notes' package list); torch is never carried.
SKIP="torch,triton,nvidia-cublas,nvidia-cuda-runtime"
if [[ "${FULL:-0}" != "1" ]]; then
  SKIP+=",numpy,scipy,networkx,msgpack,safetensors,typer,rich,click,shellingham,pytest,iniconfig,pluggy"
  SKIP+=",packaging,pygments,hypothesis,attrs,sortedcontainers,requests,urllib3,idna,certifi"
  SKIP+=",charset-normalizer,jinja2,markupsafe,tqdm,typing-extensions,setuptools,wheel,wrapt"
  SKIP+=",pyparsing,markdown-it-py,mdurl,annotated-doc,filelock,fsspec,mpmath,sympy"
fi

mapfile -t PINS < <("$PYTHON" benchmarks/gpu/wheel_closure.py "${ROOTS[@]}" --python-version "$PYVER" --skip "$SKIP")
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
failed=()
for pin in "${PINS[@]}"; do
  if [[ "$pin" == \#* ]]; then echo "$pin" >&2; continue; fi
  echo "== $pin"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    "${PLATFORMS[@]}" -d "$DEST" "$pin" || failed+=("$pin")
done
# one version per package: drop older duplicates left from earlier runs
"$PYTHON" - "$DEST" <<'PY'
import re, sys
from pathlib import Path
from packaging.utils import parse_wheel_filename
from packaging.version import Version
seen = {}
for whl in sorted(Path(sys.argv[1]).glob("*.whl")):
    name, version, _, _ = parse_wheel_filename(whl.name)
    if name in seen:
        old = seen[name]
        drop = old if Version(str(old[1])) < version else (whl, version)
        print(f"removing duplicate {drop[0].name}")
        drop[0].unlink()
        if drop[0] == old[0]:
            seen[name] = (whl, version)
    else:
        seen[name] = (whl, version)
PY
# unstripped extension modules would push .whl/ past the 64 MiB that may travel
"$PYTHON" benchmarks/gpu/slim_wheels.py "$DEST"/*.whl
du -sh "$DEST"
if ((${#failed[@]})); then
  echo "no wheel found for: ${failed[*]} (try another --platform manylinux_2_N_x86_64)" >&2
  exit 1
fi

#!/usr/bin/env bash
# Wheels for a GPU machine that has torch but not pydantic (what bench/epoch_check.py and the
# packed trainer's config need), for Python 3.12 on x86-64, into .whl/ (ignored by git).
# Carry .whl/ to that machine; bench/gpu_check.sh installs it into /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
pkgs=()
for name in pydantic pydantic_core typing_extensions annotated_types typing_inspection; do
  version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")
  pkgs+=("$name==$version")
done
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
$PYTHON -m pip download -q --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" \
  --implementation cp "${platforms[@]}" -d .whl "${pkgs[@]}"
ls .whl

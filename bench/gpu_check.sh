#!/usr/bin/env bash
# The trainer's speed on one CUDA GPU, in one prepared command (under 5 minutes).
#
# Prints: the GPU, then bench/trainer_speed.py's figures on synthetic 32x32 data:
#   - trainer vs the notebook-style reference loop, full-width ResNet18, batch 128;
#   - the trainer alone at batch 512, full width, eager and torch.compile'd
#     (goal: at least 50,000 images/s on one H100).
#
# Run from anywhere:   bash bench/gpu_check.sh
# The benchmark needs torch, torchvision and Pillow only (no pydantic). If a .whl/ folder
# of wheels was carried along (for a machine that lacks a package), they are installed
# into /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/.."

export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA device visible"'

# 4.5 minutes at most, so the whole check stays under 5 even with a slow compile.
timeout 270 python3 bench/trainer_speed.py \
  --device cuda --width 64 --batch-size 128 --warmup 10 --steps 100 \
  --big-batch 512 --big-steps 100 --compile

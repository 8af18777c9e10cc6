#!/usr/bin/env bash
# The trainer's speed on one CUDA GPU, in one prepared command (under 5 minutes).
#
# Prints: the GPU, then
#   - bench/trainer_speed.py: trainer vs the notebook-style reference loop, full-width
#     ResNet18, batch 128; the trainer alone at batch 512, eager and torch.compile'd
#     ("compile unavailable: ..." where the machine has no compiler for it);
#   - bench/epoch_check.py: one real epoch through trainer.train (CIFAR-10-format files of
#     random images, 50,000 + 10,000), what a worker runs;
#   - bench/pack_speed.py: one run, then for K = 1..16 K runs packed (all ReLU), packed with
#     mixed activations, and in K slots, each with its ratio to the one run (K after
#     another is the one run's speed again: skipped, to keep the budget).
#
# Run from anywhere:   bash bench/gpu_check.sh      (PYTHON=... picks the interpreter)
# The speed benchmarks need torch and torchvision only. The epoch check needs pydantic too:
# on a machine without it, run `bash bench/fetch_wheels.sh` on one with internet and carry
# the .whl/ folder along; its wheels are installed into /tmp/site first. Without them the
# epoch check says it was skipped and the rest still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device visible"' || exit 1

status=0
# Budget: 150 + 50 + 90 s, so the whole check stays under 5 minutes with start-up.
timeout 150 "$PYTHON" bench/trainer_speed.py \
  --device cuda --width 64 --batch-size 128 --warmup 10 --steps 100 \
  --big-batch 512 --big-steps 100 --compile || status=$?
timeout 50 "$PYTHON" bench/epoch_check.py --width 64 --batch-size 128 || status=$?
timeout 90 "$PYTHON" bench/pack_speed.py --device cuda --skip sequential || status=$?
exit $status

"""Do local workers share the cores well? Aggregate training images/s of N worker processes.

What it measures: trainer/'s hot loop (bench/trainer_speed.time_trainer: gather, on-device
augmentation, the trainer's memory layout, train_step) on synthetic 32x32 data, ResNet18 at
--width, batch --batch-size, --steps timed batches after --warmup, in three set-ups that all
train at the same time within one set-up (a barrier starts the timed part together):

  one process     1 worker with every core (torch's default threads)
  shared          N workers, each with cores // N threads: what `resnet-lab serve --workers N`
                  gives each local worker (core.supervisor.share_threads)
  oversubscribed  N workers, each with every core: what serve did before it split the cores

and prints each one's aggregate images/s and its ratio to one process. The target: N shared
workers reach at least the aggregate of one process.

Rerun (about 2 minutes on 2 cores):
    python bench/worker_threads.py --workers 2 --width 16 --steps 30
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _train(threads: int, args: argparse.Namespace, barrier, results) -> None:
    import torch

    torch.set_num_threads(threads)
    from trainer_speed import make_data, time_trainer

    images, labels = make_data("synthetic", (args.warmup + args.steps) * args.batch_size)
    # The barrier sits inside the warm-up callback's place: every process warms up first.
    time_trainer(
        images, labels, width=args.width, batch=args.batch_size, steps=1,
        warmup=args.warmup, device="cpu",
    )  # fmt: skip
    barrier.wait()
    speed, _ = time_trainer(
        images, labels, width=args.width, batch=args.batch_size, steps=args.steps,
        warmup=0, device="cpu",
    )  # fmt: skip
    results.put(speed)


def aggregate(processes: int, threads: int, args: argparse.Namespace) -> float:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_train, args=(threads, args, barrier, results)) for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    speeds = [results.get(timeout=args.timeout) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    return sum(speeds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per set-up")
    args = parser.parse_args(argv)

    from core.supervisor import share_threads

    cores = len(os.sched_getaffinity(0))
    n = args.workers
    print(
        f"{cores} cores; ResNet18 width {args.width}, batch {args.batch_size}, "
        f"{args.steps} timed batches per process",
        flush=True,
    )
    one = aggregate(1, cores, args)
    print(f"one process     1 x {cores} threads: {one:8.1f} img/s  (1.00x)", flush=True)
    shared = share_threads(n)
    rows = [("shared", shared), ("oversubscribed", cores)]
    for name, threads in rows:
        total = aggregate(n, threads, args)
        print(
            f"{name:<15} {n} x {threads} threads: {total:8.1f} img/s  ({total / one:.2f}x)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Aggregate training speed of K runs: one after the other, in K processes, or packed.

What it measures: training images per second summed over all runs (forward, backward and
SGD step, with per-image random crop + flip on the device), timed over --steps batches after
--warmup untimed ones, for each K in --ks, in these ways:

  one        a single run: trainer.model.ResNet18 with trainer.step.train_step, the hot loop
             of trainer.loop (as bench/trainer_speed.py times it). The reference for ratios.
  sequential K runs one after the other in this process (different seeds): what a worker
             that takes runs one by one achieves.
  slots      K processes at once, each training one run, torch's CPU threads split between
             them (--threads // K each, at least 1); on CUDA they share the one GPU. Rate:
             all images over the time from the first timed step to the last one.
  packed     the K runs as one trainer.packed_model.PackedResNet18 (grouped convolutions),
             stepped by trainer.packed_step (packed_batch, packed_train_step, PackedSGD),
             the hot loop of trainer.packed.train_packed; all K with ReLU, as `one`.
  mixed      the same with the study's four activations in turn (K = 2: ReLU and tanh;
             K >= 4: all four), side by side as trainer.packed_members.Pack orders them:
             every activation site slices the batch per activation and joins it again.

Every run trains at batch --batch-size (128) on synthetic 32x32 RGB images, precision and
memory layout as trainer.precision chooses them; width --width (64 on CUDA, 16 on a CPU by
default). Each line prints aggregate img/s and its ratio to `one`, as soon as measured.

Rerun (a few minutes on a 2-core CPU):
    python bench/pack_speed.py --ks 1,2,4 --steps 3 --warmup 1
On a GPU: python bench/pack_speed.py (K = 1, 2, 4, 8, 16; width 64). Needs torch alone:
not pydantic, which GPU machines lack (nothing here imports trainer.config).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from trainer_speed import BenchConfig, describe, make_data, sgd, sync  # noqa: E402

from trainer.augment import augment  # noqa: E402
from trainer.model import ResNet18  # noqa: E402
from trainer.packed_model import PackedResNet18, grouped_order  # noqa: E402
from trainer.packed_step import PackedSGD, packed_batch, packed_train_step  # noqa: E402
from trainer.precision import select_runtime  # noqa: E402
from trainer.step import train_step  # noqa: E402

CONFIG = BenchConfig(augmentation="crop_flip", precision="auto")
ACTIVATIONS = ("relu", "tanh", "leaky_relu", "sigmoid")  # `mixed` takes them in turn


def _orders(n: int, k: int, device: torch.device) -> list[torch.Tensor]:
    return [
        torch.randperm(n, generator=torch.Generator().manual_seed(s)).to(device) for s in range(k)
    ]


def run_one(
    images, labels, *, seed, width, batch, steps, warmup, device, ready=None
) -> tuple[float, float, int]:
    """(start, end, images) of one run's timed steps; start/end on the monotonic clock.

    ready(), if given, is called after the warmup, just before the timed steps."""
    runtime = select_runtime(CONFIG, device)  # type: ignore[arg-type]
    torch.manual_seed(seed)
    model = ResNet18(10, width).to(runtime.device, memory_format=runtime.memory_format)
    optimizer = sgd(model)
    x_all, y_all = images.to(runtime.device), labels.to(runtime.device)
    gen = torch.Generator(device=runtime.device).manual_seed(seed + 1)
    (order,) = _orders(len(y_all), 1, runtime.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    for i in range(warmup + steps):
        if i == warmup:
            sync(runtime.device)
            if ready is not None:
                ready()
            started = time.monotonic()
        start = (i * batch) % max(len(order) - batch + 1, 1)
        idx = order[start : start + batch]
        x = augment(x_all[idx], CONFIG, gen).contiguous(memory_format=runtime.memory_format)
        loss, _ = train_step(model, optimizer, runtime, x, y_all[idx])
        loss_sum += loss * batch
    loss_sum.item()
    sync(runtime.device)
    return started, time.monotonic(), steps * batch


def activations(k: int, mixed: bool) -> list[tuple[str, float]]:
    """The K members' activation specs, equal ones side by side as a Pack puts them."""
    specs = [(ACTIVATIONS[i % len(ACTIVATIONS)] if mixed else "relu", 0.01) for i in range(k)]
    return [specs[i] for i in grouped_order(specs)]


def run_packed(images, labels, *, k, mixed, width, batch, steps, warmup, device) -> float:
    """Aggregate img/s of K runs packed into one network."""
    runtime = select_runtime(CONFIG, device)  # type: ignore[arg-type]
    specs = activations(k, mixed)
    members = []
    for seed, (name, slope) in enumerate(specs):
        torch.manual_seed(seed)
        members.append(ResNet18(10, width, name, slope).state_dict())
    with torch.device("meta"):
        model = PackedResNet18(specs, 10, width)
    model = model.to_empty(device=runtime.device).to(memory_format=runtime.memory_format)
    model.load_members(members)
    del members
    optimizer = PackedSGD(
        list(model.parameters()), k, lr=[0.1] * k, momentum=[0.9] * k, weight_decay=[2e-4] * k
    )
    x_all, y_all = images.to(runtime.device), labels.to(runtime.device)
    gens = [torch.Generator(device=runtime.device).manual_seed(s + 1) for s in range(k)]
    orders = _orders(len(y_all), k, runtime.device)
    loss_sums = torch.zeros(k, dtype=torch.float64, device=runtime.device)
    for i in range(warmup + steps):
        if i == warmup:
            sync(runtime.device)
            started = time.monotonic()
        start = (i * batch) % max(len(y_all) - batch + 1, 1)
        x, y = packed_batch(
            x_all, y_all, orders, start, batch, [CONFIG] * k, gens, lambda t: t,
            runtime.memory_format,
        )  # fmt: skip
        losses, _ = packed_train_step(model, optimizer, runtime, x, y)
        loss_sums += losses * batch
    loss_sums.tolist()
    sync(runtime.device)
    return k * steps * batch / (time.monotonic() - started)


def _slot(queue, barrier, threads, kwargs) -> None:
    torch.set_num_threads(threads)
    images, labels = make_data("synthetic", kwargs.pop("n"), seed=kwargs["seed"])
    # Every slot builds and warms up first, so that the timed steps overlap.
    queue.put(run_one(images, labels, ready=barrier.wait, **kwargs))


def run_slots(n, *, k, threads, **kwargs) -> float:
    """Aggregate img/s of K processes training one run each, at the same time."""
    ctx = mp.get_context("spawn")  # safe with CUDA and with torch's thread pools
    queue, barrier = ctx.Queue(), ctx.Barrier(k)
    procs = [
        ctx.Process(
            target=_slot, args=(queue, barrier, max(1, threads // k), {**kwargs, "seed": s, "n": n})
        )
        for s in range(k)
    ]
    for p in procs:
        p.start()
    spans = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(s[2] for s in spans) / (max(s[1] for s in spans) - min(s[0] for s in spans))


def row(k: int, mode: str, speed: float, one: float) -> None:
    print(f"{k:>3}  {mode:<10} {speed:17.1f}  {speed / one:9.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    on_cuda = torch.cuda.is_available()
    parser.add_argument("--device", default="cuda" if on_cuda else "cpu")
    parser.add_argument("--ks", default="1,2,4,8,16", help="comma-separated pack sizes")
    parser.add_argument("--width", type=int, default=None, help="default 64 on CUDA, 16 on CPU")
    parser.add_argument("--batch-size", type=int, default=128, help="each run's batch")
    parser.add_argument("--steps", type=int, default=20 if on_cuda else 3)
    parser.add_argument("--warmup", type=int, default=5 if on_cuda else 1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--skip", default="", help="comma-separated modes to skip: packed, mixed, sequential, slots"
    )
    args = parser.parse_args(argv)
    width = args.width or (64 if torch.device(args.device).type == "cuda" else 16)
    ks = [int(k) for k in args.ks.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(args.threads)

    n = (args.warmup + args.steps) * args.batch_size
    images, labels = make_data("synthetic", n)
    runtime = select_runtime(CONFIG, args.device)  # type: ignore[arg-type]
    layout = "channels_last" if runtime.channels_last else "NCHW"
    print(describe(args.device))
    print(
        f"ResNet18 width {width}, batch {args.batch_size} per run, {runtime.precision} {layout}, "
        f"synthetic 32x32, crop+flip; warmup {args.warmup} + {args.steps} timed steps",
        flush=True,
    )
    common = dict(
        width=width, batch=args.batch_size, steps=args.steps, warmup=args.warmup, device=args.device
    )
    start, end, count = run_one(images, labels, seed=0, **common)
    one = count / (end - start)
    print(f"{'K':>3}  {'mode':<10} {'img/s (all runs)':>17}  {'x one run':>9}")
    row(1, "one", one, one)
    for k in ks:
        # Packed first: a run cut short by a time limit has printed what is new.
        if "packed" not in skip:
            row(k, "packed", run_packed(images, labels, k=k, mixed=False, **common), one)
        if "mixed" not in skip and k > 1:
            row(k, "mixed", run_packed(images, labels, k=k, mixed=True, **common), one)
        if "sequential" not in skip:
            spans = [run_one(images, labels, seed=s, **common) for s in range(k)]
            row(k, "sequential", sum(s[2] for s in spans) / sum(s[1] - s[0] for s in spans), one)
        if "slots" not in skip:
            row(k, "slots", run_slots(n, k=k, threads=args.threads, **common), one)
        if torch.device(args.device).type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())

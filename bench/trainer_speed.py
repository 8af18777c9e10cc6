"""Training speed of trainer/'s hot loop against a loop written like the study's notebook.

What it measures: training images per second (forward, backward and SGD step, each loop with
its own data path and augmentation), timed over --steps batches after --warmup untimed ones,
in one process, one loop after the other, on the same data and the same model class
(trainer.model.ResNet18 at --width):

  trainer    the dataset as one uint8 tensor on the device; per-image random crop (pad 4) and
             flip on the device (trainer.augment); channels_last; autocast as trainer.precision
             chooses it (bf16 where the hardware does bf16 natively, else fp32); the step of
             trainer.step.train_step, which trainer.loop runs; loss and accuracy summed on the
             device. Batch --batch-size.
  reference  the notebook's way: torch.utils.data.DataLoader (shuffle, --ref-workers worker
             processes, default 2) over a Dataset of PIL images with transforms.RandomCrop(32,
             padding=4) + RandomHorizontalFlip + ToTensor; fp32, NCHW; batch 128;
             loss.item() and accuracy .item() after every batch.

On CUDA it then times the trainer alone at batch --big-batch (512) with synthetic data, the
figure for the goal of 50,000 img/s on one H100 for full-width ResNet18 (and with --compile,
again under torch.compile).

On what: --data synthetic (random 32x32 RGB images, default) or digits (scikit-learn's
digits at 32x32, repeated as needed). The header printed first names device, CPU/GPU, torch
version and threads.

Rerun (about 4 minutes on a 2-core CPU at width 64):
    python bench/trainer_speed.py --device cpu --width 64 --steps 8 --warmup 2
On a GPU: bench/gpu_check.sh. Needs torch, torchvision and Pillow; not pydantic.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.augment import augment  # noqa: E402
from trainer.model import ResNet18  # noqa: E402
from trainer.precision import Runtime, select_runtime  # noqa: E402
from trainer.step import train_step  # noqa: E402

REFERENCE_BATCH = 128


@dataclass(frozen=True)
class BenchConfig:
    """The TrainConfig fields the hot path reads, without pydantic (absent on GPU boxes)."""

    augmentation: str = "crop_flip"
    precision: str = "auto"
    compile: bool = False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_data(kind: str, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 images N x 3 x 32 x 32 and int64 labels."""
    if kind == "digits":
        from trainer.data import load_digits

        data = load_digits()
        reps = -(-n // len(data.train_labels))
        return data.train_images.repeat(reps, 1, 1, 1)[:n], data.train_labels.repeat(reps)[:n]
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return images, torch.randint(0, 10, (n,), generator=g)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)


def time_trainer(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    width: int,
    batch: int,
    steps: int,
    warmup: int,
    device: str,
    precision: str = "auto",
    compile: bool = False,
    channels_last: bool | None = None,
) -> tuple[float, Runtime]:
    """Images/s of trainer.loop's inner loop (gather, augment, layout, train_step).

    channels_last=None takes the layout trainer.precision.choose_layout picks."""
    config = BenchConfig(precision=precision, compile=compile)
    runtime = select_runtime(config, device, channels_last)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = ResNet18(10, width).to(runtime.device, memory_format=runtime.memory_format)
    optimizer = sgd(model)
    forward = torch.compile(model) if runtime.compile else model
    x_all, y_all = images.to(runtime.device), labels.to(runtime.device)
    augment_gen = torch.Generator(device=runtime.device).manual_seed(1)
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
    order = order.to(runtime.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    correct = torch.zeros((), dtype=torch.int64, device=runtime.device)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            sync(runtime.device)
            started = time.perf_counter()
        start = (i * batch) % max(len(order) - batch + 1, 1)
        idx = order[start : start + batch]
        x = augment(x_all[idx], config, augment_gen)  # type: ignore[arg-type]
        x = x.contiguous(memory_format=runtime.memory_format)
        y = y_all[idx]
        loss, logits = train_step(forward, optimizer, runtime, x, y)
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum()
    loss_sum.item()  # waits for the device, like the end of an epoch
    sync(runtime.device)
    return steps * batch / (time.perf_counter() - started), runtime


class PILImages(torch.utils.data.Dataset):
    """CIFAR10-style dataset: HWC uint8 array -> PIL image -> transform, one image at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def time_reference(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    width: int,
    steps: int,
    warmup: int,
    device: str,
    workers: int,
) -> float:
    """Images/s of a loop written like the notebook's train() (kuangliu/pytorch-cifar style)."""
    import torchvision.transforms as transforms

    dev = torch.device(device)
    transform_train = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ]
    )
    trainset = PILImages(images, labels, transform_train)
    trainloader = torch.utils.data.DataLoader(
        trainset, batch_size=REFERENCE_BATCH, shuffle=True, num_workers=workers
    )
    torch.manual_seed(0)
    net = ResNet18(10, width).to(dev)
    criterion = nn.CrossEntropyLoss()
    optimizer = sgd(net)
    net.train()
    train_loss, correct, total = 0.0, 0, 0
    batches = iter(trainloader)
    for i in range(warmup + steps):
        if i == warmup:
            sync(dev)
            started = time.perf_counter()
        inputs, targets = next(batches)
        inputs, targets = inputs.to(dev), targets.to(dev)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        train_loss += loss.item()
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
    sync(dev)
    return steps * REFERENCE_BATCH / (time.perf_counter() - started)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def describe(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        hw = torch.cuda.get_device_name(dev)
    else:
        hw = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                hw = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
        except (OSError, StopIteration):
            pass
    return (
        f"device {dev} ({hw}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128, help="trainer's batch size")
    parser.add_argument("--steps", type=int, default=10, help="timed batches per loop")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per loop")
    parser.add_argument("--data", choices=["synthetic", "digits"], default="synthetic")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--ref-workers", type=int, default=2, help="reference DataLoader workers")
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds; best kept")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--big-batch", type=int, default=512, help="CUDA-only extra timing")
    parser.add_argument("--big-steps", type=int, default=50)
    parser.add_argument(
        "--compile", action="store_true", help="on CUDA, also time --big-batch compiled"
    )
    parser.add_argument(
        "--layout",
        choices=["auto", "compare"],
        default="auto",
        help="auto: the trainer's own choice; compare: also time the other layout (evidence "
        "for the rule; never compare below width 6 on an AVX2 CPU, where channels_last hangs)",
    )
    args = parser.parse_args(argv)

    total = (args.warmup + args.steps) * max(args.batch_size, REFERENCE_BATCH)
    images, labels = make_data(args.data, total)
    print(describe(args.device))
    print(
        f"data {args.data} 32x32, {len(labels)} images; ResNet18 width {args.width}; "
        f"warmup {args.warmup} + {args.steps} timed batches per loop",
        flush=True,
    )

    # Loops alternate, --repeats times, and each reports its best round: on a shared machine
    # other processes slow some rounds down, never speed one up.
    ours_runs: list[float] = []
    ref_runs: list[float] = []
    for _ in range(args.repeats):
        speed, runtime = time_trainer(
            images, labels, width=args.width, batch=args.batch_size, steps=args.steps,
            warmup=args.warmup, device=args.device, precision=args.precision,
        )  # fmt: skip
        ours_runs.append(speed)
        if not args.skip_reference:
            ref_runs.append(
                time_reference(
                    images,
                    labels,
                    width=args.width,
                    steps=args.steps,
                    warmup=args.warmup,
                    device=args.device,
                    workers=args.ref_workers,
                )  # fmt: skip
            )
    layout = "channels_last" if runtime.channels_last else "NCHW"
    print(f"layout chosen: {layout} ({runtime.layout_reason})", flush=True)
    print(
        f"trainer    batch {args.batch_size:>4}  {runtime.precision} {layout}, on-device "
        f"per-image crop+flip: {max(ours_runs):10.1f} img/s  (rounds: {_fmt(ours_runs)})",
        flush=True,
    )
    if args.layout == "compare":
        other = not runtime.channels_last
        speeds = [
            time_trainer(
                images, labels, width=args.width, batch=args.batch_size, steps=args.steps,
                warmup=args.warmup, device=args.device, precision=args.precision,
                channels_last=other,
            )[0]
            for _ in range(args.repeats)
        ]  # fmt: skip
        name = "channels_last" if other else "NCHW"
        print(
            f"trainer    batch {args.batch_size:>4}  {runtime.precision} {name} (not chosen): "
            f"{max(speeds):10.1f} img/s  (rounds: {_fmt(speeds)}); chosen / other: "
            f"{max(ours_runs) / max(speeds):.2f}x",
            flush=True,
        )
    if ref_runs:
        print(
            f"reference  batch {REFERENCE_BATCH:>4}  fp32 NCHW, DataLoader({args.ref_workers} "
            f"workers) + PIL transforms: {max(ref_runs):10.1f} img/s  (rounds: {_fmt(ref_runs)})",
            flush=True,
        )
        print(f"ratio trainer / reference: {max(ours_runs) / max(ref_runs):.2f}x", flush=True)

    if torch.device(args.device).type == "cuda":
        n = (args.warmup + args.big_steps) * args.big_batch
        big_images, big_labels = make_data("synthetic", n)
        variants = [False, True] if args.compile else [False]
        for compiled in variants:
            try:
                speed, rt = time_trainer(
                    big_images, big_labels, width=64, batch=args.big_batch,
                    steps=args.big_steps, warmup=max(args.warmup, 5), device=args.device,
                    precision=args.precision, compile=compiled,
                )  # fmt: skip
            except Exception as exc:  # no C compiler, no Triton: say so, keep the figures
                if not compiled:
                    raise
                print(f"compile unavailable: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                continue
            label = "compiled" if rt.compile else "eager"
            print(
                f"trainer    batch {args.big_batch:>4}  width 64 {rt.precision} {label}, "
                f"synthetic: {speed:10.0f} img/s (goal 50,000 on one H100)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

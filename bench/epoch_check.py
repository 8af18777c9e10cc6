"""One real epoch through `trainer.train`, timed: the whole path a worker runs (dataset files
read, moved to the device, per-image augmentation, training, evaluation, checkpoint).

On what: CIFAR-10's own file format filled with random images (tests/cifar_format.py), so it runs
on a machine that cannot download CIFAR-10; 50,000 training and 10,000 test images, full
width ResNet18 by default. Prints images/s for the training pass and seconds for the epoch.

Needs pydantic (trainer.config). A GPU machine without it: `bash bench/fetch_wheels.sh` here,
then carry .whl/ (bench/gpu_check.sh installs it). Without pydantic this prints why and
exits 0, so the rest of a check still runs.

Rerun:  python bench/epoch_check.py [--width 64] [--batch-size 128] [--train 50000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train", type=int, default=50_000, help="training images")
    parser.add_argument("--test", type=int, default=10_000, help="test images")
    parser.add_argument("--compile", action="store_true", help="torch.compile (CUDA only)")
    args = parser.parse_args(argv)
    try:
        from tests.cifar_format import write_cifar10_folder
        from trainer.config import TrainConfig
        from trainer.loop import train
    except ImportError as exc:
        print(f"epoch check: skipped ({exc}; run bench/fetch_wheels.sh and carry .whl/)")
        return 0

    config = TrainConfig(
        dataset="cifar10", epochs=1, width=args.width, batch_size=args.batch_size,
        compile=args.compile, train_limit=args.train, test_limit=args.test,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10_folder(Path(tmp), per_batch=-(-args.train // 5), test=args.test)
        started = time.perf_counter()
        result = train(config, data_dir=tmp, checkpoint_dir=Path(tmp) / "run")
        wall = time.perf_counter() - started
    epoch = result.epochs[0]
    env = result.environment
    print(
        f"epoch check: {env.get('gpu') or env.get('cpu')}, {env['precision']}, "
        f"channels_last={env['channels_last']}, compile={env['compile']}; width {args.width}, "
        f"batch {args.batch_size}, {args.train} images: training {epoch.images_per_second:,.0f} "
        f"img/s, epoch {epoch.seconds:.1f} s (with evaluation), {wall:.1f} s in all "
        f"(with data loading and checkpoint)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

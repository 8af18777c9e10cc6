"""`python -m trainer`: one experiment from the terminal.

Every TrainConfig field is a flag, generated from the model so the two never drift apart
(`lr_ratio` -> `--lr-ratio`, booleans as `--normalize/--no-normalize`). The values go to
TrainConfig unparsed, so the CLI validates exactly as the API does; errors name the flag and
exit with status 2.

Checkpoints: with --checkpoint-dir a checkpoint is written after every epoch. A directory
that already holds one is refused unless --resume is given, so a typo cannot silently
continue (or clobber) another run. --resume takes the config stored in the checkpoint; flags
given beside it must agree with it. --resume on an empty directory starts a new run there.

Ctrl-C stops cleanly before the next batch (the checkpoint keeps the last finished epoch);
a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import typing
from typing import Any

from pydantic import ValidationError

from trainer.config import TrainConfig

EXAMPLES = """examples:
  python -m trainer --dataset digits --width 16 --epochs 8 --batch-size 64 --lr 0.05
  python -m trainer --activation leaky_relu --lr-ratio 5:4:1 --checkpoint-dir runs/a
  python -m trainer --checkpoint-dir runs/a --resume
  python -m trainer --dataset digits --width 8 --epochs 2 --json --quiet > result.json
"""

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train and test ResNet18 for one config of the study.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    fields = parser.add_argument_group("experiment (TrainConfig fields)")
    for name, info in TrainConfig.model_fields.items():
        help_text = f"{info.description} (default: {info.default})".replace("%", "%%")
        if info.annotation is bool:
            fields.add_argument(
                _flag(name), dest=name, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip
            continue
        choices = typing.get_args(info.annotation)
        if choices:
            metavar = "{" + ",".join(choices) + "}"
        else:
            metavar = {int: "N", float: "X"}.get(info.annotation, "A:B:C")
        # No argparse type: TrainConfig parses and validates, as it does for the API.
        fields.add_argument(
            _flag(name), dest=name, default=argparse.SUPPRESS, metavar=metavar, help=help_text
        )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--data-dir",
        help="Dataset directory (default: $DATA_DIR, else ~/.resnet-lab/data).",
    )
    run.add_argument("--checkpoint-dir", help="Write a checkpoint here after every epoch.")
    run.add_argument(
        "--resume",
        action="store_true",
        help="Continue the checkpoint in --checkpoint-dir, with the config stored in it.",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="Print the result as JSON on stdout (per-epoch rows go to stderr).",
    )
    run.add_argument("--quiet", action="store_true", help="No progress bars and no epoch rows.")
    return parser


class UsageError(Exception):
    pass


def _config_from_args(args: argparse.Namespace, stored: dict[str, Any] | None) -> TrainConfig:
    given = {name: getattr(args, name) for name in TrainConfig.model_fields if name in args}
    if stored is not None:
        conflicts = [
            f"{_flag(k)} {v} (checkpoint has {stored[k]})"
            for k, v in given.items()
            if k in stored and TrainConfig(**{**stored, k: v}).model_dump()[k] != stored[k]
        ]
        if conflicts:
            raise UsageError(
                "--resume: the checkpoint was written with another config: "
                + ", ".join(conflicts)
                + ". Drop those flags, or use another --checkpoint-dir."
            )
        given = {**stored, **given}
    return TrainConfig(**given)


def _validation_message(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        # Field names inside messages become flags too ("blur_sigma_min" -> "--blur-sigma-min").
        for name in TrainConfig.model_fields:
            if "_" in name:
                message = re.sub(rf"\b{name}\b", _flag(name), message)
        if error["loc"]:
            lines.append(f"error: {_flag(str(error['loc'][0]))}: {message}")
        else:  # a check across fields
            lines.append(f"error: {message}")
    return "\n".join(lines)


def _epoch_row(m, epochs: int) -> str:
    return (
        f"epoch {m.epoch:>4}/{epochs}  lr {m.lr:<7g} "
        f"train loss {m.train_loss:.4f} acc {100 * m.train_acc:6.2f}%  "
        f"test loss {m.test_loss:.4f} acc {100 * m.test_acc:6.2f}%  "
        f"{m.seconds:6.1f}s {m.images_per_second:8.0f} img/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Imports that load torch wait until the arguments are known to be sane enough to run.
    from trainer import checkpoint

    stored = None
    if args.resume and not args.checkpoint_dir:
        return _fail("error: --resume: needs --checkpoint-dir", EXIT_USAGE)
    if args.checkpoint_dir:
        found = checkpoint.peek(args.checkpoint_dir)
        if found is not None and not args.resume:
            return _fail(
                f"error: --checkpoint-dir: {args.checkpoint_dir} already holds a checkpoint "
                f"(epoch {found['epoch']} of {found['config'].get('epochs')}); pass --resume "
                "to continue it, or choose another directory",
                EXIT_USAGE,
            )
        stored = found["config"] if found is not None else None
    try:
        config = _config_from_args(args, stored)
    except ValidationError as exc:
        return _fail(_validation_message(exc), EXIT_USAGE)
    except UsageError as exc:
        return _fail(f"error: {exc}", EXIT_USAGE)

    from tqdm import tqdm

    from trainer.data import DatasetUnavailable
    from trainer.loop import train

    rows = sys.stderr if args.json else sys.stdout
    stop_requested = False

    def on_sigint(signum, frame):
        nonlocal stop_requested
        if stop_requested:
            raise KeyboardInterrupt
        stop_requested = True
        tqdm.write("stopping before the next batch (Ctrl-C again to abort)", file=sys.stderr)

    def on_epoch(m) -> None:
        if not args.quiet:
            tqdm.write(_epoch_row(m, config.epochs), file=rows)

    # Signal handlers can only be set from the main thread (not when embedded elsewhere).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGINT, on_sigint) if in_main_thread else None
    try:
        result = train(
            config,
            on_epoch=on_epoch,
            should_stop=lambda: stop_requested,
            checkpoint_dir=args.checkpoint_dir,
            data_dir=args.data_dir,
            progress=not args.quiet,
        )
    except DatasetUnavailable as exc:
        return _fail(f"error: {exc}", EXIT_FAILED)
    except checkpoint.CheckpointMismatch as exc:
        return _fail(f"error: --checkpoint-dir: {exc}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("aborted", EXIT_INTERRUPTED)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)

    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(result.model_dump_json(indent=2))
    if not args.quiet and result.final_test_acc is not None:
        print(
            f"final test acc {100 * result.final_test_acc:.2f}% "
            f"(best {100 * result.best_test_acc:.2f}% at epoch {result.best_epoch}), "
            f"{result.total_seconds:.1f}s on {result.environment.get('device')} "
            f"({result.environment.get('precision')})",
            file=rows,
        )
    if result.stopped_early:
        print(
            f"stopped after epoch {len(result.epochs)} of {config.epochs}"
            + (f"; continue with --checkpoint-dir {args.checkpoint_dir} --resume"
               if args.checkpoint_dir else ""),
            file=sys.stderr,
        )  # fmt: skip
        return EXIT_INTERRUPTED
    return 0


def _fail(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code

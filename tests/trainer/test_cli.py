"""python -m trainer: flags from the config, errors naming the flag, JSON on stdout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.cli import build_parser, main
from trainer.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY_FLAGS = [
    "--dataset", "digits", "--width", "4", "--epochs", "2", "--batch-size", "64",
    "--train-limit", "128", "--test-limit", "64", "--augmentation", "none",
]  # fmt: skip


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
    )  # fmt: skip


def test_every_config_field_is_a_flag():
    options = {opt for action in build_parser()._actions for opt in action.option_strings}
    for name in TrainConfig.model_fields:
        assert "--" + name.replace("_", "-") in options
    assert {"--normalize", "--no-normalize", "--compile", "--no-compile"} <= options
    assert {"--data-dir", "--checkpoint-dir", "--resume", "--json", "--quiet"} <= options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr-ratio", "5:4"], "error: --lr-ratio: must be three positive integers"),
        (["--activation", "gelu"], "error: --activation: Input should be 'relu'"),
        (["--epochs", "0"], "error: --epochs: Input should be greater than or equal to 1"),
        (["--lr", "fast"], "error: --lr: Input should be a valid number"),
        (["--width", "1.5"], "error: --width:"),
        (
            ["--blur-sigma-min", "2", "--blur-sigma-max", "1"],
            "error: --blur-sigma-max: --blur-sigma-max must not be below --blur-sigma-min",
        ),
        (["--resume"], "error: --resume: needs --checkpoint-dir"),
    ],
)
def test_bad_flag_value_exits_2_naming_the_flag(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_exits_1_with_the_readable_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("trainer.data._download_cifar10", lambda root: None)  # offline
    code = main(["--dataset", "cifar10", "--data-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "cifar-10-python.tar.gz" in err and "Traceback" not in err


def test_json_output_has_the_result_shape(tmp_path):
    proc = run_cli(*TINY_FLAGS, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout is pure JSON
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    for row in result["epochs"]:
        assert set(row) >= {
            "epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
            "seconds", "images_per_second",
        }  # fmt: skip
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["test_acc"] <= 1
    assert result["final_test_acc"] == result["epochs"][-1]["test_acc"]
    assert result["best_test_acc"] == max(e["test_acc"] for e in result["epochs"])
    assert result["config"]["dataset"] == "digits" and result["config"]["width"] == 4
    assert "epoch    2/2" in proc.stderr  # human rows and bars stay on stderr


def test_existing_checkpoint_needs_resume_and_resume_keeps_its_config(tmp_path, capsys):
    ckpt = str(tmp_path / "ckpt")
    assert main([*TINY_FLAGS, "--epochs", "1", "--checkpoint-dir", ckpt, "--quiet"]) == 0
    capsys.readouterr()

    assert main([*TINY_FLAGS, "--epochs", "1", "--checkpoint-dir", ckpt]) == 2
    assert "pass --resume" in capsys.readouterr().err

    assert main(["--checkpoint-dir", ckpt, "--resume", "--lr", "0.5"]) == 2
    assert "--lr 0.5 (checkpoint has 0.1)" in capsys.readouterr().err

    # No config flags needed: the checkpoint's config is used, and the run is complete.
    assert main(["--checkpoint-dir", ckpt, "--resume", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["resumed_from_epoch"] == 1 and len(result["epochs"]) == 1
    assert result["config"]["width"] == 4

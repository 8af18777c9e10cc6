"""`resnet-lab runs|submit|grid|wait|cancel|retry|export` against a real serve process."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import pytest

from app import cli
from tests.conftest import ROOT, TINY, free_port

pytestmark = pytest.mark.integration

TINY_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]


@pytest.fixture
def lab_cli(served, capsys, monkeypatch):
    """Runs `resnet-lab ARGS` in this process against the module's server: (exit code,
    stdout, stderr)."""
    monkeypatch.setenv("RESNET_LAB_URL", served.url)
    monkeypatch.setenv("API_TOKEN", served.token)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse: bad usage
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_grid_submit_wait_list_show_and_export(lab_cli, served):
    code, out, err = lab_cli(
        "grid", "submit", *TINY_FLAGS, "--grid", "activation=relu,tanh", "--seeds", "0",
        "--name", "cli pair",
    )  # fmt: skip
    assert code == 0, err
    found = re.match(r"sweep (\d+) \(cli pair\): 2 runs: (\d+) (\d+)", out)
    assert found, out
    sweep, *run_ids = found.groups()

    code, out, err = lab_cli("wait", "--sweep", sweep, "--no-progress", "--timeout", "240")
    assert code == 0, f"{out}{err}{served.logs()}"
    assert out.count("succeeded") == 2

    code, out, _ = lab_cli("runs", "ls", "--sweep", sweep, "--json")
    runs = json.loads(out)
    assert sorted(str(r["id"]) for r in runs) == sorted(run_ids)
    assert {r["config"]["activation"] for r in runs} == {"relu", "tanh"}

    code, out, _ = lab_cli("runs", "ls", "--sweep", sweep, "--status", "succeeded", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {r["activation"] for r in rows} == {"relu", "tanh"}

    code, out, _ = lab_cli("runs", "ls", "--q", "activation=tanh", "--sweep", sweep)
    assert code == 0 and "tanh" in out and "relu" not in out.split("\n", 1)[1]

    code, out, _ = lab_cli("runs", "show", run_ids[0])
    assert code == 0 and out.startswith(f"run {run_ids[0]}  succeeded") and "width = 4" in out

    code, out, _ = lab_cli("export", sweep, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and sorted(r["run_id"] for r in rows) == sorted(run_ids)


def test_submit_cancel_wait_fails_then_retry(lab_cli, served):
    code, out, err = lab_cli("submit", *TINY_FLAGS, "--epochs", "1000", "--name", "blocker")
    assert code == 0, err
    # queued, or already running: the server's worker is idle
    blocker = re.match(r"run (\d+) (queued|running)", out).group(1)
    code, out, _ = lab_cli("submit", *TINY_FLAGS, "--activation", "tanh", "--tag", "cli", "--json")
    queued = str(json.loads(out)["id"])
    assert json.loads(out)["tags"] == ["cli"]

    code, out, _ = lab_cli("cancel", queued, blocker)
    assert code == 0 and f"run {queued} cancelled" in out
    code, out, err = lab_cli("wait", queued, blocker, "--no-progress", "--timeout", "60")
    assert code == 1, "a cancelled run fails the wait"
    assert f"run {blocker} cancelled" in out

    code, _, err = lab_cli("cancel", queued)
    assert code == 4 and "not cancellable" in err

    code, out, _ = lab_cli("retry", queued)
    assert code == 0 and re.search(rf"run {queued} (queued|running)", out), out
    code, out, err = lab_cli("wait", queued, "--no-progress", "--timeout", "120")
    assert code == 0, f"{out}{err}{served.logs()}"


def test_refusals_name_the_flag_and_exit_4(lab_cli):
    code, _, err = lab_cli("submit", "--dataset", "digits", "--width", "999")
    assert code == 4
    assert err.startswith("resnet-lab: error: --width:") and "256" in err
    assert err.count("\n") == 1

    code, _, err = lab_cli("grid", "submit", "--grid", "lr_ratio=2:1:1,9:x", *TINY_FLAGS)
    assert code == 4 and "--grid lr_ratio" in err

    code, _, err = lab_cli("runs", "show", "999999999")
    assert code == 4 and "not found" in err


def test_bad_usage_exits_2(lab_cli):
    code, _, err = lab_cli("submit", "--dataset", "nope")
    assert code == 2 and "--dataset" in err
    code, _, err = lab_cli("grid", "submit", "--grid", "nonsense=1,2")
    assert code == 2 and "not a config field" in err
    code, _, err = lab_cli("grid", "submit", *TINY_FLAGS)
    assert code == 2 and "--grid" in err
    code, _, _ = lab_cli("wait", "not-an-id")
    assert code == 2


def test_submit_help_lists_every_config_field(lab_cli):
    code, out, _ = lab_cli("submit", "--help")
    assert code == 0
    for flag in ("--dataset", "--width", "--lr-ratio", "--train-limit", "--no-compile"):
        assert flag in out


def test_an_unreachable_server_exits_3():
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "--url", url, "runs", "ls"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3
    assert url in result.stderr and result.stderr.count("\n") == 1


def test_the_server_commands_are_unchanged():
    args = cli.build_parser().parse_args(["serve", "--port", "8001", "--workers", "0"])
    assert (args.func, args.port, args.workers, args.host) == (cli.serve, 8001, 0, "127.0.0.1")
    args = cli.build_parser().parse_args(["worker", "--slots", "2"])
    assert (args.func, args.slots) == (cli.worker, 2)

"""`pip install .` (not editable) gives a working dashboard.

Builds the wheel from a copy of the sources, installs it into a fresh virtualenv and runs
`resnet-lab serve` from there, far from the source tree, then fetches every page. The new
environment borrows this one's installed dependencies through a .pth file (fast, offline),
added only after the wheel is installed, and `app` itself must come from the wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, TINY, start_serve, stop_process_group

# What `pip install .` reads from the repository.
SOURCES = (
    "pyproject.toml",
    "README.md",
    "app",
    "core",
    "resnet_lab",
    "trainer",
    "worker",
    "templates",
)
# Folders whose every file the dashboard needs at run time, and where the wheel puts them.
DATA_FOLDERS = {"app/static": "app/static", "app/data": "app/data", "templates": "app/templates"}

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy so that the checkout gets no build/ or egg-info."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=skip)
        else:
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", base, src],
        check=True,
        timeout=180,
    )
    (built,) = base.glob("resnet_lab-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh virtualenv with the wheel installed, then this environment's packages."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env_dir], check=True)
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python]
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "-q", wheel], check=True)
    # After the install: pip must not see (or touch) the checkout's editable install.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    # Plain path lines: the .pth files in there (the editable install's finder) stay unread.
    (Path(site) / "resnet_lab_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return env_dir


def _clean_env(home: Path) -> dict[str, str]:
    drop = {"PYTHONPATH", "DATABASE_URL", "BROKER_URL", "API_TOKEN", "DATA_DIR", "RUNS_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["RESNET_LAB_HOME"] = str(home)
    return env


def test_wheel_carries_every_package_template_and_static_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(Path(n).parent).replace("/", ".") for n in names if "dist-info" not in n}
    # Every Python package (static and data folders are checked file by file below).
    expected = {
        str(init.parent.relative_to(ROOT)).replace("/", ".")
        for top in ("app", "core", "trainer", "worker")
        for init in (ROOT / top).rglob("__init__.py")
    } | {"app.templates"}
    assert expected <= packages, f"missing from the wheel: {expected - packages}"
    for folder, inside in DATA_FOLDERS.items():
        files = [
            p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
        assert files, folder
        for path in files:
            name = f"{inside}/{path.relative_to(ROOT / folder).as_posix()}"
            assert name in names, f"{name} is not in the wheel"


def test_installed_app_is_imported_from_the_virtualenv_not_the_checkout(venv, tmp_path):
    out = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "import app.pages as p; print(p.__file__, p.TEMPLATES_DIR)",
        ],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    module, templates = (Path(p).resolve() for p in out)
    assert module.is_relative_to(venv.resolve()), module
    assert templates == module.parent / "templates", templates


@pytest.fixture
def served(venv, tmp_path) -> Iterator[httpx.Client]:
    """`resnet-lab serve --workers 0` from the virtualenv, in a folder outside the checkout."""
    home = tmp_path / "home"
    proc, base = start_serve(
        "--workers", "0", "--home", str(home), env=_clean_env(home), log=tmp_path / "serve.log",
        command=[str(venv / "bin" / "resnet-lab")], cwd=tmp_path, timeout=90,
    )  # fmt: skip
    client = httpx.Client(base_url=base, timeout=10)
    try:
        yield client
    finally:
        client.close()
        stop_process_group(proc, grace=15)


def test_installed_serve_answers_every_page(served):
    run = served.post("/api/runs", json=TINY)
    sweep = served.post("/api/sweeps", json={"base": TINY, "grid": {"width": [2, 4]}})
    assert run.status_code == sweep.status_code == 201, (run.text, sweep.text)
    pages = {
        "/": "/static/js/pages/runs.js",
        "/runs/new": "/static/js/pages/run_new.js",
        f"/runs/{run.json()['id']}": "/static/js/pages/run.js",
        "/sweeps": "/static/js/pages/sweeps.js",
        "/sweeps/new": "/static/js/pages/sweep_new.js",
        f"/sweeps/{sweep.json()['id']}": "/static/js/sweep/main.js",
        "/compare": "/static/js/pages/compare.js",
        "/login": "/static/css/app.css",
    }
    for path, marker in pages.items():
        response = served.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html"), path
        html = response.text
        assert html.lstrip().lower().startswith("<!doctype html>"), path
        # Pages name their modules by versioned URLs: /static/v/<hash>/js/pages/...
        versioned = r'(?:src|href)="(/static/v/[0-9a-f]+' + marker.removeprefix("/static") + ')"'
        module = re.search(versioned, html)
        assert 'href="/sweeps/new"' in html and module, path
        assert served.get(module.group(1)).status_code == 200, module.group(1)
    for asset in ("/static/js/lib/api.js", "/static/css/app.css", "/static/vendor/plotly.min.js"):
        assert served.get(asset).status_code == 200, asset

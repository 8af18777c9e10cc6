"""docker-compose.yml and the Dockerfile stay in step with the code (no Docker here: read)."""

from __future__ import annotations

import tomllib

import yaml

from tests.conftest import ROOT


def test_compose_services_have_healthchecks_volumes_and_wait_for_each_other():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["volumes"], name
    for name in ("app", "worker"):
        waits = services[name]["depends_on"]
        assert {waits[s]["condition"] for s in ("redis", "postgres")} == {"service_healthy"}
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    command = " ".join(services["worker"]["command"])
    assert "--pack" in command and "--slots" in command


def test_the_image_copies_every_package_the_wheel_ships():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tops = {p.split(".")[0] for p in packages["packages"]}
    dockerfile = (ROOT / "Dockerfile").read_text()
    for top in tops | {"templates"}:
        assert f"COPY {top} {top}" in dockerfile, top

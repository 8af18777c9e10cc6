"""A packing worker's companions, over a real SQLite file: compatible queued runs with the
lead's activation first, then the others, in id order within each; each claimed with the
compare-and-set of any task."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from core import lifecycle, migrate
from core.config import Settings
from core.db import Run, RunStatus
from core.store import open_store
from tests.conftest import TINY
from trainer.config import TrainConfig
from worker import tasks

# In id order: (activation, leaky_relu slope, width); width 8 cannot share a width-4 pack.
RUNS = [
    ("relu", 0.01, 4),  # 1: a lead
    ("tanh", 0.01, 4),  # 2: a lead
    ("relu", 0.01, 8),  # 3
    ("tanh", 0.01, 4),  # 4
    ("relu", 0.3, 4),  # 5: relu all the same (the slope is leaky_relu's)
    ("leaky_relu", 0.2, 4),  # 6
    ("relu", 0.01, 4),  # 7
    ("leaky_relu", 0.1, 4),  # 8
    ("relu", 0.01, 4),  # 9
    ("leaky_relu", 0.2, 4),  # 10
]


@pytest.fixture
def world(tmp_path, monkeypatch):
    """(sessions, settings, store) over a migrated SQLite file holding RUNS, all queued."""
    monkeypatch.setenv("RESNET_LAB_HOME", str(tmp_path))
    monkeypatch.delenv("RUNS_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session:
        for activation, slope, width in RUNS:
            config = dict(TINY, activation=activation, leaky_relu_slope=slope, width=width)
            session.add(lifecycle.new_run(TrainConfig(**config)))
        session.commit()
    settings = Settings()
    yield sessions, settings, open_store(settings)
    engine.dispose()


def companions(world, lead: int, pack: int) -> list[int]:
    sessions, settings, store = world
    settings = settings.model_copy(update={"pack": pack})
    with sessions() as session:
        first = tasks._claim(session, lead, settings, store)
        assert isinstance(first, tasks.Member)
        return [m.run_id for m in tasks._claim_companions(session, first, settings, store)]


def statuses(world) -> dict[int, str]:
    with world[0]() as session:
        return {r.id: r.status for r in session.query(Run).order_by(Run.id)}


def test_companions_share_the_leads_activation_first_then_come_in_id_order(world):
    assert companions(world, lead=1, pack=3) == [5, 7]  # relu, not the tanh run 2 or 4
    assert companions(world, lead=2, pack=4) == [4, 6, 8]  # tanh 4, then the others
    running = {1, 2, 4, 5, 6, 7, 8}
    assert {i for i, s in statuses(world).items() if s == RunStatus.running} == running


def test_a_leaky_relu_lead_prefers_its_own_slope(world):
    assert companions(world, lead=6, pack=2) == [10]
    assert companions(world, lead=8, pack=3) == [1, 2]  # no other slope 0.1: id order


def test_a_run_another_worker_takes_between_scan_and_claim_is_passed_over(world, monkeypatch):
    sessions, settings, _ = world
    real_claim = lifecycle.claim

    def claim(session, run_id, worker, heartbeat_timeout):
        if run_id == 5:  # another worker's compare-and-set lands first
            with sessions() as other:
                assert real_claim(other, 5, "other:1", heartbeat_timeout)
        return real_claim(session, run_id, worker, heartbeat_timeout)

    monkeypatch.setattr(lifecycle, "claim", claim)
    assert companions(world, lead=1, pack=3) == [7, 9]
    with sessions() as session:
        assert session.get(Run, 5).worker == "other:1"

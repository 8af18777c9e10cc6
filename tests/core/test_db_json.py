"""JSON columns read back what was written: orjson decodes them, and the NaN or Infinity
that the json module writes (and orjson refuses) still come back as floats."""

from __future__ import annotations

import math

from sqlalchemy.orm import Session

from core import lifecycle, migrate
from core.db import Run, make_engine
from tests.conftest import TINY
from trainer.config import TrainConfig


def test_json_columns_round_trip_with_nan_and_infinity(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            run = lifecycle.new_run(TrainConfig(**TINY))
            run.environment = {"loss": math.nan, "ratio": math.inf, "name": "é", "n": [1, 2.5]}
            run.tags = ["a", "b"]
            session.add(run)
            session.commit()
            run_id = run.id
        with Session(engine) as session:
            stored = session.get(Run, run_id)
            assert math.isnan(stored.environment["loss"])
            assert stored.environment["ratio"] == math.inf
            assert stored.environment["name"] == "é" and stored.environment["n"] == [1, 2.5]
            assert stored.tags == ["a", "b"]
            assert stored.config == TrainConfig(**TINY).model_dump(mode="json")
    finally:
        engine.dispose()

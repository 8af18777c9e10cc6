"""Group statistics and scatter points of filtered runs (GET /api/runs/groups, /scatter)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from core import lifecycle
from core.db import new_session
from tests.app.test_bulk import submit, succeed
from tests.conftest import epoch_row, record_epochs
from trainer.config import TrainConfig
from trainer.results import EpochMetrics, RunResult


def t_interval(values: list[float]) -> tuple[float, float]:
    """The 95 % t-interval of the mean, computed independently of the app."""
    a = np.asarray(values)
    return stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=stats.sem(a))


def succeed_with_loss(run_id: int, acc: float, last_loss: float) -> None:
    def epoch(n: int, loss: float) -> EpochMetrics:
        return EpochMetrics(epoch=n, lr=0.1, train_loss=loss, train_acc=acc, test_loss=loss,
                            test_acc=acc, seconds=1.0, images_per_second=10.0)  # fmt: skip

    owner = record_epochs(run_id, epoch(1, 9.0), epoch(2, last_loss))
    config = TrainConfig(dataset="digits", width=4, epochs=2)
    result = RunResult(config=config, final_test_acc=acc, best_test_acc=acc)
    with new_session() as session:
        assert lifecycle.finish(session, run_id, result, owner)


@pytest.fixture
def runs(api) -> dict[str, list[int]]:
    """relu: three succeeded (0.90, 0.92, 0.94); tanh: one succeeded (0.60), one queued;
    sigmoid at width 8: one running (a best accuracy, but no result)."""
    relu = submit(api, 3, activation="relu")
    tanh = submit(api, 2, activation="tanh")
    sigmoid = submit(api, 1, activation="sigmoid", width=8)
    for run_id, acc in zip(relu, (0.90, 0.92, 0.94)):
        succeed(run_id, acc)
    succeed(tanh[0], 0.60)
    record_epochs(sigmoid[0], epoch_row(1, 0.99))
    return {"relu": relu, "tanh": tanh, "sigmoid": sigmoid}


def test_groups_give_n_mean_std_and_the_95_interval_of_succeeded_runs(api, runs):
    answer = api.get("/api/runs/groups", params={"by": "activation"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["by"] == ["activation"] and body["metric"] == "final_test_acc"
    assert body["total_runs"] == 6
    groups = {g["key"]["activation"]: g for g in body["groups"]}
    assert list(groups) == ["relu", "sigmoid", "tanh"]  # in value order
    relu = groups["relu"]
    assert (relu["runs"], relu["n"]) == (3, 3)
    assert relu["mean"] == pytest.approx(0.92)
    assert relu["std"] == pytest.approx(np.std([0.90, 0.92, 0.94], ddof=1))
    assert relu["ci95"] == pytest.approx(list(t_interval([0.90, 0.92, 0.94])))
    tanh = groups["tanh"]
    assert (tanh["runs"], tanh["n"], tanh["mean"], tanh["std"], tanh["ci95"]) == (
        2, 1, pytest.approx(0.60), None, None,
    )  # fmt: skip
    assert tanh["statuses"] == {"succeeded": 1, "queued": 1}
    # a running run's best accuracy so far is no result
    assert groups["sigmoid"]["n"] == 0 and groups["sigmoid"]["mean"] is None


def test_groups_follow_the_filters_and_take_several_fields(api, runs):
    body = api.get("/api/runs/groups", params={"by": "width,status", "q": "width=4"}).json()
    assert body["total_runs"] == 5
    keys = [(g["key"]["width"], g["key"]["status"]) for g in body["groups"]]
    assert keys == [(4, "queued"), (4, "succeeded")]
    assert body["groups"][1]["n"] == 4
    only_tanh = api.get("/api/runs/groups", params={"by": "activation", "activation": "tanh"})
    assert [g["key"] for g in only_tanh.json()["groups"]] == [{"activation": "tanh"}]
    by_status = api.get("/api/runs/groups", params={"by": "status", "status": ["running"]})
    assert [(g["key"], g["runs"]) for g in by_status.json()["groups"]] == [
        ({"status": "running"}, 1)
    ]


def test_an_accuracy_interval_is_clipped_to_one_and_losses_come_from_the_last_epoch(api):
    a, b, c = submit(api, 3)
    succeed_with_loss(a, 0.99, 0.2)
    succeed_with_loss(b, 0.50, 0.4)
    succeed_with_loss(c, 0.70, float("nan"))  # a diverged last epoch: no value
    acc = api.get("/api/runs/groups", params={"by": "dataset"}).json()["groups"][0]
    assert acc["n"] == 3 and acc["ci95"][1] == 1.0 and acc["ci95"][0] < 0.5
    loss = api.get("/api/runs/groups", params={"by": "dataset", "metric": "final_test_loss"}).json()
    group = loss["groups"][0]
    assert group["n"] == 2 and group["mean"] == pytest.approx(0.3)
    assert group["ci95"][0] == 0.0  # a loss is never negative
    assert loss["metric_label"] == "final test loss"


def test_scatter_gives_one_point_per_succeeded_run(api, runs):
    body = api.get("/api/runs/scatter", params={"x": "activation", "y": "best_test_acc"}).json()
    points = {p["run_id"]: (p["x"], p["y"]) for p in body["points"]}
    assert points == {
        runs["relu"][0]: ("relu", 0.90),
        runs["relu"][1]: ("relu", 0.92),
        runs["relu"][2]: ("relu", 0.94),
        runs["tanh"][0]: ("tanh", 0.60),
    }
    assert body["total_runs"] == 6
    narrowed = api.get("/api/runs/scatter", params={"x": "width", "activation": "tanh"}).json()
    assert [(p["x"], p["y"]) for p in narrowed["points"]] == [(4, pytest.approx(0.60))]


@pytest.mark.parametrize(
    ("path", "params", "field", "words"),
    [
        ("/api/runs/groups", {"by": "activation,colour"}, "by", "unknown field 'colour'"),
        ("/api/runs/groups", {"by": ","}, "by", "at least one field"),
        ("/api/runs/groups", {"by": "dataset,activation,lr_ratio,width,seed"}, "by", "at most 4"),
        ("/api/runs/groups", {"metric": "happiness"}, "metric", ""),
        ("/api/runs/groups", {"status": "done"}, "status", ""),
        ("/api/runs/scatter", {"x": "colour"}, "x", ""),
        ("/api/runs/scatter", {"y": "test_acc"}, "y", ""),
    ],
)
def test_unknown_fields_and_metrics_are_422_naming_them(api, path, params, field, words):
    response = api.get(path, params=params)
    assert response.status_code == 422, response.text
    named = [e for e in response.json()["detail"] if field in e["loc"]]
    assert named and words in named[0]["msg"], response.text

"""The grid's analysis: ANOVA against a textbook's table, unequal and one-run cells, effects,
the seeds a difference needs, and the endpoints over sweeps made of factory rows."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from statsmodels.stats.power import TTestIndPower

from app import analysis
from tests.conftest import TINY, finished_grid

# Montgomery, Design and Analysis of Experiments, Example 5.1 (Table 5.1): battery life in
# hours, material type x temperature (°F), 4 replicates.
BATTERY = {
    (1, 15): [130, 155, 74, 180], (1, 70): [34, 40, 80, 75], (1, 125): [20, 70, 82, 58],
    (2, 15): [150, 188, 159, 126], (2, 70): [136, 122, 106, 115], (2, 125): [25, 70, 58, 45],
    (3, 15): [138, 110, 168, 160], (3, 70): [174, 120, 150, 139], (3, 125): [96, 82, 60, 104],
}  # fmt: skip
BATTERY_GRID = {"material": [1, 2, 3], "temperature": [15, 70, 125]}


def factory_runs(cells: dict[tuple, list[float]], factors: list[str]) -> list[dict]:
    """Succeeded runs as analysis.sweep_runs returns them, one per value."""
    runs = []
    for key, values in cells.items():
        for value in values:
            runs.append(
                {
                    "id": len(runs) + 1,
                    "config": dict(zip(factors, key)),
                    "status": "succeeded",
                    "error": None,
                    "train_seconds": 60.0,
                    "value": value,
                }
            )
    return runs


def by_term(result: dict) -> dict[str, dict]:
    return {row["term"]: row for row in result["rows"]}


def test_two_way_anova_reproduces_montgomery_example_5_1():
    result = analysis.fit(factory_runs(BATTERY, list(BATTERY_GRID)), BATTERY_GRID)
    assert result["model"] == analysis.TWO_WAY and result["n"] == 36
    rows = by_term(result)
    # The book's Table 5.5, to its printed precision.
    printed = {
        "material": (10683.72, 2, 5341.86, 7.91, 0.0020),
        "temperature": (39118.72, 2, 19559.36, 28.97, None),  # printed as < 0.0001
        "material:temperature": (9613.78, 4, 2403.44, 3.56, 0.0186),
    }
    for term, (ss, df, ms, f, p) in printed.items():
        row = rows[term]
        assert row["sum_sq"] == pytest.approx(ss, abs=0.005)
        assert row["df"] == df
        assert row["sum_sq"] / row["df"] == pytest.approx(ms, abs=0.005)
        assert row["F"] == pytest.approx(f, abs=0.005)
        if p is None:
            assert row["p"] < 0.0001
        else:
            assert row["p"] == pytest.approx(p, abs=0.00005)
    residual = result["residual"]
    assert residual["sum_sq"] == pytest.approx(18230.75, abs=0.005)
    assert residual["df"] == 27 and residual["mean_sq"] == pytest.approx(675.21, abs=0.005)
    eta = rows["temperature"]["partial_eta_sq"]
    assert eta == pytest.approx(39118.72 / (39118.72 + 18230.75), abs=1e-6)
    # η²: the share of the book's total sum of squares, 77646.97 (Table 5.5).
    assert rows["temperature"]["eta_sq"] == pytest.approx(39118.72 / 77646.97, abs=1e-6)


def _rss(y: np.ndarray, *blocks: np.ndarray) -> float:
    x = np.column_stack([np.ones(len(y)), *blocks])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(((y - x @ beta) ** 2).sum())


def _dummies(levels: list[int], count: int) -> np.ndarray:
    return np.array([[1.0 if lv == j else 0.0 for j in range(1, count)] for lv in levels])


def test_unbalanced_grid_uses_type_ii_sums_of_squares():
    # Two runs lost: the cells are unequal, and type I (sequential) sums would depend on the
    # order of the factors. Type II: each main effect adjusted for the other.
    cells = {k: list(v) for k, v in BATTERY.items()}
    cells[(1, 15)].pop()
    cells[(3, 70)].pop(0)
    result = analysis.fit(factory_runs(cells, list(BATTERY_GRID)), BATTERY_GRID)
    assert result["model"] == analysis.TWO_WAY and result["n"] == 34
    obs = result["obs"]
    y = np.array([o["value"] for o in obs])
    a = _dummies([o["levels"][0] for o in obs], 3)
    b = _dummies([o["levels"][1] for o in obs], 3)
    ab = np.column_stack([a[:, i] * b[:, j] for i in range(2) for j in range(2)])
    rows = by_term(result)
    assert rows["material"]["sum_sq"] == pytest.approx(_rss(y, b) - _rss(y, a, b))
    assert rows["temperature"]["sum_sq"] == pytest.approx(_rss(y, a) - _rss(y, a, b))
    interaction = _rss(y, a, b) - _rss(y, a, b, ab)
    assert rows["material:temperature"]["sum_sq"] == pytest.approx(interaction)
    assert result["residual"]["df"] == 34 - 9


def test_one_run_per_cell_fits_the_additive_model_and_says_so():
    cells = {k: [v[0]] for k, v in BATTERY.items()}
    result = analysis.fit(factory_runs(cells, list(BATTERY_GRID)), BATTERY_GRID)
    assert result["model"] == analysis.ADDITIVE
    assert "interactions" in result["note"]
    assert [r["term"] for r in result["rows"]] == ["material", "temperature"]
    assert result["residual"]["df"] == 9 - 1 - 2 - 2


def test_too_few_runs_or_nothing_varying_is_an_empty_table_with_a_reason():
    cells = {(1, 15): [1.0, 2.0], (2, 15): [3.0]}
    grid = {"material": [1, 2], "temperature": [15]}
    result = analysis.fit(factory_runs(cells, list(grid)), grid)
    assert result["rows"] == [] and "material = 2 has 1;" in result["note"]
    flat = {"material": [1], "temperature": [15]}
    result = analysis.fit(factory_runs({(1, 15): [1.0, 2.0]}, list(flat)), flat)
    assert result["rows"] == [] and "No factor varies" in result["note"]


def test_effect_interval_is_the_marginal_difference_with_the_residual_variance():
    result = analysis.fit(factory_runs(BATTERY, list(BATTERY_GRID)), BATTERY_GRID)
    effects = analysis.effects(result, BATTERY_GRID, None, "final_test_loss")
    temperature = next(e for e in effects if e["factor"] == "temperature")
    assert temperature["reference"] == 15
    hot = next(level for level in temperature["levels"] if level["level"] == 125)
    means = {t: np.mean([y for (m, tt), ys in BATTERY.items() if tt == t for y in ys])
             for t in (15, 125)}  # fmt: skip
    assert hot["diff"] == pytest.approx(means[125] - means[15])
    # Balanced: 12 runs per level, so the standard error is sqrt(MSE * (1/12 + 1/12)).
    half = 2.0518305 * math.sqrt(675.2130 * 2 / 12)  # t(0.975, 27)
    assert hot["ci95"] == pytest.approx([hot["diff"] - half, hot["diff"] + half], rel=1e-5)


def test_seeds_needed_matches_statsmodels_by_hand():
    # Every cell: mean ± 0.004, so the residual sd is exactly 0.004; 0.2 points is d = 0.5.
    grid = {"activation": ["relu", "tanh"], "lr_ratio": ["2:1:1", "5:4:1"]}
    cells = {
        key: [m - 0.004, m, m + 0.004]
        for key, m in zip(itertools.product(*grid.values()), [0.90, 0.85, 0.91, 0.86])
    }
    runs = factory_runs(cells, list(grid))
    result = analysis.seeds_needed(analysis.fit(runs, grid), grid, runs, 3, 0.002, 0.05, 0.8)
    assert result["residual_sd"] == pytest.approx(0.004)
    n_level = TTestIndPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8)  # 63.77
    activation = result["factors"][0]
    assert activation["cells_per_level"] == 2
    assert activation["runs_per_level"] == pytest.approx(n_level)
    assert activation["seeds_per_cell"] == math.ceil(n_level / 2) == 32
    assert activation["extra_seeds"] == 29 and activation["extra_runs"] == 29 * 4
    assert activation["extra_train_seconds"] == pytest.approx(29 * 4 * 60.0)


# ---------------------------------------------------------------- the endpoints


GRID = {"activation": ["relu", "sigmoid"], "lr_ratio": ["2:1:1", "5:4:1", "5:3:2"]}
# Sigmoid costs about 5 points; the LR ratio next to nothing.
MEANS = {"relu": 0.90, "sigmoid": 0.85}
RATIO = {"2:1:1": 0.0, "5:4:1": 0.001, "5:3:2": -0.001}
JITTER = [-0.003, 0.0, 0.004]


def make_sweep(api, seeds=(0, 1, 2), fail: int | None = None) -> dict:
    """A sweep whose runs are finished by hand: no training. `fail`: one run fails."""

    def acc(config: dict, i: int) -> float:
        return MEANS[config["activation"]] + RATIO[config["lr_ratio"]] + JITTER[i % len(seeds)]

    failures = {fail: "CUDA out of memory"} if fail is not None else None
    return finished_grid(api, GRID, acc, seeds=seeds, fail=failures)


def test_anova_endpoint_on_factory_rows_with_a_failed_run(api):
    sweep = make_sweep(api, fail=4)
    response = api.get(f"/api/sweeps/{sweep['id']}/anova")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["metric"] == "final_test_acc" and result["n"] == 17
    assert result["model"] == "two-way interactions"
    rows = {r["term"]: r for r in result["rows"]}
    assert set(rows) == {"activation", "lr_ratio", "activation:lr_ratio"}
    assert rows["activation"]["p"] < 0.001 and rows["activation"]["partial_eta_sq"] > 0.9
    assert rows["lr_ratio"]["df"] == 2 and result["residual"]["df"] == 17 - 6
    loss = api.get(f"/api/sweeps/{sweep['id']}/anova", params={"metric": "final_test_loss"})
    assert loss.status_code == 200, loss.text
    assert loss.json()["rows"][0]["sum_sq"] == pytest.approx(rows["activation"]["sum_sq"])


def test_one_seed_sweep_answers_the_additive_model(api):
    sweep = make_sweep(api, seeds=(0,))
    result = api.get(f"/api/sweeps/{sweep['id']}/anova").json()
    assert result["model"] == "additive (one run per cell: interactions left as error)"
    assert [r["term"] for r in result["rows"]] == ["activation", "lr_ratio"]


def test_effects_endpoint_reads_as_sentences_with_intervals(api):
    sweep = make_sweep(api)
    response = api.get(f"/api/sweeps/{sweep['id']}/effects", params={"baseline": "activation:relu"})
    assert response.status_code == 200, response.text
    result = response.json()
    activation = next(e for e in result["effects"] if e["factor"] == "activation")
    (sigmoid,) = activation["levels"]
    assert activation["reference"] == "relu"
    assert sigmoid["diff"] == pytest.approx(-0.05)
    assert sigmoid["ci95"][0] < -0.05 < sigmoid["ci95"][1] < 0
    assert sigmoid["text"].startswith("sigmoid \u2212 relu: \u22125.00 points [")
    (pair,) = result["interactions"]
    assert pair["factor"] == "activation" and pair["across"] == "lr_ratio"
    assert [p["n"] for s in pair["series"] for p in s["points"]] == [3] * 6


def test_power_endpoint_reports_seeds_and_the_time_they_cost(api):
    sweep = make_sweep(api)
    response = api.get(f"/api/sweeps/{sweep['id']}/power", params={"difference": 0.2})
    assert response.status_code == 200, response.text
    result = response.json()
    sd = result["residual_sd"]
    n_level = TTestIndPower().solve_power(effect_size=0.002 / sd, alpha=0.05, power=0.8)
    by_factor = {f["factor"]: f for f in result["factors"]}
    assert by_factor["activation"]["seeds_per_cell"] == math.ceil(n_level / 3)
    assert by_factor["lr_ratio"]["seeds_per_cell"] == math.ceil(n_level / 2)
    assert result["seeds"] == 3 and result["mean_run_seconds"] == pytest.approx(30.0)
    extra = by_factor["lr_ratio"]["extra_seeds"]
    assert by_factor["lr_ratio"]["extra_train_seconds"] == pytest.approx(extra * 6 * 30.0)


def test_too_few_finished_runs_is_200_with_a_reason_not_500(api):
    sweep = api.post("/api/sweeps", json={"base": TINY, "grid": GRID}).json()
    for path in ("anova", "effects", "power"):
        response = api.get(f"/api/sweeps/{sweep['id']}/{path}")
        assert response.status_code == 200, response.text
        assert response.json()["note"].startswith("Too few finished runs")
    assert api.get(f"/api/sweeps/{sweep['id']}/anova").json()["rows"] == []


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("anova", {"metric": "accuracy"}, "metric"),
        ("effects", {"metric": ""}, "metric"),
        ("effects", {"baseline": "activation:swish"}, "baseline"),
        ("power", {"difference": "0"}, "difference"),
        ("power", {"difference": "nan"}, "difference"),
        ("power", {"difference": "lots"}, "difference"),
        ("power", {"alpha": "1"}, "alpha"),
        ("power", {"power": "1.5"}, "power"),
        ("power", {"power": "0.01"}, "power"),  # below alpha
    ],
)
def test_bad_query_values_are_422_naming_the_field(api, path, params, field):
    sweep = api.post("/api/sweeps", json={"base": TINY, "grid": GRID}).json()
    response = api.get(f"/api/sweeps/{sweep['id']}/{path}", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_unknown_sweep_is_404(api):
    assert api.get("/api/sweeps/999/anova").status_code == 404

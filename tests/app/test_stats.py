"""The sweep statistics agree with scipy.stats' own tests."""

from __future__ import annotations

import pytest
from scipy import stats as ref

from app.stats import describe, holm, one_sample_p, progress, summarize, welch_p

A = [0.9412, 0.9433, 0.9401, 0.9450]
B = [0.9380, 0.9391, 0.9402]


def test_welch_p_matches_scipy_ttest_ind_unequal_variances():
    assert welch_p(A, B) == pytest.approx(ref.ttest_ind(A, B, equal_var=False).pvalue, rel=1e-9)


def test_one_sample_p_matches_scipy_ttest_1samp():
    assert one_sample_p(A, 0.9498) == pytest.approx(ref.ttest_1samp(A, 0.9498).pvalue, rel=1e-9)


def test_describe_gives_mean_sample_std_and_student_t_interval():
    d = describe(A)
    low, high = ref.t.interval(0.95, len(A) - 1, loc=d["mean"], scale=ref.sem(A))
    assert d["n"] == 4
    assert d["std"] == pytest.approx(ref.tstd(A))
    assert d["ci95"] == pytest.approx([low, high])


def test_undefined_tests_are_none_not_nan():
    assert welch_p([0.5], B) is None
    assert one_sample_p([0.5, 0.5], 0.5) is None
    assert describe([0.7]) == {"n": 1, "mean": 0.7, "std": None, "ci95": None}


def test_summary_counts_only_succeeded_runs_and_progress_counts_epochs():
    runs = [
        {
            "id": 1,
            "config": {"activation": "relu"},
            "status": "succeeded",
            "final_test_acc": 0.9,
            "epochs_done": 10,
            "epochs_total": 10,
            "train_seconds": 10.0,
        },
        {
            "id": 2,
            "config": {"activation": "relu"},
            "status": "running",
            "final_test_acc": None,
            "epochs_done": 5,
            "epochs_total": 10,
            "train_seconds": 5.0,
        },
        {
            "id": 3,
            "config": {"activation": "tanh"},
            "status": "failed",
            "final_test_acc": None,
            "epochs_done": 2,
            "epochs_total": 10,
            "train_seconds": 2.0,
        },
    ]
    summary = summarize(runs, ["activation"], {"activation": "relu"})
    relu = next(c for c in summary["cells"] if c["key"]["activation"] == "relu")
    assert (
        relu["n"] == 1
        and relu["mean"] == 0.9
        and relu["statuses"] == {"succeeded": 1, "running": 1}
    )
    p = progress(runs)
    assert p["progress"] == pytest.approx(25 / 30)
    # 5 epochs left at 17 s / 17 epochs, one run in flight.
    assert p["eta_seconds"] == pytest.approx(5.0)


def test_holm_matches_a_hand_computed_example():
    # Sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> 0.06
    # (an adjusted p never falls below a smaller raw p's).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_skips_missing_p_values_and_caps_at_one():
    assert holm([None, 0.5, None, 0.6]) == [None, 1.0, None, 1.0]
    assert holm([0.02, None]) == [0.02, None]  # one test: nothing to adjust
    assert holm([]) == []


def _run(run_id, config, status, acc):
    return {
        "id": run_id,
        "config": config,
        "status": status,
        "final_test_acc": acc,
        "epochs_done": 1,
        "epochs_total": 1,
        "train_seconds": 1.0,
    }


def test_summary_reports_holm_adjusted_p_values_beside_the_raw_ones():
    accs = {
        ("relu", 0): [0.90, 0.91, 0.92],
        ("tanh", 0): [0.88, 0.90, 0.89],
        ("sigmoid", 0): [0.50, 0.55, 0.52],
        ("leaky_relu", 0): [0.91, 0.90, 0.93],
    }
    runs = []
    for (activation, _), values in accs.items():
        for acc in values:
            config = {"dataset": "cifar10", "activation": activation, "lr_ratio": "2:1:1",
                      "augmentation": "crop_flip"}  # fmt: skip
            runs.append(_run(len(runs) + 1, config, "succeeded", acc))
    cells = summarize(runs, ["activation"], {"activation": "relu"})["cells"]
    raw = [c["p_value"] for c in cells]
    assert raw[0] is None and all(p is not None for p in raw[1:])
    assert [c["p_holm"] for c in cells] == pytest.approx(holm(raw))
    assert [c["paper_p_holm"] for c in cells] == pytest.approx(
        holm([c["paper_p_value"] for c in cells])
    )
    # Three tests against the baseline: the smallest p is multiplied by three.
    smallest = min(p for p in raw if p is not None)
    assert min(c["p_holm"] for c in cells[1:]) == pytest.approx(3 * smallest)


def test_marginal_means_average_cells_so_failed_runs_do_not_tilt_them():
    # Cell (relu, none) lost two of its three runs; (relu, crop_flip) kept all three.
    runs = [
        _run(1, {"activation": "relu", "augmentation": "none"}, "succeeded", 0.60),
        _run(2, {"activation": "relu", "augmentation": "none"}, "failed", None),
        _run(3, {"activation": "relu", "augmentation": "none"}, "failed", None),
        _run(4, {"activation": "relu", "augmentation": "crop_flip"}, "succeeded", 0.90),
        _run(5, {"activation": "relu", "augmentation": "crop_flip"}, "succeeded", 0.92),
        _run(6, {"activation": "relu", "augmentation": "crop_flip"}, "succeeded", 0.94),
    ]
    marginals = summarize(runs, ["activation", "augmentation"], None)["marginals"]
    (relu,) = marginals["activation"]
    assert relu["mean"] == pytest.approx((0.60 + 0.92) / 2)  # not (0.60 + 2.76) / 4
    assert relu["n"] == 4 and relu["cells"] == 2
    assert relu["std"] == pytest.approx(ref.tstd([0.60, 0.92]))
    by_aug = {m["value"]: m for m in marginals["augmentation"]}
    assert by_aug["none"]["mean"] == pytest.approx(0.60) and by_aug["none"]["std"] is None

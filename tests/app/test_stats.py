"""The sweep statistics agree with scipy.stats' own tests."""

from __future__ import annotations

import pytest
from scipy import stats as ref

from app.stats import describe, one_sample_p, progress, summarize, welch_p

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

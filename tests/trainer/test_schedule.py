import pytest

from trainer.schedule import lr_at_epoch, phase_boundaries


@pytest.mark.parametrize(
    ("ratio", "boundaries"),
    [((2, 1, 1), (100, 150)), ((5, 3, 2), (100, 160)), ((5, 4, 1), (100, 180))],
)
def test_report_ratios_switch_at_the_reports_epochs_over_200_epochs(ratio, boundaries):
    assert phase_boundaries(200, ratio) == boundaries
    b1, b2 = boundaries
    assert lr_at_epoch(b1, 200, ratio, 0.1) == 0.1
    assert lr_at_epoch(b1 + 1, 200, ratio, 0.1) == 0.01
    assert lr_at_epoch(b2, 200, ratio, 0.1) == 0.01
    assert lr_at_epoch(b2 + 1, 200, ratio, 0.1) == 0.001
    assert lr_at_epoch(200, 200, ratio, 0.1) == 0.001


@pytest.mark.parametrize(
    ("epochs", "ratio", "boundaries"),
    [
        # round half up of epochs * cumulative / total
        (1, (2, 1, 1), (1, 1)),  # 0.5 -> 1, 0.75 -> 1: the one epoch runs at lr
        (3, (2, 1, 1), (2, 2)),  # 1.5 -> 2, 2.25 -> 2: lr/10 phase is empty
        (4, (2, 1, 1), (2, 3)),
        (10, (2, 1, 1), (5, 8)),  # 7.5 -> 8
        (1, (5, 4, 1), (1, 1)),
        (3, (5, 4, 1), (2, 3)),  # 2.7 -> 3: lr/100 phase is empty
        (4, (5, 3, 2), (2, 3)),  # 3.2 -> 3
        (10, (5, 3, 2), (5, 8)),
        (10, (5, 4, 1), (5, 9)),
        (7, (1, 1, 1), (2, 5)),  # 2.33 -> 2, 4.67 -> 5
    ],
)
def test_switch_epochs_round_half_up_at_small_epoch_counts(epochs, ratio, boundaries):
    assert phase_boundaries(epochs, ratio) == boundaries


@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 5, 10, 37, 200])
@pytest.mark.parametrize("ratio", [(2, 1, 1), (5, 3, 2), (5, 4, 1)])
def test_lr_only_steps_down_by_tenths(epochs, ratio):
    lrs = [lr_at_epoch(e, epochs, ratio, 0.1) for e in range(1, epochs + 1)]
    assert lrs[0] == 0.1
    assert all(lr in (0.1, 0.01, 0.001) for lr in lrs)
    assert lrs == sorted(lrs, reverse=True)

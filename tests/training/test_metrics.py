"""Bootstrap intervals: how far a metric on a few hundred held-out rows could move."""

import numpy as np
import pytest

from multimodal_tf.training.metrics import bootstrap_intervals, classification_metrics

NAMES = ["negative", "neutral", "positive"]


def _predictions(rows=450, right=0.65, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, rows)
    wrong = (y_true + rng.integers(1, 3, rows)) % 3
    return y_true, np.where(rng.random(rows) < right, y_true, wrong)


def test_the_interval_holds_the_point_and_has_the_binomial_width():
    y_true, y_pred = _predictions()
    point = classification_metrics(y_true, y_pred, NAMES)
    intervals = bootstrap_intervals(y_true, y_pred, NAMES)
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        low, high = intervals[key]
        assert low < point[key] < high
    # Accuracy is a binomial proportion: the 95% interval is about +-1.96 standard errors.
    accuracy = point["accuracy"]
    expected = 2 * 1.96 * np.sqrt(accuracy * (1 - accuracy) / len(y_true))
    low, high = intervals["accuracy"]
    assert high - low == pytest.approx(expected, rel=0.2)


def test_perfect_predictions_have_no_spread():
    y_true, _ = _predictions()
    assert bootstrap_intervals(y_true, y_true, NAMES)["macro_f1"] == [1.0, 1.0]


def test_a_paired_difference_is_narrower_than_the_two_intervals_suggest():
    y_true, worse = _predictions(right=0.60)
    better = worse.copy()
    fixed = np.flatnonzero(worse != y_true)[:30]  # right on 30 more rows, the rest identical
    better[fixed] = y_true[fixed]
    intervals = bootstrap_intervals(y_true, better, NAMES, reference=worse)
    low, high = intervals["difference"]["accuracy"]
    assert 0 < low < 30 / len(y_true) < high
    # Separately the two accuracy intervals overlap; paired, the gain is clear.
    alone = bootstrap_intervals(y_true, worse, NAMES)["accuracy"]
    assert intervals["accuracy"][0] < alone[1]
    same = bootstrap_intervals(y_true, worse, NAMES, reference=worse)["difference"]
    assert same["weighted_f1"] == [0.0, 0.0]


def test_a_list_of_runs_is_scored_as_their_mean():
    y_true, first = _predictions(seed=1)
    second = y_true.copy()
    second[::5] = (y_true[::5] + 1) % 3  # 80% right, against about 65%
    both = bootstrap_intervals(y_true, [first, second], NAMES)["accuracy"]
    one = bootstrap_intervals(y_true, first, NAMES)["accuracy"]
    other = bootstrap_intervals(y_true, second, NAMES)["accuracy"]
    assert one[0] < both[0] < other[0] and one[1] < both[1] < other[1]


def test_the_same_seed_repeats_and_multi_label_works():
    y_true, y_pred = _predictions()
    assert bootstrap_intervals(y_true, y_pred, NAMES) == bootstrap_intervals(y_true, y_pred, NAMES)
    multi_true = np.eye(3, dtype=int)[y_true]
    multi_pred = np.eye(3, dtype=int)[y_pred]
    multi = bootstrap_intervals(multi_true, multi_pred, NAMES, multi_label=True)
    assert multi["accuracy"] == pytest.approx(
        bootstrap_intervals(y_true, y_pred, NAMES)["accuracy"]
    )


def test_mismatched_predictions_are_refused():
    y_true, y_pred = _predictions()
    with pytest.raises(ValueError, match="match neither"):
        bootstrap_intervals(y_true, y_pred[:-1], NAMES)
    assert bootstrap_intervals(np.zeros(0, int), np.zeros(0, int), NAMES) == {}

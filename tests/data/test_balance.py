import collections

import pytest

from multimodal_tf.data.balance import class_weights, oversample
from multimodal_tf.data.manifest import Record


def records(counts):
    rows, number = [], 0
    for label, count in counts.items():
        for _ in range(count):
            number += 1
            rows.append(Record(number, str(number), "t", "/x.png", label, "train"))
    return rows


def test_balanced_weights_equalise_each_class_total():
    rows = records({"neg": 30, "neu": 10, "pos": 60})
    weights = class_weights([r.label for r in rows], ["neg", "neu", "pos"])
    assert weights == pytest.approx({0: 100 / 90, 1: 100 / 30, 2: 100 / 180})
    counts = collections.Counter(r.label for r in rows)
    totals = [weights[i] * counts[name] for i, name in enumerate(["neg", "neu", "pos"])]
    assert totals == pytest.approx([totals[0]] * 3)


def test_a_class_absent_from_training_gets_weight_zero():
    assert class_weights(["a", "a"], ["a", "b"]) == {0: 0.5, 1: 0.0}


def test_oversampling_matches_the_largest_class_and_is_seeded():
    rows = records({"neg": 3, "neu": 1, "pos": 7})
    grown = oversample(rows, seed=1)
    assert collections.Counter(r.label for r in grown) == {"neg": 7, "neu": 7, "pos": 7}
    assert grown[: len(rows)] == rows
    assert [r.row for r in oversample(rows, seed=1)] == [r.row for r in grown]
    # Repeats cycle through every row of a class before any row comes back.
    repeats = [r.row for r in grown[len(rows) :] if r.label == "neg"]
    assert sorted(repeats[:3]) == [1, 2, 3]


def test_sqrt_weights_go_half_way():
    labels = ["neg"] * 30 + ["neu"] * 10 + ["pos"] * 60
    weights = class_weights(labels, ["neg", "neu", "pos"], power=0.5)
    assert weights == pytest.approx(
        {0: (100 / 90) ** 0.5, 1: (100 / 30) ** 0.5, 2: (100 / 180) ** 0.5}
    )
    assert class_weights(labels, ["neg", "neu", "pos"], power=0) == {0: 1.0, 1: 1.0, 2: 1.0}

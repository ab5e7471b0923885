"""Class imbalance: class weights for the loss, or oversampling of the training rows."""

import collections
import random


def class_weights(labels, class_names, power=1.0):
    """Balanced weights `(n / (k * count_c)) ** power` for Keras `fit(class_weight=...)`.

    With `power=1` each class contributes equally to the loss, which is what
    macro-F1 rewards; a class with 10% of the rows gets a weight 3.3x that of
    an even share. `power=0.5` ("sqrt") goes half way, trading a little
    macro-F1 for accuracy and weighted-F1 on the common classes.

    Args:
        labels: iterable of str. The training rows' labels.
        class_names: list of str. Class names in model output order.
        power: float. 1 for balanced, 0.5 for square-root balanced, 0 for none.

    Returns:
        dict `{class_index: weight}`.

    Example:
    >>> class_weights([r.label for r in train_rows], ["neg", "neu", "pos"])  # doctest: +SKIP
    {0: 1.1, 1: 3.2, 2: 0.56}
    """
    counts = collections.Counter(labels)
    total, num_classes = sum(counts.values()), len(class_names)
    return {
        index: (total / (num_classes * counts[name])) ** power if counts[name] else 0.0
        for index, name in enumerate(class_names)
    }


def oversample(records, seed=1337):
    """Repeats rows of the smaller classes until every class has as many as the largest.

    Only the row list grows (paths and texts); images are still streamed.
    Use it instead of class weights, not with them.

    Args:
        records: list of `Record`. The training rows.
        seed: int. Which rows are repeated depends only on the seed.

    Returns:
        A new list of `Record` (originals first, then the repeats).
    """
    by_label = collections.defaultdict(list)
    for record in records:
        by_label[record.label].append(record)
    largest = max(len(rows) for rows in by_label.values())
    rng = random.Random(seed)
    extra = []
    for label in sorted(by_label, key=str):
        rows = by_label[label]
        extra += [
            rows[index % len(rows)] for index in _shuffled(len(rows), largest - len(rows), rng)
        ]
    return list(records) + extra


def _shuffled(size, count, rng):
    order = []
    while len(order) < count:
        block = list(range(size))
        rng.shuffle(block)
        order += block
    return order[:count]

"""LazyAdamW: AdamW's update on the rows a sparse gradient names, nothing on the others."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.models.lazy_adamw import LazyAdamW


def _run(optimizer, gradients, shape=(6, 3)):
    table = keras.Variable(np.linspace(-1, 1, np.prod(shape)).reshape(shape).astype("float32"))
    for gradient in gradients:
        optimizer.apply([gradient], [table])
    return np.asarray(table), optimizer


def _sparse(rng, rows, shape=(6, 3)):
    values = rng.normal(size=(len(rows), shape[1])).astype("float32")
    return tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant(shape))


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_when_every_row_is_named_it_is_adamw(weight_decay):
    rng = np.random.default_rng(0)
    # Every row every step, one of them twice (its gradients add up, as dense).
    gradients = [_sparse(rng, [5, 0, 1, 2, 3, 4, 0]) for _ in range(4)]
    lazy, _ = _run(LazyAdamW(0.1, weight_decay=weight_decay), gradients)
    dense, _ = _run(
        keras.optimizers.AdamW(0.1, weight_decay=weight_decay),
        [tf.convert_to_tensor(g) for g in gradients],
    )
    np.testing.assert_allclose(lazy, dense, rtol=1e-5, atol=1e-5)


def test_rows_a_gradient_does_not_name_keep_their_values_and_moments():
    rng = np.random.default_rng(1)
    start, _ = _run(LazyAdamW(0.1), [])
    table, optimizer = _run(
        LazyAdamW(0.1, weight_decay=0.05), [_sparse(rng, [1, 4]), _sparse(rng, [4])]
    )
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(table[untouched], start[untouched])
    assert (table[[1, 4]] != start[[1, 4]]).all()
    momentum = np.asarray(optimizer._momentums[0])
    assert not momentum[untouched].any() and momentum[[1, 4]].all()
    # Dense AdamW moves every row: its decay alone shrinks the untouched ones.
    dense, _ = _run(
        keras.optimizers.AdamW(0.1, weight_decay=0.05),
        [tf.convert_to_tensor(_sparse(np.random.default_rng(1), [1, 4]))],
    )
    assert (dense[untouched] != start[untouched]).any()


def test_dense_gradients_get_adamw_unchanged():
    rng = np.random.default_rng(2)
    gradients = [tf.constant(rng.normal(size=(6, 3)).astype("float32")) for _ in range(3)]
    lazy, _ = _run(LazyAdamW(0.1, weight_decay=0.05), gradients)
    dense, _ = _run(keras.optimizers.AdamW(0.1, weight_decay=0.05), gradients)
    np.testing.assert_array_equal(lazy, dense)


def test_it_round_trips_through_keras_serialization(tmp_path):
    optimizer = LazyAdamW(learning_rate=3e-3, weight_decay=2e-4, beta_2=0.99)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is LazyAdamW
    assert restored.get_config() == optimizer.get_config()
    model = keras.Sequential([keras.Input((2,), dtype="int32"), keras.layers.Embedding(10, 4)])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.array([[1, 2]]), np.zeros((1, 2, 4)), verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is LazyAdamW
    assert int(loaded.optimizer.iterations) == 1

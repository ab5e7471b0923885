import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.training.thresholds import best_thresholds, tune_thresholds
from tests.helpers import features, tiny_model


def test_each_class_gets_the_threshold_that_maximises_its_f1():
    probabilities = np.array([[0.9, 0.30], [0.8, 0.25], [0.7, 0.20], [0.1, 0.10]])
    labels = np.array([[1, 1], [1, 1], [0, 0], [0, 0]])
    thresholds = best_thresholds(probabilities, labels)
    # Class 0: 0.75 separates 0.9/0.8 from 0.7; class 1: 0.25 keeps 0.30/0.25.
    np.testing.assert_allclose(thresholds, [0.75, 0.25], atol=1e-6)


def test_a_class_without_positives_keeps_one_half():
    thresholds = best_thresholds(np.array([[0.9, 0.2]]), np.array([[0, 1]]))
    assert thresholds[0] == pytest.approx(0.5)


def test_tune_thresholds_sets_the_heads_weights():
    model = tiny_model(class_names={"c": ["red", "blue", "white"]}, multi_label=True)
    labels = {"c": np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 1, 1]], "float32")}
    dataset = tf.data.Dataset.from_tensor_slices((dict(features(model)), labels)).batch(2)
    chosen = tune_thresholds(model, dataset)
    np.testing.assert_allclose(model.get_layer("c").thresholds.numpy(), chosen["c"])
    assert tune_thresholds(tiny_model(), dataset) == {}  # no multi-label head

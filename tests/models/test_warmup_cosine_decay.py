import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.models.warmup_cosine_decay import WarmupCosineDecay


@pytest.mark.parametrize("warmup, decay", [(10, 190), (1, 5), (0, 50)])
def test_the_rates_are_keras_cosine_decays_with_its_warm_up(warmup, decay):
    ours = WarmupCosineDecay(2e-3, warmup_steps=warmup, decay_steps=decay, alpha=0.01)
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=decay, alpha=0.01, warmup_target=2e-3, warmup_steps=warmup
    )
    steps = range(0, warmup + decay + 20)
    np.testing.assert_allclose(
        [float(ours(step)) for step in steps],
        [float(keras_schedule(step)) for step in steps],
        rtol=1e-6,
        atol=1e-12,
    )


def test_reading_the_rate_builds_no_branch():
    """AdamW reads the rate once per variable: a `cond` there is one `If` op each, every step."""
    schedule = WarmupCosineDecay(1e-3, warmup_steps=3, decay_steps=10)
    graph = tf.function(schedule).get_concrete_function(tf.TensorSpec([], tf.int64)).graph
    kinds = {op.type for op in graph.get_operations()}
    assert not kinds & {"If", "StatelessIf", "While", "StatelessWhile"}, kinds


def test_config_round_trips_and_a_compiled_model_saves_with_it(tmp_path):
    schedule = WarmupCosineDecay(1e-3, warmup_steps=3, decay_steps=10, alpha=0.1)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(schedule)))
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, WarmupCosineDecay)
    assert restored.get_config() == schedule.get_config()

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.AdamW(schedule, weight_decay=1e-4), "mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.optimizer.learning_rate.numpy() == pytest.approx(float(schedule(2)))


def test_bad_steps_are_clear_errors():
    with pytest.raises(ValueError, match="decay_steps"):
        WarmupCosineDecay(1e-3, warmup_steps=0, decay_steps=0)

import pytest

from multimodal_tf.config import TrainingConfig
from multimodal_tf.training.run_model import learning_rate


def test_constant_schedule_is_the_learning_rate():
    assert learning_rate(TrainingConfig(learning_rate=0.01, lr_schedule="constant"), 100) == 0.01


def test_cosine_schedule_warms_up_then_decays_to_one_percent():
    schedule = learning_rate(TrainingConfig(learning_rate=0.01, lr_schedule="cosine"), 200)
    rates = [float(schedule(step)) for step in (0, 5, 10, 105, 200, 400)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(0.005)  # 10 warm-up steps
    assert rates[2] == pytest.approx(0.01)
    assert rates[2] > rates[3] > rates[4]
    assert rates[4] == pytest.approx(1e-4) and rates[5] == pytest.approx(1e-4)

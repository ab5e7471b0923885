import numpy as np
import pytest

from multimodal_tf.layers.heads.classification_head import ClassificationHead
from tests.helpers import run_layer_test

FEATURES = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")


def test_single_label_rows_sum_to_one():
    _, out = run_layer_test(ClassificationHead, {"num_classes": 3}, FEATURES, (4, 3))
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-6)


def test_multi_label_scores_are_independent_and_thresholds_are_weights():
    head, out = run_layer_test(
        ClassificationHead, {"num_classes": 3, "multi_label": True}, FEATURES, (4, 3)
    )
    out = np.asarray(out)
    assert ((out > 0) & (out < 1)).all() and not np.allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(head.thresholds.numpy(), [0.5, 0.5, 0.5])
    head.set_thresholds([0.2, 0.4, 0.6])
    np.testing.assert_allclose(head.thresholds.numpy(), [0.2, 0.4, 0.6])
    assert not head.thresholds.trainable
    with pytest.raises(ValueError, match="Expected 3 thresholds"):
        head.set_thresholds([0.5])


def test_late_fusion_input_gives_one_decision_per_modality_with_learned_weights():
    per_modality = np.stack([FEATURES, -FEATURES], axis=1)  # [batch, 2, features]
    head = ClassificationHead(3)
    out = np.asarray(head(per_modality))
    assert out.shape == (4, 3)
    assert head.kernel.shape == (2, 6, 3) and head.decision_weights.shape == (2,)
    # Putting all the weight on modality 0 gives modality 0's own decision.
    head.decision_weights.assign([50.0, -50.0])
    logits = FEATURES @ head.kernel.numpy()[0] + head.bias.numpy()[0]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(head(per_modality), expected, atol=1e-5)

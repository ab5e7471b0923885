import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from multimodal_tf.serving.export import export_saved_model
from multimodal_tf.serving.warmup import (
    WARMUP_FILE,
    default_warmup_samples,
    read_warmup_requests,
    write_warmup_requests,
)
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    return export_saved_model(tiny_model(), tmp_path_factory.mktemp("served") / "demo")


def test_default_warmup_samples_decode_as_png_and_jpeg():
    samples = default_warmup_samples()
    assert [image[:2] for _, image in samples] == [b"\x89P", b"\xff\xd8", b"\x89P"]
    assert "" in [text for text, _ in samples]
    for _, image in samples:
        assert tf.io.decode_image(image).shape == (32, 32, 3)


def test_warmup_file_holds_prediction_logs_the_signature_runs(version_dir):
    texts, images = zip(*default_warmup_samples(), strict=True)
    path = write_warmup_requests(version_dir, texts, images, model="demo")
    assert path == version_dir / "assets.extra" / WARMUP_FILE
    # Read as TF Serving does: raw TFRecords, each a PredictionLog with a predict_log.
    logs = [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(str(path))
    ]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    requests = [log.predict_log.request for log in logs]
    assert read_warmup_requests(version_dir) == requests
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == {"text", "image"}
    batch_sizes = []
    for request in requests:
        assert request.model_spec.name == "demo"
        assert request.model_spec.signature_name == "serving_default"
        assert set(request.inputs) == set(signature.structured_input_signature[1])
        assert {proto.dtype for proto in request.inputs.values()} == {tf.string.as_datatype_enum}
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        outputs = signature(**{name: tf.constant(values) for name, values in inputs.items()})
        batch_sizes.append(outputs["probabilities"].shape[0])
    assert batch_sizes == [1, len(texts)]


def test_num_records_cycles_batch_sizes_within_tf_serving_limit(tmp_path):
    texts, images = zip(*default_warmup_samples(size=8), strict=True)
    path = write_warmup_requests(tmp_path, texts, images, num_records=5)
    sizes = [len(request.inputs["text"].string_val) for request in read_warmup_requests(path)]
    assert sizes == [1, 3, 1, 3, 1]
    with pytest.raises(ValueError, match="1 to 1000; received 1001"):
        write_warmup_requests(tmp_path, texts, images, num_records=1001)
    with pytest.raises(ValueError, match="3 texts and 2 images"):
        write_warmup_requests(tmp_path, texts, images[:2])

"""TF Serving warmup requests: replayed by the server before a version takes traffic.

TF Serving reads `<version>/assets.extra/tf_serving_warmup_requests`, a TFRecord
file of `PredictionLog` protos (at most 1000), and runs each request once per
`--num_request_iterations` when it loads the version, so the first user request
does not pay for graph initialization
(https://www.tensorflow.org/tfx/serving/saved_model_warmup).
"""

import io
from pathlib import Path

import tensorflow as tf
from PIL import Image, ImageDraw
from tensorflow_serving.apis import prediction_log_pb2

from multimodal_tf.serving.grpc_client import predict_request

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving reads no more


def write_warmup_requests(version_dir, texts, images, model="model", num_records=None):
    """Writes `version_dir/assets.extra/tf_serving_warmup_requests` for TF Serving.

    One predict request for a batch of 1 and one for every sample together
    (the two batch shapes most traffic has), repeated in turn to `num_records`.

    Args:
        version_dir: str or Path. An exported version folder; write it before the
            folder is moved into place, so TF Serving never loads it without warmup.
        texts: list of str. Raw sample texts.
        images: list of bytes. Encoded JPEG/PNG bytes, one per text.
        model: str. The model name written into each request.
        num_records: int or None. Records to write (1 to 1000); None writes one
            per batch shape.

    Returns:
        Path of the written file.

    Example:
    >>> texts, images = zip(*default_warmup_samples())
    >>> write_warmup_requests("saved_models/demo/1", texts, images)  # doctest: +SKIP
    """
    texts, images = list(texts), list(images)
    if not texts or len(texts) != len(images):
        raise ValueError(
            "Warmup needs samples, one image per text; received "
            f"{len(texts)} texts and {len(images)} images."
        )
    batch_sizes = sorted({1, len(texts)})
    if num_records is None:
        num_records = len(batch_sizes)
    if not 1 <= int(num_records) <= MAX_RECORDS:
        raise ValueError(f"num_records is 1 to {MAX_RECORDS}; received {num_records}.")
    path = Path(version_dir) / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index in range(int(num_records)):
            size = batch_sizes[index % len(batch_sizes)]
            request = predict_request(texts[:size], images[:size], model=model)
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(path):
    """The `PredictRequest`s in a warmup file (or a version folder's warmup file).

    Args:
        path: str or Path. The file, or a version folder holding `assets.extra/`.

    Example:
    >>> [len(r.inputs["text"].string_val)
    ...  for r in read_warmup_requests("saved_models/demo/1")]  # doctest: +SKIP
    [1, 3]
    """
    path = Path(path)
    if path.is_dir():
        path = path / "assets.extra" / WARMUP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No warmup file at {path}.")
    requests = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(
                f"{path} holds a {log.WhichOneof('log_type')} record, not predict_log."
            )
        requests.append(log.predict_log.request)
    return requests


def default_warmup_samples(size=32):
    """Three (text, encoded image) pairs made in memory: a PNG, a JPEG, an empty text.

    Args:
        size: int. Image side in pixels.

    Example:
    >>> [(text, image[:4]) for text, image in default_warmup_samples()][0]
    ('a red circle on white', b'\\x89PNG')
    """
    samples = []
    for text, colour, fmt in (
        ("a red circle on white", (220, 30, 30), "PNG"),
        ("a blue square on white", (30, 30, 220), "JPEG"),
        ("", (30, 160, 30), "PNG"),  # a sample without text, as the signature allows
    ):
        image = Image.new("RGB", (size, size), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        box = (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
        (draw.ellipse if "circle" in text else draw.rectangle)(box, fill=colour)
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        samples.append((text, buffer.getvalue()))
    return samples

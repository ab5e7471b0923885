"""TF Serving config files: `models.config` and `batching_parameters.txt`, batching measured."""

import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from multimodal_tf.files import write_text_atomically
from multimodal_tf.serving.export import SIGNATURE

MODELS_CONFIG = "models.config"
BATCHING_FILE = "batching_parameters.txt"
BATCHING_FIELDS = (
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "allowed_batch_sizes",
)
# A batch size is "as good as the best" within this factor of its samples/s.
NEAR_BEST = 1.10

DOCKER_COMMAND = """\
docker run --rm -p 8500:8500 -p 8501:8501 \\
  -v "$PWD/saved_models:/models" \\
  -v "$PWD/serving:/config" \\
  tensorflow/serving \\
  --model_config_file=/config/models.config \\
  --model_config_file_poll_wait_seconds=60 \\
  --enable_batching=true \\
  --batching_parameters_file=/config/batching_parameters.txt \\
  --tensorflow_intra_op_parallelism=1
"""
"""How to serve `saved_models/<name>/<version>` with the files of `write_serving_config`.

Run from the folder holding `saved_models/` and `serving/` (written with
`write_serving_config("serving", {"demo": "/models/demo"})`): base paths in
`models.config` are paths inside the container. gRPC answers on 8500, REST on
8501 (`POST /v1/models/demo:predict` or, with labels,
`/v1/models/demo/labels/stable:predict`). The server re-reads `models.config`
every 60 s, so a new label or version policy needs no restart. One intra-op
thread per request: the batch threads (one per CPU) already keep every core busy
under load, and a lone request on a small CPU model waits less for one thread than
for a pool (benchmarks/results/serving.md).
"""


def write_serving_config(output_dir, models, labels=None, version_policy=None, batching=None):
    """Writes `models.config` and `batching_parameters.txt` for `tensorflow_model_server`.

    Args:
        output_dir: str or Path. Folder to write both files to.
        models: dict or list. `{name: base_path}`, base paths as the server
            sees them (`/models/demo` in Docker); a list of base paths names
            each model after its folder.
        labels: dict or None. Version labels for every model, e.g.
            `{"stable": 1, "canary": 2}`; TF Serving only labels loaded
            versions, so labels need a list of specific versions.
        version_policy: str, list of int or None. `"latest"` (the newest
            version), `"latest:N"` (the newest N), `"all"`, or a list of
            versions to serve. `None` means `"latest"`, or, with `labels`,
            the labelled versions.
        batching: dict or None. `BatchingParameters` fields
            (`measure_batching(...)["parameters"]`); `None` writes
            `DEFAULT_BATCHING` for this machine.

    Returns:
        dict with the paths `models_config` and `batching_parameters`.

    Example:
    >>> import tempfile
    >>> paths = write_serving_config(tempfile.mkdtemp(), {"demo": "/models/demo"},
    ...                              labels={"stable": 1, "canary": 2})
    >>> print(Path(paths["models_config"]).read_text())
    model_config_list {
      config {
        name: "demo"
        base_path: "/models/demo"
        model_platform: "tensorflow"
        model_version_policy {
          specific {
            versions: 1
            versions: 2
          }
        }
        version_labels {
          key: "canary"
          value: 2
        }
        version_labels {
          key: "stable"
          value: 1
        }
      }
    }
    <BLANKLINE>
    """
    if isinstance(models, (str, os.PathLike)):
        models = [models]
    if not isinstance(models, dict):
        models = {Path(path).name: str(path) for path in models}
    if not models:
        raise ValueError("`models` names no model; received an empty collection.")
    labels = dict(labels or {})
    if version_policy is None:
        version_policy = sorted(set(labels.values())) if labels else "latest"
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in models.items():
        model = config.model_config_list.config.add(
            name=str(name), base_path=str(base_path), model_platform="tensorflow"
        )
        _set_policy(model.model_version_policy, version_policy, labels)
        for label, version in labels.items():
            model.version_labels[str(label)] = int(version)
    parameters = dict(default_batching() if batching is None else batching)
    unknown = sorted(set(parameters) - set(BATCHING_FIELDS))
    if unknown:
        raise ValueError(f"Unknown batching parameter(s) {unknown}; allowed: {BATCHING_FIELDS}.")
    sizes = [int(size) for size in parameters.get("allowed_batch_sizes") or []]
    if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != parameters.get("max_batch_size")):
        raise ValueError(
            "`allowed_batch_sizes` must increase and end at `max_batch_size` (TF Serving "
            f"refuses it otherwise); received {sizes} and {parameters.get('max_batch_size')}."
        )
    batching_pb = batching_parameters_class()()
    for field, value in parameters.items():
        if field == "allowed_batch_sizes":
            batching_pb.allowed_batch_sizes.extend(sizes)
        else:
            getattr(batching_pb, field).value = int(value)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "models_config": output_dir / MODELS_CONFIG,
        "batching_parameters": output_dir / BATCHING_FILE,
    }
    # The model server re-reads models.config while it runs: never half of it.
    write_text_atomically(paths["models_config"], text_format.MessageToString(config))
    write_text_atomically(paths["batching_parameters"], text_format.MessageToString(batching_pb))
    return paths


def batching_parameters_class():
    """The `tensorflow.serving.BatchingParameters` protobuf message class.

    `tensorflow-serving-api` does not ship `session_bundle_config_pb2`; when
    it is missing, the message is rebuilt from its field list (names, numbers
    and types as in `session_bundle_config.proto`) in a private descriptor
    pool, so that text written or parsed with it is what the server reads.

    Returns:
        A protobuf message class.

    Example:
    >>> message = batching_parameters_class()()
    >>> message.max_batch_size.value = 8
    >>> text_format.MessageToString(message)
    'max_batch_size {\\n  value: 8\\n}\\n'
    """
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2
    except ImportError:
        pass
    else:
        return session_bundle_config_pb2.BatchingParameters
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers.name],
    )
    message = proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    fields = [
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
    ]
    for name, number, type_name in fields:
        message.field.add(
            name=name,
            number=number,
            type=field.TYPE_MESSAGE,
            type_name=type_name,
            label=field.LABEL_OPTIONAL,
        )
    message.field.add(
        name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        type=field.TYPE_BOOL,
        label=field.LABEL_OPTIONAL,
    )
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


def _set_policy(policy, version_policy, labels):
    if isinstance(version_policy, str):
        kind, _, count = version_policy.partition(":")
        if kind == "all" and not count:
            policy.all.SetInParent()
        elif kind == "latest" and (not count or count.isdigit()):
            policy.latest.num_versions = int(count or 1)
        else:
            raise ValueError(
                "`version_policy` must be 'latest', 'latest:N', 'all' or a list of versions; "
                f"received {version_policy!r}."
            )
        if labels and kind == "latest":
            raise ValueError(
                f"Labels {labels} need the versions they name to be served: pass "
                "`version_policy` as a list of versions (or leave it out)."
            )
        return
    versions = sorted({int(version) for version in version_policy})
    missing = sorted(set(int(v) for v in labels.values()) - set(versions))
    if not versions or missing:
        raise ValueError(
            f"Labelled version(s) {missing} are not in `version_policy` {versions}; "
            "TF Serving only labels versions it serves."
        )
    policy.specific.versions.extend(versions)


def default_batching():
    """Batching parameters for this machine when nothing was measured.

    Returns:
        dict: batches of up to 32 waiting at most 1 ms (the batching guide's
        "slightly above zero"), one batch thread per CPU and as many queued
        batches (bounded latency for online serving).

    Example:
    >>> default_batching()["max_batch_size"]
    32
    """
    threads = os.cpu_count() or 1
    return {
        "max_batch_size": 32,
        "batch_timeout_micros": 1000,
        "max_enqueued_batches": threads,
        "num_batch_threads": threads,
    }


def sample_requests(count, image_size=(240, 320), seed=0):
    """Raw inputs that look like real ones: short sentences and encoded photo-like JPEGs.

    Args:
        count: int. Number of samples.
        image_size: tuple of two ints. (height, width) of the JPEGs.
        seed: int. Seeds the noise.

    Returns:
        (texts, images): lists of str and of JPEG bytes.

    Example:
    >>> texts, images = sample_requests(2, image_size=(8, 8))
    >>> images[0][:3]
    b'\\xff\\xd8\\xff'
    """
    rng = np.random.default_rng(seed)
    words = "a red circle on blue sky the cat sat near warm cold bright dark small large".split()
    height, width = image_size
    rows, cols = np.mgrid[0:height, 0:width]
    texts, images = [], []
    for _ in range(count):
        texts.append(" ".join(rng.choice(words, size=rng.integers(5, 20))))
        # A smooth gradient plus noise compresses like a photo, not like a flat colour.
        colour = rng.uniform(0, 255, size=3)
        pixels = colour + 60 * np.sin(rows[..., None] / 17 + cols[..., None] / 23 + colour / 40)
        pixels = np.clip(pixels + rng.normal(0, 12, size=(height, width, 3)), 0, 255)
        images.append(tf.io.encode_jpeg(pixels.astype(np.uint8), quality=90).numpy())
    return texts, images


def measure_batching(
    version_dir, batch_sizes=(1, 2, 4, 8, 16, 32, 64), repeats=5, texts=None, images=None
):
    """Times the exported signature per batch size and picks TF Serving batching parameters.

    The choice, from the measurement: `max_batch_size` is the smallest
    size whose samples/s is within 10% of the best size's (larger batches
    add latency for little throughput); `allowed_batch_sizes` are the measured sizes
    up to it; `batch_timeout_micros` is the median latency of the smallest
    size (batch 1) (a
    request waits at most as long as scoring it alone takes, so waiting at
    most doubles its latency); `num_batch_threads` is the CPU count and
    `max_enqueued_batches` equals it (the batching guide's advice for
    online serving with bounded latency).

    Args:
        version_dir: str or Path. An exported version folder.
        batch_sizes: tuple of int. Increasing batch sizes to time.
        repeats: int. Timed calls per size, after one untimed call.
        texts: list of str or None. Sample texts; `None` uses `sample_requests`.
        images: list of bytes or None. Sample encoded images, as many as texts.

    Returns:
        dict with `parameters` (for `write_serving_config(batching=...)`) and
        `measurements`: one dict per size with `batch_size`, `p50_ms`,
        `samples_per_second`.

    Example:
    >>> result = measure_batching("saved_models/demo/1")  # doctest: +SKIP
    >>> write_serving_config("serving", {"demo": "/models/demo"},
    ...                      batching=result["parameters"])  # doctest: +SKIP
    """
    batch_sizes = sorted({int(size) for size in batch_sizes})
    if not batch_sizes or batch_sizes[0] < 1:
        raise ValueError(f"`batch_sizes` must be positive integers; received {batch_sizes}.")
    if texts is None or images is None:
        texts, images = sample_requests(max(batch_sizes))
    if len(texts) != len(images) or not texts:
        raise ValueError(
            f"`texts` and `images` must be as many and not empty; received {len(texts)} "
            f"and {len(images)}."
        )
    signature = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]
    measurements = []
    for size in batch_sizes:
        picks = [index % len(texts) for index in range(size)]
        text = tf.constant([texts[i] for i in picks], tf.string)
        image = tf.constant([images[i] for i in picks], tf.string)
        signature(text=text, image=image)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            signature(text=text, image=image)
            times.append(time.perf_counter() - start)
        p50 = float(np.median(times))
        measurements.append(
            {
                "batch_size": size,
                "p50_ms": round(1000 * p50, 3),
                "samples_per_second": round(size / p50, 1),
            }
        )
    # The smallest size within 10% of the best throughput: robust to one noisy
    # size, and larger batches would only add latency.
    best = max(m["samples_per_second"] for m in measurements)
    chosen = next(m for m in measurements if NEAR_BEST * m["samples_per_second"] >= best)
    threads = os.cpu_count() or 1
    parameters = {
        "max_batch_size": chosen["batch_size"],
        "batch_timeout_micros": max(1, round(1000 * measurements[0]["p50_ms"])),
        "max_enqueued_batches": threads,
        "num_batch_threads": threads,
        "allowed_batch_sizes": [
            m["batch_size"] for m in measurements[: measurements.index(chosen) + 1]
        ],
    }
    return {"parameters": parameters, "measurements": measurements}

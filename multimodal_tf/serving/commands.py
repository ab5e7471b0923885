"""The `multimodal-tf export` and `serving-config` commands (argparse `args` in, exit code out).

`multimodal_tf.cli` builds the parser and dispatches here; the work itself is in
`serving.export`, `serving.tflite` and `serving.serving_config`.
"""

from pathlib import Path


def export_command(args):
    """`multimodal-tf export`: a run's model -> SavedModel (with warm-up) or TFLite."""

    from multimodal_tf.config import load_config
    from multimodal_tf.serving.export import export_saved_model
    from multimodal_tf.training.evaluate import load_model_file, resolve_model_file

    model_file = resolve_model_file(args.run)
    config_file = model_file.parent / "config.yaml"
    run_config = load_config(config_file) if config_file.is_file() else None
    output = args.output
    if output is None:
        export = (run_config or load_config(None)).export
        output = Path(export.directory) / export.name
        if args.format == "tflite":
            output = output.with_name(f"{output.name}_tflite")
    model = load_model_file(model_file)
    samples = _warmup_samples(args.warmup_manifest) if args.warmup_manifest else None
    if args.format == "tflite":
        return _export_tflite(model, Path(output), samples)
    path = export_saved_model(
        model,
        output,
        version=args.version,
        # A bare .keras file: let export decide from the model (modality dropout).
        allow_missing=run_config.data.allow_missing_modalities if run_config else None,
        warmup_samples=samples,
        max_pixels=args.max_pixels or (run_config or load_config(None)).data.max_pixels,
        max_text_bytes=args.max_text_bytes,
        check_ops=args.check_ops,
    )
    print(f"exported {path}")
    return 0


def _warmup_samples(manifest, count=8):
    from multimodal_tf.data.manifest import read_manifest

    records = read_manifest(manifest, require_labels=False)[:count]
    return [(r.text, Path(r.image).read_bytes() if r.image else b"") for r in records]


def _export_tflite(model, output, samples):
    import numpy as np

    from multimodal_tf.serving.tflite import check_tflite_parity, export_tflite
    from multimodal_tf.serving.warmup import default_warmup_samples

    path = export_tflite(model, output / "model.tflite")
    samples = samples or default_warmup_samples()
    features = model.preprocessor(
        {
            "text": np.array([text for text, _ in samples], dtype=object),
            "image": np.array([image for _, image in samples], dtype=object),
        }
    )
    difference = check_tflite_parity(model, path, features)
    print(f"exported {path} (max |tflite - keras| = {difference:.2e} on {len(samples)} samples)")
    print("TFLite takes preprocessed tensors; see preprocessor.json beside it.")
    return 0


def serving_config_command(args):
    """`multimodal-tf serving-config`: TF Serving model, version and batching files."""
    from multimodal_tf.errors import ConfigError
    from multimodal_tf.serving.serving_config import measure_batching, write_serving_config

    try:
        models = dict(_pair(item, "--model") for item in args.model)
        labels = {name: int(version) for name, version in map(_label_pair, args.label)}
        policy = args.version_policy
        if policy and policy[0].isdigit():
            policy = [int(version) for version in policy.split(",")]
        batching = None
        if args.measure:
            sizes = [int(size) for size in args.batch_sizes.split(",")]
            measured = measure_batching(args.measure, batch_sizes=sizes)
            for row in measured["measurements"]:
                print(
                    f"batch {row['batch_size']:>3}: p50 {row['p50_ms']:.2f} ms, "
                    f"{row['samples_per_second']:.0f} samples/s"
                )
            batching = measured["parameters"]
        paths = write_serving_config(
            args.output, models, labels=labels or None, version_policy=policy, batching=batching
        )
    except ValueError as error:
        raise ConfigError(str(error)) from error
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def _pair(item, flag):
    name, separator, value = item.partition("=")
    if not separator or not name or not value:
        raise ValueError(f"{flag} takes NAME=VALUE; received {item!r}.")
    return name, value


def _label_pair(item):
    name, version = _pair(item, "--label")
    if not version.isdigit():
        raise ValueError(f"--label takes LABEL=VERSION with an integer version; received {item!r}.")
    return name, version

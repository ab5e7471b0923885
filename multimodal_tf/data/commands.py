"""The `multimodal-tf demo-data`, `validate` and `prepare` commands (args in, exit code out).

`multimodal_tf.cli` builds the parser and dispatches here; the work itself is in
`data.demo`, `data.validate` and `data.source`.
"""

from pathlib import Path


def demo_data_command(args):
    """`multimodal-tf demo-data`: write the synthetic demo dataset."""
    from multimodal_tf.data.demo import make_demo_dataset

    manifest = make_demo_dataset(args.output, num_samples=args.num_samples, seed=args.seed)
    print(f"wrote {manifest} and {manifest.parent / 'config.yaml'} (train with --config it)")
    return 0


def validate_command(args):
    """`multimodal-tf validate`: report every problem row; exit 1 if any is an error."""
    from multimodal_tf.data.validate import validate_manifest

    report = validate_manifest(
        args.manifest,
        encoding=args.encoding,
        max_pixels=args.max_pixels,
        allow_missing=args.allow_missing,
        multi_label=args.multi_label,
    )
    print(report.format(limit=args.limit))
    if args.report:
        report.write_csv(args.report)
        print(f"wrote {len(report.problems)} problem(s) to {args.report}")
    return 1 if report.errors else 0


def prepare_command(args):
    """`multimodal-tf prepare`: validate, split and write sharded TFRecords."""
    from multimodal_tf.config import load_config
    from multimodal_tf.data.source import prepare_tfrecords

    meta = prepare_tfrecords(args.manifest, args.output, load_config(args.config).data, args.shards)
    for split, info in meta["splits"].items():
        print(f"{split}: {info['num_samples']} samples in {len(info['files'])} file(s)")
    print(f"wrote {Path(args.output) / 'prepared.json'}")
    return 0

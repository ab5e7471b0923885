"""`multimodal-tf`: the command line, a thin layer over the Python API.

Start-up cost: the parser is built from modules that import neither TensorFlow nor
Keras (each command's work is imported by its handler), and the package skips its
eager Keras registration when this command imports it (`multimodal_tf/__init__.py`).
So `multimodal-tf --help`, `multimodal-tf COMMAND --help` and argument errors answer
at once; only a command that runs loads TensorFlow, quietly (`_start_tensorflow`),
and then registers the package's Keras classes, so every `.keras` file loads.
"""

import argparse
import json
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from multimodal_tf.config import MAX_TEXT_BYTES, DataConfig, ModelConfig
from multimodal_tf.data.commands import demo_data_command, prepare_command, validate_command
from multimodal_tf.errors import MultimodalTFError
from multimodal_tf.serving.commands import export_command, serving_config_command
from multimodal_tf.serving.op_check import DEFAULT_RELEASE as SERVING_RELEASE
from multimodal_tf.training.weights_commands import weights_install_command, weights_list_command

# TensorFlow's C++ log lines: absl's ("I0000 00:00:1796687691.600897   16590 port.cc:153] ...")
# and TensorFlow's own ("2025-09-17 14:44:05.157831: I external/.../cudart_stub.cc:32] ...").
_TF_LOG_LINE = re.compile(
    r"(?:(?P<absl>[IWEF])\d{4} [\d:.]+ +\d+ |[\d-]+ [\d:.]+: (?P<tf>[IWEF]) )\S+:\d+\] "
)
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
# Lines that continue the log line before them (cpu_feature_guard.cc).
_TF_LOG_CONTINUATIONS = ("To enable the following instructions:",)
_SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 0, 1, 2, 3 hides the ones before it


def main(argv=None):
    """Entry point of the `multimodal-tf` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.uses_tensorflow:
        _start_tensorflow(verbose=args.verbose)
    try:
        return args.handler(args)
    except MultimodalTFError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _start_tensorflow(verbose=False):
    """Imports TensorFlow without its C++ log, and registers the package's Keras classes.

    While it loads and looks for GPUs, TensorFlow's C++ code writes lines such as
    "oneDNN custom operations are on", CUDA and CPU-instruction notices and absl's
    "All log messages before absl::InitializeLog()" straight to the process's
    stderr, whatever TF_CPP_MIN_LOG_LEVEL says: they are caught there and the
    ones below the log level dropped (any other text is printed). The log level
    is the user's TF_CPP_MIN_LOG_LEVEL if set, else 3: fatal lines only, as the
    command reports errors itself. `--verbose` leaves TensorFlow's default, all lines.
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if level is None and not verbose:
        level = os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # for the lines after start-up
    if "tensorflow" not in sys.modules:
        try:
            _with_tensorflow_log_filtered(_import_tensorflow, _log_level(level or "0"))
        except ImportError:  # a client-only install; the command says what it needs
            return
    import multimodal_tf

    multimodal_tf._register_keras_classes()


def _import_tensorflow():
    import tensorflow as tf

    tf.config.list_physical_devices()  # looking for GPUs logs the CUDA lines


def _log_level(value):
    try:
        return min(max(int(value), 0), len(_SEVERITIES) - 1)
    except ValueError:
        return 0


def _with_tensorflow_log_filtered(start, shown_from):
    """Runs `start()` with file descriptor 2 caught; prints back what is not hidden."""
    if shown_from == 0 or sys.stderr is None:
        return start()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr file descriptor: nothing to filter
        return start()
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            return start()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = _without_tensorflow_log(caught.read().decode(errors="replace"), shown_from)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def _without_tensorflow_log(text, shown_from):
    """`text` without TensorFlow's C++ log lines of a severity below `shown_from` (0-3)."""
    kept = []
    hidden = False
    for line in text.splitlines(keepends=True):
        match = _TF_LOG_LINE.match(line)
        if match:
            hidden = _SEVERITIES.index(match["absl"] or match["tf"]) < shown_from
        elif line.startswith(_ABSL_PREAMBLE):  # a note about the lines after it
            hidden = shown_from > 0
        elif not (hidden and line.startswith(_TF_LOG_CONTINUATIONS)):
            hidden = False
        if not hidden:
            kept.append(line)
    return "".join(kept)


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="multimodal-tf",
        description="Train image+text classifiers and export them for TF Serving.",
    )
    _add_global_options(parser, default=False)
    parser.set_defaults(uses_tensorflow=True)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )

    demo = commands.add_parser(
        "demo-data",
        help="Write the synthetic demo dataset (manifest.csv + images/).",
        description="Write the synthetic demo dataset: each caption names a colour and a "
        "shape; the label says whether it describes the image (needs both modalities).",
    )
    demo.add_argument("--output", default="data/demo", help="Folder to write (default: data/demo).")
    demo.add_argument("--num-samples", type=int, default=2000, help="Rows (default: 2000).")
    demo.add_argument("--seed", type=int, default=0, help="Random seed (default: 0).")
    demo.set_defaults(handler=demo_data_command, uses_tensorflow=False)

    validate = commands.add_parser(
        "validate",
        help="Check every row and image of a manifest; report problems by row.",
        description="One pass over every row: missing, empty, truncated, undecodable or "
        "oversized images, unsupported formats, paths leaving the data folder, empty text, "
        "bad encodings, unknown labels, duplicate ids, and the same image or text in more "
        "than one split. Exit status 1 if any row has an error.",
    )
    validate.add_argument(
        "manifest",
        help="CSV or JSONL manifest, or a dataset folder "
        "(class folders, raw MVSA) or a Hateful Memes JSONL.",
    )
    validate.add_argument(
        "--encoding",
        default="utf-8",
        help="Manifest text encoding (default: utf-8; e.g. gb18030, latin-1).",
    )
    validate.add_argument(
        "--max-pixels",
        type=int,
        default=DataConfig.max_pixels,
        help=f"Largest width x height accepted (default: {DataConfig.max_pixels}).",
    )
    validate.add_argument(
        "--allow-missing",
        action="store_true",
        help="Rows may leave text or image empty (as data.allow_missing_modalities: true).",
    )
    validate.add_argument(
        "--multi-label",
        action="store_true",
        help="Label cells hold several labels separated by | (as data.multi_label: true).",
    )
    validate.add_argument("--report", help="Also write every problem to this CSV file.")
    validate.add_argument("--limit", type=int, default=20, help="Problems to print (default: 20).")
    validate.set_defaults(handler=validate_command)

    prepare = commands.add_parser(
        "prepare",
        help="Validate, split and write a dataset as sharded TFRecords.",
        description="Validate and split like train, then write OUTPUT/<split>-NNNNN-of-NNNNN."
        "tfrecord (raw image bytes, text, label) and OUTPUT/prepared.json. Train on it with "
        "train --manifest OUTPUT.",
    )
    prepare.add_argument("--manifest", required=True, help="Anything train accepts.")
    prepare.add_argument("--output", required=True, help="New folder for the TFRecords.")
    prepare.add_argument("--shards", type=int, default=8, help="Files per split (default: 8).")
    prepare.add_argument("--config", help="Run config whose data section applies.")
    prepare.set_defaults(handler=prepare_command)

    train = commands.add_parser(
        "train",
        help="Train on a manifest; write model, metrics and plots to a run folder.",
        description="Train on the manifest's train split, select the best epoch on val "
        "macro-F1, and report val and test metrics in OUTPUT/metrics.json.",
    )
    train.add_argument(
        "--manifest",
        required=True,
        help="CSV or JSONL manifest (id,text,image,label[,split]), or a class-folder tree, "
        "a raw MVSA folder or a Hateful Memes JSONL.",
    )
    train.add_argument("--config", help="YAML or JSON run config (data, model, training, export).")
    train.add_argument("--output", default="runs/latest", help="Run folder (default: runs/latest).")
    train.add_argument("--quiet", action="store_true", help="No per-epoch progress.")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="Train again in an output folder that holds another run, replacing its model "
        "and metrics (without it such a folder is refused; an interrupted run resumes).",
    )
    train.set_defaults(handler=_train)

    ablate = commands.add_parser(
        "ablate",
        help="Train text-only, image-only and each fusion on one split; tabulate test metrics.",
        description="Answer 'does the image help?': split the data once (OUTPUT/prepared), "
        "train every variant with SEEDS seeds (training.seed + 0, 1, ...) into "
        "OUTPUT/<variant>/seed-<seed>/, and write test accuracy, macro-F1 and weighted-F1 "
        "(mean +- std over seeds) and train time to OUTPUT/ablation.md, ablation.csv (per "
        "variant) and ablation_runs.csv (per run). Rerunning resumes: finished runs are kept.",
    )
    ablate.add_argument("--manifest", required=True, help="Anything train accepts.")
    ablate.add_argument("--config", help="YAML or JSON run config shared by every run.")
    ablate.add_argument("--seeds", type=int, default=3, help="Runs per variant (default: 3).")
    ablate.add_argument(
        "--output", default="runs/ablation", help="Ablation folder (default: runs/ablation)."
    )
    ablate.add_argument(
        "--variants",
        help="Comma-separated subset of text_only, image_only and fusion=<model.fusion "
        "choice>, e.g. text_only,image_only,fusion=attention (default: all).",
    )
    ablate.add_argument("--quiet", action="store_true", help="No per-run progress.")
    ablate.set_defaults(handler=_ablate)

    tune = commands.add_parser(
        "tune",
        help="KerasTuner search over fusion, widths, dropout and learning rate.",
        description="Random search (KerasTuner) over model.fusion, the widths, dropout_rate "
        "and learning_rate, selected on val macro-F1 (test is never read). Writes "
        "OUTPUT/best_config.yaml (a config train accepts) and OUTPUT/trials.csv.",
    )
    tune.add_argument("--manifest", required=True, help="Anything train accepts.")
    tune.add_argument("--config", help="YAML or JSON run config the search starts from.")
    tune.add_argument("--trials", type=int, default=10, help="Trials (default: 10).")
    tune.add_argument("--output", default="runs/tune", help="Tuning folder (default: runs/tune).")
    tune.add_argument("--quiet", action="store_true", help="No per-trial progress.")
    tune.set_defaults(handler=_tune)

    report = commands.add_parser(
        "report",
        help="Write RUN/report.html (curves, confusion, ROC/PR, mistakes, attention).",
        description="Rebuild a run's report from its model and the manifest it trained on "
        "(the split is made again with the run's config), and optionally screenshot it "
        "with headless Chromium.",
    )
    report.add_argument("--run", required=True, help="A run folder written by train.")
    report.add_argument("--manifest", required=True, help="The manifest the run trained on.")
    report.add_argument("--split", default="test", choices=["train", "val", "test"])
    report.add_argument("--screenshot", help="Also save a full-page PNG of the report here.")
    report.set_defaults(handler=_report)

    evaluate = commands.add_parser(
        "evaluate",
        help="Metrics of a trained model on one split of a manifest.",
        description="Evaluate RUN/model.keras on one split of a labelled manifest.",
    )
    evaluate.add_argument("--run", required=True, help="Run folder (or a model.keras file).")
    evaluate.add_argument("--manifest", required=True, help="Labelled CSV or JSONL manifest.")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    evaluate.set_defaults(handler=_evaluate)

    export = commands.add_parser(
        "export",
        help="Export a trained model as a TF Serving SavedModel (raw input).",
        description="Write OUTPUT/<version>/ with a serving_default signature: "
        "text (tf.string) + image (encoded bytes) -> probabilities + label.",
    )
    export.add_argument("--run", required=True, help="Run folder (or a model.keras file).")
    export.add_argument(
        "--output",
        help="Model folder (default: <export.directory>/<export.name> from the run's config).",
    )
    export.add_argument("--version", type=int, help="Version number (default: next free).")
    export.add_argument(
        "--format",
        choices=["saved_model", "tflite"],
        default="saved_model",
        help="saved_model (TF Serving, raw input; default) or tflite (preprocessed tensors "
        "in; writes OUTPUT/model.tflite, labels.txt and preprocessor.json).",
    )
    export.add_argument(
        "--warmup-manifest",
        help="Build the TF Serving warm-up requests from the first rows of this manifest "
        "(default: built-in samples).",
    )
    export.add_argument(
        "--max-pixels",
        type=int,
        help="Refuse images whose header declares more pixels (width x height), before "
        "decoding (default: the run's data.max_pixels, "
        f"{DataConfig.max_pixels} unless set).",
    )
    export.add_argument(
        "--max-text-bytes",
        type=int,
        default=MAX_TEXT_BYTES,
        help="Read each text's first N UTF-8 bytes; the rest is cut off before "
        f"standardization (default: {MAX_TEXT_BYTES}).",
    )
    export.add_argument(
        "--check-ops",
        nargs="?",
        const=SERVING_RELEASE,
        metavar="RELEASE",
        help="Publish the version only if TF Serving RELEASE (a release or image tag; "
        f"default {SERVING_RELEASE}, whose TF Text ops the untagged tensorflow/serving image "
        "has, old or new) has every op of the graph: core TensorFlow plus the TF Text ops "
        "its model server links. Needed with model.text_encoder: hub.",
    )
    export.set_defaults(handler=export_command)

    serving = commands.add_parser(
        "serving-config",
        help="Write models.config and batching_parameters.txt for tensorflow_model_server.",
        description="Write OUTPUT/models.config (models, version policy, labels) and "
        "OUTPUT/batching_parameters.txt, the batching values measured on --measure.",
    )
    serving.add_argument(
        "--model",
        action="append",
        required=True,
        help="NAME=BASE_PATH as the server sees it, e.g. demo=/models/demo (repeatable).",
    )
    serving.add_argument("--output", default="serving", help="Folder (default: serving).")
    serving.add_argument(
        "--label",
        action="append",
        default=[],
        help="LABEL=VERSION, e.g. stable=1 (repeatable; labels pin those versions).",
    )
    serving.add_argument(
        "--version-policy", help="latest, latest:N, all or a list like 1,2 (default: latest)."
    )
    serving.add_argument(
        "--measure",
        help="A local version folder to time per batch size; batching values are chosen from "
        "it (default: conservative values without measuring).",
    )
    serving.add_argument(
        "--batch-sizes", default="1,2,4,8,16,32,64", help="Sizes to time with --measure."
    )
    serving.set_defaults(handler=serving_config_command)

    predict = commands.add_parser(
        "predict",
        help="Score a manifest with an exported SavedModel; write a CSV.",
        description="Run saved_models/<name>/<version> on the raw texts and image files "
        "of a manifest (label column optional).",
    )
    predict.add_argument("--model", required=True, help="SavedModel version folder.")
    predict.add_argument("--manifest", required=True, help="CSV or JSONL: id,text,image[,label].")
    predict.add_argument("--out", default="predictions.csv", help="CSV to write.")
    predict.add_argument("--batch-size", type=int, default=64)
    predict.add_argument(
        "--allow-missing",
        action="store_true",
        help="Rows may leave text or image empty (not both); the model gets an empty string.",
    )
    predict.set_defaults(handler=_predict)

    weights = commands.add_parser(
        "weights",
        help="Install or list the pretrained backbone weights a run finds offline.",
        description="image_weights: imagenet loads the file keras.applications uses, from the "
        "Keras cache ($KERAS_HOME/models, by default ~/.keras/models), downloading it once "
        "where the network allows. 'install' puts a file you have there, so a machine "
        "without network needs no download; 'list' shows what is there.",
    )
    actions = weights.add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=_CommandParser
    )
    install = actions.add_parser(
        "install",
        help="Check a weights file against its backbone and put it in the Keras cache.",
        description="Check that FILE holds the backbone without its top (a mismatch names "
        "the layer and the shapes), convert a Keras 3 .weights.h5 file to the layout Keras "
        "downloads, and write it under Keras' name in the Keras cache.",
    )
    install.add_argument("file", metavar="FILE", help="A .h5 or .weights.h5 weights file.")
    install.add_argument(
        "--backbone",
        default=ModelConfig.image_encoder,
        help=f"Architecture, as model.image_encoder (default: {ModelConfig.image_encoder}).",
    )
    install.add_argument(
        "--alpha",
        type=float,
        default=ModelConfig.backbone_alpha,
        help=f"MobileNet width, as model.backbone_alpha (default: {ModelConfig.backbone_alpha:g}).",
    )
    install.add_argument(
        "--overwrite", action="store_true", help="Replace an installed file with other weights."
    )
    install.set_defaults(handler=weights_install_command)
    listing = actions.add_parser(
        "list",
        help="Show the installed weights and what a config needs.",
        description="List the ImageNet files in the Keras cache and say whether the file "
        "the default config (or --config) needs is there.",
    )
    listing.add_argument("--config", help="A run config (default: the defaults).")
    listing.set_defaults(handler=weights_list_command)
    return parser


def _add_global_options(parser, default):
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=default,
        help="Show TensorFlow's C++ log: its start-up lines (oneDNN, CUDA, CPU "
        "instructions), warnings and errors (default: none, unless TF_CPP_MIN_LOG_LEVEL "
        "is set).",
    )


class _CommandParser(argparse.ArgumentParser):
    """A (sub)command's parser: takes the global options after COMMAND too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Unset unless given here, so that `multimodal-tf --verbose COMMAND` keeps it.
        _add_global_options(self, default=argparse.SUPPRESS)


def _train(args):
    from multimodal_tf.config import load_config
    from multimodal_tf.training.fit import train

    config = load_config(args.config)
    result = train(
        args.manifest,
        config,
        args.output,
        verbose=0 if args.quiet else 2,
        overwrite=args.overwrite,
    )
    print(f"run folder: {result.run_dir}")
    for split in ("val", "test"):
        if split in result.metrics:
            _print_metrics(split, result.metrics[split])
    return 0


def _tune(args):
    from multimodal_tf.config import load_config
    from multimodal_tf.training.tune import tune

    config = load_config(args.config)
    result = tune(
        args.manifest,
        config,
        trials=args.trials,
        output_dir=args.output,
        verbose=0 if args.quiet else 1,
    )
    print(f"best val macro-F1 {result.best_score:.4f}")
    print(f"best config: {result.best_config_path} (multimodal-tf train --config it)")
    print(f"trials: {result.trials_csv}")
    return 0


def _report(args):
    import tempfile

    from multimodal_tf.config import load_config
    from multimodal_tf.data.source import TrainingData
    from multimodal_tf.errors import DataError
    from multimodal_tf.training.browser import figures_status, screenshot
    from multimodal_tf.training.evaluate import load_model_file
    from multimodal_tf.training.report import write_report

    run = Path(args.run)
    model = load_model_file(run)
    config = load_config(run / "config.yaml" if (run / "config.yaml").is_file() else None)
    with tempfile.TemporaryDirectory() as scratch:  # the split train made, not a new one
        source = TrainingData.load(args.manifest, config.data, scratch, verbose=False)
    if source.splits is None or not source.has_split(args.split):
        raise DataError(f"{args.manifest} has no {args.split!r} rows to report on.")
    page = write_report(
        run, model, source.splits[args.split], split=args.split, batch_size=config.data.batch_size
    )
    print(f"wrote {page}")
    if args.screenshot:
        status = figures_status(page)
        print(f"headless Chromium shows {status['loaded']} of {status['total']} images")
        print(f"wrote {screenshot(page, args.screenshot)}")
    return 0


def _ablate(args):
    from multimodal_tf.training.ablation import run_ablation

    argv = ["--manifest", args.manifest, "--seeds", str(args.seeds), "--output", args.output]
    if args.config:
        argv += ["--config", args.config]
    if args.variants:
        argv += ["--variants", args.variants]
    if args.quiet:
        argv.append("--quiet")
    result = run_ablation(
        args.manifest,
        args.config,
        seeds=args.seeds,
        output_dir=args.output,
        variants=args.variants,
        verbose=0 if args.quiet else 1,
        command=shlex.join(["multimodal-tf", "ablate", *argv]),
    )
    print(result.markdown)
    names = ("ablation.md", "ablation.csv", "ablation_runs.csv")
    print("wrote " + ", ".join(str(result.output_dir / name) for name in names))
    return 0


def _evaluate(args):
    from multimodal_tf.training.evaluate import evaluate

    metrics = evaluate(args.run, args.manifest, split=args.split)
    _print_metrics(args.split, metrics)
    print(json.dumps(metrics, indent=2))
    return 0


def _predict(args):
    from multimodal_tf.serving.predict import predict_manifest

    summary = predict_manifest(
        args.model,
        args.manifest,
        args.out,
        batch_size=args.batch_size,
        allow_missing=args.allow_missing,
    )
    line = f"wrote {summary['num_rows']} predictions to {summary['output']}"
    if "accuracy" in summary:
        line += f" (accuracy against the manifest's labels: {summary['accuracy']:.4f})"
    print(line)
    return 0


def _print_metrics(split, metrics):
    intervals = metrics.get("intervals", {})

    def figure(key):
        low, high = intervals.get(key, (None, None))
        return f"{metrics[key]:.4f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "")

    print(
        f"{split}: accuracy {figure('accuracy')}  macro-F1 {figure('macro_f1')}  "
        f"weighted-F1 {figure('weighted_f1')}  (n={metrics['num_samples']}"
        + ("; [95% bootstrap interval]" if intervals else "")
        + ")"
    )


if __name__ == "__main__":
    sys.exit(main())

"""`run_ablation()`: text-only, image-only and each fusion, on one split, over several seeds."""

import copy
import csv
import dataclasses
import hashlib
import io
import json
import shutil
import statistics
from pathlib import Path

from multimodal_tf.config import RunConfig, load_config, save_config
from multimodal_tf.data.source import prepare_tfrecords
from multimodal_tf.data.tfrecords import read_prepared
from multimodal_tf.errors import ConfigError, DataError
from multimodal_tf.files import write_text_atomically
from multimodal_tf.layers.fusion import FUSIONS
from multimodal_tf.training.fit import METRICS_FILE, train
from multimodal_tf.training.provenance import read_run_record

DIGEST_FILE = "source.sha256"

UNIMODAL_VARIANTS = {"text_only": ("text",), "image_only": ("image",)}
# One fixed single-modality pooling, whatever the config's fusion: some fusions
# (cross-attention) need two modalities, and the baseline stays comparable.
UNIMODAL_FUSION = "attention"
METRICS = (("accuracy", "test accuracy"), ("macro_f1", "macro-F1"), ("weighted_f1", "weighted-F1"))
RUN_COLUMNS = ["variant", "seed"] + [f"test_{name}" for name, _ in METRICS]
RUN_COLUMNS += ["train_seconds", "run_dir"]
SUMMARY_COLUMNS = ["variant", "modalities", "fusion", "num_seeds"]
SUMMARY_COLUMNS += [f"test_{name}_{stat}" for name, _ in METRICS for stat in ("mean", "std")]
SUMMARY_COLUMNS += ["train_seconds_mean"]


@dataclasses.dataclass
class AblationResult:
    """What `run_ablation()` produced.

    Args:
        output_dir: Path. Holds `ablation.md`, `ablation.csv` (one row per
            variant), `ablation_runs.csv` (one row per variant and seed),
            `config.yaml`, `prepared/` and a run folder `<variant>/seed-<seed>/`
            per run.
        summary: list of dict. The rows of `ablation.csv`.
        runs: list of dict. The rows of `ablation_runs.csv`.
        markdown: str. The contents of `ablation.md`.
    """

    output_dir: Path
    summary: list
    runs: list
    markdown: str


def default_variants():
    """`text_only`, `image_only`, then `fusion=<name>` for every fusion the config allows."""
    return (*UNIMODAL_VARIANTS, *(f"fusion={name}" for name in FUSIONS))


def run_ablation(
    manifest,
    config=None,
    seeds=3,
    output_dir="runs/ablation",
    variants=None,
    verbose=1,
    train_fn=None,
    command=None,
):
    """Trains every variant with every seed on one fixed split and tabulates test metrics.

    The data is validated and split once, into `output_dir/prepared/`, and
    every run trains on that folder, so all variants see the same train, val
    and test samples. The training seed of run `k` is `training.seed + k`.
    A variant sets `model.modalities` and `model.fusion` (unimodal variants
    pool with `attention` fusion); all else comes from the config. The tables are
    rewritten after every run, and a run folder that already holds
    `metrics.json` is not trained again: rerunning the same call resumes it.

    Args:
        manifest: str or Path. Anything `train` accepts, or a prepared folder.
        config: `RunConfig`, str, Path or None. A config or its YAML/JSON file;
            `None` means the defaults.
        seeds: int. Runs per variant.
        output_dir: str or Path. The ablation folder (created, or resumed).
        variants: list of str, str or None. Names from `default_variants()`
            (a str is split on commas); `None` means all of them.
        verbose: int. 0 prints nothing, 1 one line per run, 2 also Keras'
            per-epoch lines.
        train_fn: callable or None. Called like `train(manifest, config,
            output_dir, verbose=...)`, returning an object with `.metrics`;
            `None` means `train`.
        command: str or None. The command line, quoted in `ablation.md`.

    Returns:
        An `AblationResult`.

    Example:
    >>> result = run_ablation("data/demo/manifest.csv", seeds=2,  # doctest: +SKIP
    ...                       variants=["text_only", "image_only", "fusion=attention"])
    >>> print(result.markdown)  # doctest: +SKIP
    """
    config_name = "defaults" if config is None else "a RunConfig object"
    if isinstance(config, (str, Path)):
        config_name = Path(config).name
        config = load_config(config)
    config = config or RunConfig()
    variants = _check_variants(variants)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"`seeds` must be a positive integer; received {seeds!r}.")
    if config.training.oversample:
        raise ConfigError(
            "training.oversample works on manifests, but the ablation trains every run on "
            "one prepared TFRecord copy of the data; use training.class_weight: balanced."
        )
    train_fn = train_fn or train
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _check_same_config(output_dir, config)
    prepared = _prepare_once(manifest, config, output_dir, verbose)
    save_config(config, output_dir / "config.yaml")

    sizes = {split: info["num_samples"] for split, info in prepared["splits"].items()}
    seed_values = [config.training.seed + k for k in range(seeds)]
    header = {
        "manifest": str(manifest),
        "samples": " / ".join(f"{sizes.get(s, 0)} {s}" for s in ("train", "val", "test")),
        "config": f"{config_name} (snapshot: config.yaml)",
        "seeds": ", ".join(map(str, seed_values)),
    }
    if command:
        header["command"] = f"`{command}`"
    if verbose:
        print(f"data: {header['samples']} samples, prepared in {prepared['folder']}")

    runs = []
    for variant in variants:
        for seed in seed_values:
            run_dir = output_dir / variant / f"seed-{seed}"
            step = f"[{len(runs) + 1}/{len(variants) * seeds}] {variant} seed {seed}"
            run_config = _variant_config(config, variant, seed)
            metrics, trained = _train_or_resume(
                train_fn, prepared["folder"], run_config, run_dir, verbose
            )
            if verbose:
                print(
                    f"{step}: test accuracy {metrics['test']['accuracy']:.3f}, macro-F1 "
                    f"{metrics['test']['macro_f1']:.3f} ({metrics['train_seconds']:.0f} s"
                    f"{'' if trained else '; finished before, not retrained'})"
                )
            runs.append(_run_row(variant, seed, run_dir, metrics))
            # Rewritten after every run, so a crash keeps every finished row.
            summary = _summarize(runs, config)
            markdown = _markdown(summary, header)
            _write_text(output_dir / "ablation.md", markdown)
            _write_text(output_dir / "ablation.csv", _csv(summary, SUMMARY_COLUMNS))
            _write_text(output_dir / "ablation_runs.csv", _csv(runs, RUN_COLUMNS))
    return AblationResult(output_dir, summary, runs, markdown)


def _train_or_resume(train_fn, prepared_folder, config, run_dir, verbose):
    """The run's metrics, and whether it trained now (False: read from its metrics.json)."""
    metrics_file = run_dir / METRICS_FILE
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        # Timing lives in run.json, so that reruns give an identical metrics.json.
        metrics.setdefault("train_seconds", read_run_record(run_dir).get("train_seconds", 0.0))
        return metrics, False
    result = train_fn(prepared_folder, config, run_dir, verbose=2 if verbose > 1 else 0)
    if not metrics_file.is_file():  # so runs of a train_fn that does not write it resume too
        _write_text(metrics_file, json.dumps(result.metrics, indent=2) + "\n")
    return result.metrics, True


def _check_variants(variants):
    allowed = default_variants()
    if variants is None:
        return list(allowed)
    if isinstance(variants, str):
        variants = variants.split(",")
    variants = list(dict.fromkeys(name.strip() for name in variants if name.strip()))
    unknown = [name for name in variants if name not in allowed]
    if unknown or not variants:
        raise ConfigError(
            f"Unknown ablation variant(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"allowed: {', '.join(allowed)}."
        )
    return variants


def _variant_config(config, variant, seed):
    config = copy.deepcopy(config)
    if variant in UNIMODAL_VARIANTS:
        config.model.modalities = UNIMODAL_VARIANTS[variant]
        config.model.fusion = UNIMODAL_FUSION
        # The wide path reads the text: an image-only baseline has none.
        config.model.wide = config.model.wide and "text" in config.model.modalities
    else:
        config.model.modalities = ("text", "image")
        config.model.fusion = variant.split("=", 1)[1]
    config.training.seed = seed
    config.training.report = False  # the ablation's table is the report; `report` makes one
    return config


def _check_same_config(output_dir, config):
    """Refuses to resume a folder whose runs were trained with another config.

    `model.modalities` and `model.fusion` are left out: every variant sets both.
    """
    snapshot = output_dir / "config.yaml"
    if not snapshot.is_file():
        if read_prepared(output_dir / "prepared") is not None:
            raise ConfigError(
                f"{output_dir} holds prepared data but no config.yaml; pick a new output folder."
            )
        return
    before, now = _flatten(load_config(snapshot).to_dict()), _flatten(config.to_dict())
    changed = [
        f"{key}: {before.get(key)!r} there, {value!r} now"
        for key, value in now.items()
        if before.get(key) != value and key not in ("model.modalities", "model.fusion")
    ]
    if changed:
        raise ConfigError(
            f"{output_dir} holds an ablation run with another config ({'; '.join(changed)}). "
            "Rerun with the same config to resume it, or pick a new output folder."
        )


def _flatten(values):
    return {
        f"{section}.{key}": value for section, keys in values.items() for key, value in keys.items()
    }


def _digest(source):
    """sha256 of a manifest file; for a folder layout, of its sorted file names and sizes."""
    digest = hashlib.sha256()
    if source.is_file():
        with source.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                digest.update(f"{path.relative_to(source)}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _prepare_once(manifest, config, output_dir, verbose):
    """The prepared folder every run trains on, with a test split checked before any training."""
    prepared = read_prepared(manifest) if Path(manifest).is_dir() else None
    created = None
    if prepared is None:
        folder = output_dir / "prepared"
        prepared = read_prepared(folder)
        # Resolved, so a resumed ablation can check it is given the same file.
        source = Path(manifest).resolve()
        if prepared is None:
            prepared = prepare_tfrecords(source, folder, config.data, verbose=bool(verbose))
            (folder / DIGEST_FILE).write_text(_digest(source) + "\n")
            created = folder
        elif Path(prepared["source"]) != source:
            raise ConfigError(
                f"{output_dir} holds an ablation of {prepared['source']}, not {source}; "
                "pick a new output folder."
            )
        elif (folder / DIGEST_FILE).is_file() and (
            (folder / DIGEST_FILE).read_text().strip() != _digest(source)
        ):
            # Same path, new contents (e.g. regenerated data): resuming would mix
            # runs on the old split with runs on the new one.
            raise ConfigError(
                f"{source} changed since {output_dir} was prepared from it; "
                "pick a new output folder (or delete this one) to start over."
            )
    if "test" not in prepared["splits"]:
        if created is not None:  # useless without a test split; a rerun prepares it again
            shutil.rmtree(created)
        sizes = ", ".join(f"{info['num_samples']} {s}" for s, info in prepared["splits"].items())
        raise DataError(
            f"{manifest} has no test split ({sizes}); the ablation compares test metrics. "
            "Set data.test_fraction above 0 in the config, or give the manifest a split "
            "column with 'test' rows."
        )
    return prepared


def _run_row(variant, seed, run_dir, metrics):
    row = {"variant": variant, "seed": seed}
    for name, _ in METRICS:
        row[f"test_{name}"] = metrics["test"][name]
    row["train_seconds"] = metrics["train_seconds"]
    row["run_dir"] = str(run_dir)
    return row


def _summarize(runs, config):
    summary = []
    for variant in dict.fromkeys(row["variant"] for row in runs):
        rows = [row for row in runs if row["variant"] == variant]
        model = _variant_config(config, variant, seed=0).model
        line = {
            "variant": variant,
            "modalities": "+".join(model.modalities),
            "fusion": model.fusion,
            "num_seeds": len(rows),
        }
        for name, _ in METRICS:
            values = [row[f"test_{name}"] for row in rows]
            line[f"test_{name}_mean"] = statistics.mean(values)
            line[f"test_{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        line["train_seconds_mean"] = statistics.mean(row["train_seconds"] for row in rows)
        summary.append(line)
    return summary


def _markdown(summary, header):
    lines = ["# Ablation: test metrics per variant", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += [
        "",
        "Mean ± sample standard deviation over seeds; every run uses the same "
        "train/val/test split.",
        "",
        "| variant | " + " | ".join(title for _, title in METRICS) + " | train time s (mean) "
        "| seeds |",
        "|---|" + "---:|" * (len(METRICS) + 2),
    ]
    for row in summary:
        cells = [row["variant"]]
        for name, _ in METRICS:
            cells.append(f"{row[f'test_{name}_mean']:.3f} ± {row[f'test_{name}_std']:.3f}")
        cells += [f"{row['train_seconds_mean']:.1f}", str(row["num_seeds"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, text)

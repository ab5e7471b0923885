"""Where training reads its samples: validated manifest rows, or a prepared TFRecord folder."""

import dataclasses
from pathlib import Path

from multimodal_tf.data.balance import oversample
from multimodal_tf.data.dataset import decoded_cache_bytes, make_dataset, make_prepared_dataset
from multimodal_tf.data.labels import class_names_from
from multimodal_tf.data.manifest import split_records
from multimodal_tf.data.problems import write_problems_csv
from multimodal_tf.data.tfrecords import raw_dataset, read_prepared, write_tfrecords
from multimodal_tf.data.validate import validate_manifest
from multimodal_tf.errors import ConfigError, DataError


@dataclasses.dataclass
class TrainingData:
    """The splits of one training run, whatever they are stored in.

    Args:
        splits: dict or None. `{split: [Record]}` for manifest data.
        prepared: dict or None. `read_prepared` metadata for TFRecord data.
        summary: dict. Rows read, skipped and warned about (for metrics.json).
        multi_label: bool. Label cells hold `|`-separated labels (multi-hot targets).
        cache_mb: int. A split (of a manifest or a prepared folder) whose decoded
            samples fit in this many MiB is cached in memory after its first pass
            (0: never).
        image_digests: dict. `{row: sha256 of the image bytes}` (manifests only).
    """

    splits: dict | None = None
    prepared: dict | None = None
    summary: dict = dataclasses.field(default_factory=dict)
    multi_label: bool = False
    cache_mb: int = 0
    image_digests: dict = dataclasses.field(default_factory=dict, repr=False)
    _train_columns: tuple | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, path, data_config, run_dir, verbose=True):
        """Validates a manifest (or any `read_any` layout) or opens a prepared folder.

        With `on_error: raise` a row with an error stops here, before any
        training; with `skip` the bad rows are left out and listed in
        `run_dir/skipped_rows.csv`. Every problem goes to `data_problems.csv`.
        """
        multi_label = data_config.multi_label
        prepared = read_prepared(path) if Path(path).is_dir() else None
        if prepared is not None:
            # Validation and the split depend on it, so it must match what prepare did.
            if prepared.get("multi_label", False) != multi_label:
                raise ConfigError(
                    f"{path} was prepared with data.multi_label: "
                    f"{str(prepared.get('multi_label', False)).lower()}, but this run has "
                    f"{str(multi_label).lower()}; prepare it again with this config."
                )
            sizes = {s: v["num_samples"] for s, v in prepared["splits"].items()}
            summary = {"prepared": str(path), "samples": sizes}
            return cls(
                prepared=prepared,
                summary=summary,
                multi_label=multi_label,
                cache_mb=data_config.cache_decoded_images_mb,
            )
        report = validate_manifest(
            path,
            data_config.encoding,
            data_config.max_pixels,
            allow_missing=data_config.allow_missing_modalities,
            multi_label=multi_label,
        )
        report.write_csv(Path(run_dir) / "data_problems.csv")
        if report.errors and data_config.on_error == "raise":
            raise DataError(
                report.format()
                + f"\nAll problems: {Path(run_dir) / 'data_problems.csv'}. Fix them, or set "
                "data.on_error: skip to train on the usable rows."
            )
        if report.problems and verbose:
            print(report.format(limit=5))
        if report.errors:
            skipped_file = Path(run_dir) / "skipped_rows.csv"
            write_problems_csv(report.errors, skipped_file)
            print(f"skipped {len(report.skipped_rows)} row(s); reasons in {skipped_file}")
        splits = split_records(
            report.records,
            data_config.val_fraction,
            data_config.test_fraction,
            data_config.split_seed,
            image_digests=report.image_digests,
            multi_label=multi_label,
        )
        summary = {
            "rows": report.num_rows,
            "skipped_rows": len(report.skipped_rows),
            "warnings": len(report.warnings),
        }
        return cls(
            splits=splits,
            summary=summary,
            multi_label=multi_label,
            cache_mb=data_config.cache_decoded_images_mb,
            image_digests=report.image_digests,
        )

    @property
    def class_names(self):
        """Sorted labels of the train split (multi-label: the union of every cell's labels)."""
        if self.prepared is not None:
            cells = self.prepared["splits"]["train"]["labels"]  # distinct label cells
        else:
            cells = [record.label for record in self.splits["train"]]
        return class_names_from(cells, self.multi_label)

    def has_split(self, split):
        if self.prepared is not None:
            return split in self.prepared["splits"]
        return bool(self.splits.get(split))

    def train_labels(self):
        if self.prepared is not None:
            return self._prepared_train_columns()[1]
        return [record.label for record in self.splits["train"]]

    def train_texts(self):
        """Training texts only: the vocabulary never sees val or test."""
        if self.prepared is not None:
            return self._prepared_train_columns()[0]
        return [record.text for record in self.splits["train"]]

    def _prepared_train_columns(self):
        if self._train_columns is None:  # one pass over the shards, not one per use
            texts, labels = [], []
            for sample in raw_dataset(self.prepared, "train").as_numpy_iterator():
                texts.append(sample["text"].decode("utf-8"))
                labels.append(sample["label"].decode("utf-8"))
            self._train_columns = (texts, labels)
        return self._train_columns

    def dataset(
        self,
        split,
        preprocessor,
        class_names,
        batch_size,
        shuffle=False,
        seed=None,
        oversampled=False,
        text_only=False,
    ):
        if self.prepared is not None:
            if oversampled:
                raise ConfigError(
                    "training.oversample works on manifests, not prepared TFRecords; use "
                    "training.class_weight: balanced instead."
                )
            return make_prepared_dataset(
                self.prepared,
                split,
                preprocessor,
                class_names,
                batch_size,
                shuffle,
                seed,
                multi_label=self.multi_label,
                text_only=text_only,
                cache=self._fits_cache(
                    self.prepared["splits"][split]["num_samples"], preprocessor, text_only
                ),
            )
        records = self.splits[split]
        if oversampled:
            records = oversample(records, seed=seed)
        return make_dataset(
            records,
            preprocessor,
            class_names,
            batch_size,
            shuffle,
            seed,
            multi_label=self.multi_label,
            cache=self._fits_cache(len(records), preprocessor, text_only),
            text_only=text_only,
        )

    def _fits_cache(self, num_samples, preprocessor, text_only):
        # Either source's split is cached when its decoded samples fit `cache_mb`.
        return decoded_cache_bytes(num_samples, preprocessor, text_only) <= self.cache_mb * 2**20


def prepare_tfrecords(manifest, output_dir, data_config, num_shards=8, verbose=True):
    """Validates and splits a dataset like `train` does, then writes sharded TFRecords.

    Training on the folder (`train --manifest OUTPUT_DIR`) reads the shards
    with parallel interleave instead of opening one small file per sample, and
    a multi-worker run gives each worker its own files.

    Args:
        manifest: str or Path. Anything `train` accepts.
        output_dir: str or Path. The folder to write (must be new or empty).
        data_config: `DataConfig`. Encoding, pixel limit, on_error and split settings.
        num_shards: int. Files per split.
        verbose: bool. Print the validation summary.

    Returns:
        The `prepared.json` metadata as a dict.

    Example:
    >>> prepare_tfrecords("data/demo/manifest.csv", "data/demo_tfrecords",  # doctest: +SKIP
    ...                   RunConfig().data, num_shards=4)
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    source = TrainingData.load(manifest, data_config, output_dir, verbose=verbose)
    if source.prepared is not None:
        raise DataError(f"{manifest} is already a prepared folder.")
    write_tfrecords(
        source.splits,
        output_dir,
        num_shards=num_shards,
        source=manifest,
        multi_label=data_config.multi_label,
    )
    return read_prepared(output_dir)

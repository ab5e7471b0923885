"""`run_ablation` with an injected `train_fn` (bookkeeping), and `ablate` end to end."""

import csv
import json
import types

import pytest

from multimodal_tf.cli import main
from multimodal_tf.config import save_config
from multimodal_tf.errors import ConfigError, DataError
from multimodal_tf.training.ablation import default_variants, run_ablation

VARIANTS = ["text_only", "image_only", "fusion=concat"]
# Test accuracy of the fake runs: a base per variant plus 0.01 per seed step.
BASE = {
    ("text", "attention"): 0.60,
    ("image", "attention"): 0.50,
    ("text", "image", "concat"): 0.80,
}


class FakeTrain:
    """Records its calls; metrics depend on the variant's config and the seed."""

    def __init__(self, fail_on_call=None):
        self.calls = []
        self.fail_on_call = fail_on_call

    def __call__(self, manifest, config, output_dir, verbose=1):
        self.calls.append((str(manifest), config, output_dir))
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError("out of memory")
        model = config.model
        key = (*model.modalities, model.fusion)
        step = config.training.seed - 1337
        accuracy = BASE[key] + 0.01 * step
        metrics = {
            "train_seconds": 10.0 + step,
            "test": {"accuracy": accuracy, "macro_f1": accuracy - 0.1, "weighted_f1": 0.7},
        }
        return types.SimpleNamespace(metrics=metrics)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_aggregates_mean_and_sample_std_over_seeds(tiny_manifest, tiny_config, tmp_path):
    tiny_config.model.fusion = "cross_attention"  # needs two modalities: not for text_only
    fake = FakeTrain()
    output = tmp_path / "ablation"
    result = run_ablation(
        tiny_manifest, tiny_config, seeds=3, output_dir=output, variants=VARIANTS, train_fn=fake
    )

    # One prepared folder, shared by every run; one run folder per variant and seed.
    assert {manifest for manifest, _, _ in fake.calls} == {str(output / "prepared")}
    assert [run_dir for _, _, run_dir in fake.calls][:4] == [
        output / "text_only" / "seed-1337",
        output / "text_only" / "seed-1338",
        output / "text_only" / "seed-1339",
        output / "image_only" / "seed-1337",
    ]
    assert tiny_config.model.modalities == ("text", "image")  # the caller's config is untouched
    assert tiny_config.model.fusion == "cross_attention"

    by_variant = {row["variant"]: row for row in result.summary}
    assert list(by_variant) == VARIANTS
    # Seeds 1337..1339 add 0.00, 0.01, 0.02: mean base + 0.01, sample std 0.01.
    text = by_variant["text_only"]
    assert text["test_accuracy_mean"] == pytest.approx(0.61)
    assert text["test_accuracy_std"] == pytest.approx(0.01)
    assert text["test_macro_f1_mean"] == pytest.approx(0.51)
    assert text["test_weighted_f1_std"] == pytest.approx(0.0)
    assert text["train_seconds_mean"] == pytest.approx(11.0)
    assert text["num_seeds"] == 3
    assert by_variant["fusion=concat"]["test_accuracy_mean"] == pytest.approx(0.81)
    columns = [(row["modalities"], row["fusion"]) for row in result.summary]
    assert columns == [("text", "attention"), ("image", "attention"), ("text+image", "concat")]
    assert len(result.runs) == 9

    markdown = (output / "ablation.md").read_text()
    assert markdown == result.markdown
    assert "| text_only | 0.610 ± 0.010 | 0.510 ± 0.010 | 0.700 ± 0.000 | 11.0 | 3 |" in markdown
    assert "| fusion=concat | 0.810 ± 0.010 |" in markdown
    assert "- samples: 16 train / 4 val / 4 test" in markdown
    assert "- seeds: 1337, 1338, 1339" in markdown
    assert "- config: a RunConfig object" in markdown

    summary = read_csv(output / "ablation.csv")
    assert [row["variant"] for row in summary] == VARIANTS
    assert float(summary[1]["test_accuracy_mean"]) == pytest.approx(0.51)
    runs = read_csv(output / "ablation_runs.csv")
    assert [(row["variant"], row["seed"]) for row in runs[3:5]] == [
        ("image_only", "1337"),
        ("image_only", "1338"),
    ]
    assert float(runs[4]["test_accuracy"]) == pytest.approx(0.51)
    assert (output / "config.yaml").is_file()


def test_one_seed_has_zero_std_and_config_file_name(tiny_manifest, tiny_config, tmp_path):
    config_file = tmp_path / "run.yaml"
    tiny_config.training.seed = 7
    save_config(tiny_config, config_file)
    fake = FakeTrain()
    result = run_ablation(
        tiny_manifest,
        config_file,
        seeds=1,
        output_dir=tmp_path / "a",
        variants="fusion=concat",
        train_fn=fake,
        command="multimodal-tf ablate --seeds 1",
    )
    assert fake.calls[0][1].training.seed == 7
    assert result.summary[0]["test_accuracy_std"] == 0.0
    assert "- config: run.yaml" in result.markdown
    assert "- command: `multimodal-tf ablate --seeds 1`" in result.markdown


def test_resume_skips_finished_runs_and_keeps_rows_after_a_crash(
    tiny_manifest, tiny_config, tmp_path
):
    output = tmp_path / "ablation"
    kwargs = dict(config=tiny_config, seeds=2, output_dir=output, variants=VARIANTS)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_ablation(tiny_manifest, train_fn=FakeTrain(fail_on_call=4), **kwargs)
    # The three runs that finished are in the tables already.
    runs = read_csv(output / "ablation_runs.csv")
    assert [(row["variant"], row["seed"]) for row in runs] == [
        ("text_only", "1337"),
        ("text_only", "1338"),
        ("image_only", "1337"),
    ]

    fake = FakeTrain()
    result = run_ablation(tiny_manifest, train_fn=fake, **kwargs)
    assert [run_dir.relative_to(output).as_posix() for _, _, run_dir in fake.calls] == [
        "image_only/seed-1338",
        "fusion=concat/seed-1337",
        "fusion=concat/seed-1338",
    ]
    assert len(result.runs) == 6
    assert result.summary[0]["test_accuracy_mean"] == pytest.approx(0.605)

    finished = FakeTrain(fail_on_call=1)  # nothing left to train
    assert run_ablation(tiny_manifest, train_fn=finished, **kwargs).runs == result.runs


def test_resume_with_another_config_is_refused(tiny_manifest, tiny_config, tmp_path):
    output = tmp_path / "ablation"
    run_ablation(
        tiny_manifest, tiny_config, 1, output, variants=["text_only"], train_fn=FakeTrain()
    )
    tiny_config.model.fusion = "gated"  # the variants set it: still resumable
    run_ablation(
        tiny_manifest, tiny_config, 1, output, variants=["text_only"], train_fn=FakeTrain(1)
    )
    tiny_config.training.epochs = 5
    fake = FakeTrain()
    with pytest.raises(ConfigError, match="training.epochs: 2 there, 5 now"):
        run_ablation(tiny_manifest, tiny_config, 1, output, variants=["text_only"], train_fn=fake)
    assert fake.calls == []


def test_resume_on_changed_data_is_refused(tiny_manifest, tiny_config, tmp_path):
    output = tmp_path / "ablation"
    run_ablation(
        tiny_manifest, tiny_config, 1, output, variants=["text_only"], train_fn=FakeTrain()
    )
    lines = tiny_manifest.read_text().splitlines()
    tiny_manifest.write_text("\n".join(lines[:-1]) + "\n")  # one row fewer
    fake = FakeTrain()
    with pytest.raises(ConfigError, match="changed since"):
        run_ablation(tiny_manifest, tiny_config, 1, output, variants=["text_only"], train_fn=fake)
    assert fake.calls == []


def test_no_test_split_is_a_data_error_before_training(tiny_manifest, tiny_config, tmp_path):
    no_test = tiny_manifest.with_name("no_test.csv")
    no_test.write_text(tiny_manifest.read_text().replace(",test", ",train"))
    fake = FakeTrain()
    output = tmp_path / "ablation"
    with pytest.raises(DataError, match="no test split.*data.test_fraction"):
        run_ablation(no_test, tiny_config, 1, output, train_fn=fake)
    assert fake.calls == []
    assert not (output / "prepared").exists()


@pytest.mark.parametrize(
    "variants, message",
    [(["text_only", "fusion=magic"], "'fusion=magic'"), ([], "none given")],
)
def test_unknown_variant_names_the_allowed_ones(tiny_manifest, tmp_path, variants, message):
    with pytest.raises(ConfigError, match=message) as error:
        run_ablation(tiny_manifest, variants=variants, output_dir=tmp_path, train_fn=FakeTrain())
    assert "allowed: text_only, image_only, fusion=concat, fusion=attention" in str(error.value)


def test_default_variants_cover_both_modalities_and_every_fusion():
    assert default_variants() == (
        "text_only",
        "image_only",
        "fusion=concat",
        "fusion=attention",
        "fusion=cross_attention",
        "fusion=gated",
        "fusion=late",
    )


def test_ablate_has_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ablate", "--help"])
    assert exit_info.value.code == 0
    assert "usage: multimodal-tf ablate" in capsys.readouterr().out


@pytest.mark.slow
def test_ablate_command_end_to_end(tiny_manifest, tiny_config, tmp_path, capsys):
    # Two real trainings (a unimodal variant and a fusion; FakeTrain covers the
    # bookkeeping of more); the numbers are not checked.
    tiny_config.training.epochs = 1
    config = tmp_path / "run.yaml"
    save_config(tiny_config, config)
    output = tmp_path / "ablation"
    variants = "image_only,fusion=attention"
    argv = ["ablate", "--manifest", str(tiny_manifest), "--config", str(config)]
    argv += ["--seeds", "1", "--output", str(output), "--variants", variants, "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err

    out = capsys.readouterr().out
    for name in ("ablation.md", "ablation.csv", "ablation_runs.csv", "config.yaml"):
        assert (output / name).is_file(), name
    for variant in variants.split(","):
        assert (output / variant / "seed-1337" / "metrics.json").is_file()
        assert f"| {variant} | " in out
    markdown = (output / "ablation.md").read_text()
    assert "- samples: 16 train / 4 val / 4 test" in markdown
    assert f"--variants {variants}" in markdown
    runs = read_csv(output / "ablation_runs.csv")
    assert [row["variant"] for row in runs] == variants.split(",")
    metrics = json.loads((output / "image_only" / "seed-1337" / "metrics.json").read_text())
    assert float(runs[0]["test_accuracy"]) == pytest.approx(metrics["test"]["accuracy"])
    assert metrics["test"]["num_samples"] == 4


def test_a_prepared_folder_is_used_as_it_is(tiny_manifest, tiny_config, tmp_path):
    from multimodal_tf.data.source import prepare_tfrecords

    prepared = tmp_path / "prepared_elsewhere"
    prepare_tfrecords(tiny_manifest, prepared, tiny_config.data, verbose=False)
    fake = FakeTrain()
    output = tmp_path / "ablation"
    run_ablation(prepared, tiny_config, 1, output, variants=["text_only"], train_fn=fake)
    assert fake.calls[0][0] == str(prepared)
    assert not (output / "prepared").exists()

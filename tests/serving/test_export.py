import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from multimodal_tf.errors import DataError
from multimodal_tf.serving.export import export_saved_model
from multimodal_tf.training.fit import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import image_bytes, make_tiny_config, write_manifest

    folder = tmp_path_factory.mktemp("data")
    (folder / "images").mkdir()
    rows = []
    for index in range(12):
        (folder / "images" / f"{index}.png").write_bytes(
            image_bytes((200, 20, 10 * index) if index % 2 else (20, 10 * index, 200))
        )
        rows.append(
            {
                "id": str(index),
                "text": f"{'hot' if index % 2 else 'cold'} {index}",
                "image": f"images/{index}.png",
                "label": "a" if index % 2 else "b",
            }
        )
    manifest = write_manifest(folder, rows)
    config = make_tiny_config()
    config.data.val_fraction = config.data.test_fraction = 0.25
    config.training.epochs = 1
    return train(manifest, config, tmp_path_factory.mktemp("run"), verbose=0).model


def test_saved_model_cli_lists_the_signature(trained, tmp_path):
    version_dir = export_saved_model(trained, tmp_path / "m")
    cli = shutil.which("saved_model_cli") or str(Path(sys.executable).parent / "saved_model_cli")
    out = subprocess.run(
        [cli, "show", "--dir", str(version_dir), "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    signature = out.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    for name in (
        "inputs['text']",
        "inputs['image']",
        "outputs['probabilities']",
        "outputs['label']",
    ):
        assert name in signature
    assert signature.count("dtype: DT_STRING") == 3  # text, image, label
    assert "shape: (-1)" in signature and "shape: (-1, 2)" in signature


def test_versions_increase_and_are_never_overwritten(trained, tmp_path):
    first = export_saved_model(trained, tmp_path / "m")
    second = export_saved_model(trained, tmp_path / "m")
    assert (first.name, second.name) == ("1", "2")
    assert export_saved_model(trained, tmp_path / "m", version=10).name == "10"
    assert export_saved_model(trained, tmp_path / "m").name == "11"
    with pytest.raises(DataError, match="already exists"):
        export_saved_model(trained, tmp_path / "m", version=2)
    leftovers = [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")]
    assert leftovers == []

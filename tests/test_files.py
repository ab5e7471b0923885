"""Files a user or a later step reads are written whole, with the umask's permissions."""

import os

import pytest

from multimodal_tf.config import RunConfig, load_config, save_config
from multimodal_tf.files import write_text_atomically


def test_an_atomic_write_gets_the_permissions_a_plain_write_gets(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "models.config", "model_config_list {}\n")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    mode = (tmp_path / "models.config").stat().st_mode & 0o777
    assert oct(mode) == oct((tmp_path / "plain.txt").stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.config", "plain.txt"]


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    save_config(RunConfig(), path)
    before = path.read_bytes()

    def killed(*args):
        raise KeyboardInterrupt  # as a kill before the rename

    monkeypatch.setattr(os, "replace", killed)
    config = RunConfig()
    config.training.epochs = 3
    with pytest.raises(KeyboardInterrupt):
        save_config(config, path)
    assert path.read_bytes() == before and load_config(path).training.epochs != 3
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temporary left

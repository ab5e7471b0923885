"""ImageNet weights of the `keras.applications` backbones: the Keras cache, and offline.

`image_weights: imagenet` means what `weights="imagenet"` means in Keras: the
file `keras.applications` itself loads, under the same name, in the Keras cache
(`$KERAS_HOME/models/`, by default `~/.keras/models/`), downloaded once from the
same URL where the network allows. A machine without network gets the file with
`install_weights` (`multimodal-tf weights install FILE`), which checks that it
fits the architecture and writes it under Keras' name, converting a Keras 3
`.weights.h5` file into the layout Keras' own download has. With no usable file
and no network, `resolve_backbone_weights` raises a `ConfigError` that names the
file, the folder, the URL and the ways out; nothing falls back to random weights.
"""

import contextlib
import dataclasses
import os
import shutil
import socket
from pathlib import Path

import h5py
import numpy as np

from multimodal_tf.errors import ConfigError
from multimodal_tf.files import current_umask, temporary_path_next_to
from multimodal_tf.models.weights_layout import (
    bare_backbone,
    check_weights_fit,
    is_keras3_layout,
    load_quietly,
    write_legacy_h5,
)

#: How long a download may wait for the server before it counts as no network.
DOWNLOAD_TIMEOUT_SECONDS = 20

# The alphas Keras publishes ImageNet files for.
_MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
_MOBILENET_V3_ALPHAS = (0.75, 1.0)


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """The ImageNet no-top file `keras.applications` loads for one backbone.

    Attributes:
        architecture: str. A `BackboneImageEncoder` architecture.
        alpha: float. The MobileNets' width multiplier (1.0 for the others).
        file_name: str. Keras' cache name for it.
        url: str. Where Keras downloads it from.
        file_hash: str or None. The MD5 Keras checks a download against, if any.
    """

    architecture: str
    alpha: float
    file_name: str
    url: str
    file_hash: str | None = None

    @property
    def path(self):
        """Where the file is (or would be) in the Keras cache."""
        return keras_cache_dir() / self.file_name

    def describe(self):
        alpha = f" alpha {self.alpha:g}" if "mobilenet" in self.architecture else ""
        return f"{self.architecture}{alpha}"

    def install_command(self):
        """The `multimodal-tf weights install` command that puts a copy of this file in place."""
        alpha = f" --alpha {self.alpha:g}" if "mobilenet" in self.architecture else ""
        return f"multimodal-tf weights install FILE --backbone {self.architecture}{alpha}"


def keras_cache_dir():
    """The Keras cache of downloaded models: `$KERAS_HOME/models`, or `~/.keras/models`.

    Read when called, as Keras reads `KERAS_HOME` when it is imported; like
    Keras, falls back to `/tmp/.keras` where the home folder is not writable.

    Example:
    >>> os.environ["KERAS_HOME"] = "/data/keras"  # doctest: +SKIP
    >>> keras_cache_dir()  # doctest: +SKIP
    PosixPath('/data/keras/models')
    """
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        if not os.access(base, os.W_OK):
            base = "/tmp"
        home = os.path.join(base, ".keras")
    return Path(home).expanduser() / "models"


def imagenet_weights_file(architecture, alpha=1.0):
    """The `WeightsFile` Keras uses for `architecture(include_top=False, weights="imagenet")`.

    The backbone encoder builds its model for any input size
    (`input_shape=(None, None, 3)`), for which Keras picks MobileNetV2's
    224-pixel checkpoint.

    Args:
        architecture: str. A `BackboneImageEncoder` architecture.
        alpha: float. Width multiplier of the MobileNets.

    Raises:
        ConfigError: Keras publishes no ImageNet file for this architecture and alpha.

    Example:
    >>> imagenet_weights_file("mobilenet_v2", 0.35).file_name
    'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5'
    """
    from keras.src.applications import efficientnet, mobilenet_v2, mobilenet_v3, resnet

    alpha = float(alpha)
    if architecture == "mobilenet_v2":
        _check_alpha(architecture, alpha, _MOBILENET_V2_ALPHAS)
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5"
        return WeightsFile(architecture, alpha, name, mobilenet_v2.BASE_WEIGHT_PATH + name)
    if architecture in ("mobilenet_v3_small", "mobilenet_v3_large"):
        _check_alpha(architecture, alpha, _MOBILENET_V3_ALPHAS)
        model_name = f"{architecture.removeprefix('mobilenet_v3_')}_224_{alpha}_float"
        name = f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"
        url = mobilenet_v3.BASE_WEIGHT_PATH + name
        return WeightsFile(
            architecture, alpha, name, url, mobilenet_v3.WEIGHTS_HASHES[model_name][1]
        )
    if architecture == "efficientnet_b0":
        name = "efficientnetb0_notop.h5"
        url = efficientnet.BASE_WEIGHTS_PATH + name
        return WeightsFile(architecture, 1.0, name, url, efficientnet.WEIGHTS_HASHES["b0"][1])
    if architecture == "resnet50":
        name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        url = resnet.BASE_WEIGHTS_PATH + name
        return WeightsFile(architecture, 1.0, name, url, resnet.WEIGHTS_HASHES["resnet50"][1])
    raise ConfigError(f"No ImageNet weights are known for image encoder {architecture!r}.")


def known_weights_files():
    """Every `WeightsFile` `imagenet_weights_file` knows, MobileNetV2 first."""
    files = [imagenet_weights_file("mobilenet_v2", alpha) for alpha in _MOBILENET_V2_ALPHAS]
    for kind in ("mobilenet_v3_small", "mobilenet_v3_large"):
        files += [imagenet_weights_file(kind, alpha) for alpha in _MOBILENET_V3_ALPHAS]
    return files + [imagenet_weights_file(name) for name in ("efficientnet_b0", "resnet50")]


def resolve_backbone_weights(weights, architecture, alpha=1.0, download=True):
    """The local file a backbone loads for `weights`, downloading Keras' file once if needed.

    Args:
        weights: str, Path or None. `None` or `""` (random initialization),
            `"imagenet"` (Keras' file, from the Keras cache or downloaded into
            it), or the path of a local `.h5` / `.weights.h5` file.
        architecture: str. A `BackboneImageEncoder` architecture.
        alpha: float. Width multiplier of the MobileNets.
        download: bool. `False` only looks in the cache.

    Returns:
        str or None: the path to load, or None for random weights.

    Raises:
        ConfigError: the file does not exist, is not an HDF5 file, or
            `"imagenet"` is neither cached nor downloadable; the message
            names the file, the folder, the URL tried and the ways out.

    Example:
    >>> resolve_backbone_weights("imagenet", "mobilenet_v2", 0.35)  # doctest: +SKIP
    '/home/me/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5'
    """
    if not weights:
        return None
    if str(weights) != "imagenet":
        check_weights_file(weights)
        return str(weights)
    spec = imagenet_weights_file(architecture, alpha)
    if spec.path.is_file():
        _check_readable(spec.path, spec)
        return str(spec.path)
    failure = _download(spec) if download else "downloads were turned off"
    if failure is None:
        return str(spec.path)
    raise ConfigError(
        f"image_weights: imagenet needs Keras' ImageNet file for {spec.describe()}, "
        f"{spec.file_name}, in the Keras cache {spec.path.parent}, and it is not there "
        f"(KERAS_HOME sets the cache's folder). Downloading it from {spec.url} failed: "
        f"{failure}. Ways out: "
        f"(1) on a machine with network, fetch that URL (or run once with network) and "
        f"install the file here with `{spec.install_command()}`; (2) set "
        "model.image_weights to the path of a local weights file for this backbone; (3) set "
        "model.image_encoder: conv, the encoder trained from scratch, "
        "which needs no weights."
    )


def check_weights_file(path):
    """Raises `ConfigError` unless `path` is an existing `.h5` or `.weights.h5` file."""
    if not Path(path).is_file():
        raise ConfigError(
            f"Backbone weights file {path} does not exist; pass None, 'imagenet' or the "
            "path of a .weights.h5 or .h5 file."
        )
    if not str(path).endswith(".h5"):
        raise ConfigError(
            f"Backbone weights file {path} is not a .weights.h5 or .h5 file, the formats "
            "keras.applications loads."
        )


def install_weights(source, architecture="mobilenet_v2", alpha=1.0, overwrite=False):
    """Puts a weights file where `image_weights: imagenet` finds it, after checking it fits.

    The file must hold `architecture` (with `alpha`) without its
    classification top: every layer's weights must have the shapes the
    architecture has, or a `ConfigError` names the first layer that differs
    and both shapes. A file in Keras' own layout (`.h5`, as Keras downloads
    it) is copied as it is; a Keras 3 `.weights.h5` file is loaded and written
    in that layout. The write goes to a temporary name in the cache and is
    renamed, so a kill leaves the old file or the new one, never half of one.

    Args:
        source: str or Path. The weights file.
        architecture: str. A `BackboneImageEncoder` architecture.
        alpha: float. Width multiplier of the MobileNets.
        overwrite: bool. Replace an installed file with different weights.

    Returns:
        `(path, status)`: the installed file and one of `"installed"`,
        `"replaced"` or `"already installed"`.

    Example:
    >>> install_weights("mobilenet_v2_0.35.weights.h5", "mobilenet_v2", 0.35)  # doctest: +SKIP
    (PosixPath('/home/me/.keras/models/mobilenet_v2_..._0.35_224_no_top.h5'), 'installed')
    """
    spec = imagenet_weights_file(architecture, alpha)
    check_weights_file(source)
    model = bare_backbone(architecture, spec.alpha)
    check_weights_fit(source, model, spec.describe())
    load_quietly(model, source)
    target = spec.path
    status = "installed"
    if target.is_file():
        installed = bare_backbone(architecture, spec.alpha)
        try:
            check_weights_fit(target, installed, spec.describe())
            load_quietly(installed, target)
            same = all(
                np.array_equal(a, b)
                for a, b in zip(model.get_weights(), installed.get_weights(), strict=True)
            )
        except (ConfigError, OSError, ValueError):
            same = False
        if same:
            return target, "already installed"
        if not overwrite:
            raise ConfigError(
                f"{target} already holds other {spec.describe()} weights; pass --overwrite "
                "(overwrite=True) to replace them."
            )
        status = "replaced"
    target.parent.mkdir(parents=True, exist_ok=True)
    with temporary_path_next_to(target) as partial:
        if is_keras3_layout(source):
            write_legacy_h5(model, partial)
        else:
            shutil.copyfile(source, partial)
        os.chmod(partial, 0o666 & ~current_umask())  # mkstemp's 0600 would hide it from other users
        os.replace(partial, target)
    return target, status


def installed_weights():
    """`(WeightsFile, installed: bool)` for every file Keras could use, in the Keras cache."""
    return [(spec, spec.path.is_file()) for spec in known_weights_files()]


def _check_alpha(architecture, alpha, published):
    if alpha not in published:
        raise ConfigError(
            f"Keras publishes ImageNet weights for {architecture} with alpha in "
            f"{', '.join(f'{value:g}' for value in published)}; got model.backbone_alpha "
            f"{alpha:g}. Pick one of those, or set model.image_weights to your own file."
        )


def _check_readable(path, spec):
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as error:
        raise ConfigError(
            f"The cached ImageNet file {path} for {spec.describe()} cannot be read ({error}); "
            f"delete it to download it again from {spec.url}, or replace it with "
            f"`multimodal-tf weights install FILE --overwrite`."
        ) from None


def _download(spec):
    """Downloads `spec` into the cache with `keras.utils.get_file`; None, or why it failed."""
    import keras

    folder = spec.path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot create {folder}: {error}"
    partial = f".{spec.file_name}.{os.getpid()}.part"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        got = keras.utils.get_file(
            partial,
            spec.url,
            cache_subdir=folder.name,
            cache_dir=str(folder.parent),
            file_hash=spec.file_hash,
        )
        check_weights_fit(got, bare_backbone(spec.architecture, spec.alpha), spec.describe())
        os.replace(got, spec.path)
    except Exception as error:  # noqa: BLE001 - any failure means "not downloaded"; say why
        with contextlib.suppress(OSError):
            (folder / partial).unlink()
        # Keras says "URL fetch failure on <url>: <errno> -- <reason>"; the message names the URL.
        said = str(error).replace(f"URL fetch failure on {spec.url}: ", "")
        return said.removeprefix("None -- ") or type(error).__name__
    finally:
        socket.setdefaulttimeout(previous)
    return None

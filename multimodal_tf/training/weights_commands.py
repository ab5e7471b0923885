"""`multimodal-tf weights install` and `weights list`: backbone weights for offline runs."""

from pathlib import Path


def weights_install_command(args):
    """`multimodal-tf weights install FILE`: check the file and put it in the Keras cache."""
    from multimodal_tf.models.backbone_weights import install_weights

    path, status = install_weights(args.file, args.backbone, args.alpha, args.overwrite)
    print(f"{status}: {path}")
    print("A run with image_weights: imagenet and this backbone now loads it, with no download.")
    return 0


def weights_list_command(args):
    """`multimodal-tf weights list`: the installed ImageNet files and what a config needs."""
    from multimodal_tf.config import load_config
    from multimodal_tf.models.backbone_weights import (
        imagenet_weights_file,
        installed_weights,
        keras_cache_dir,
    )
    from multimodal_tf.training.run_model import image_weights_for

    print(f"Keras cache: {keras_cache_dir()}")
    installed = [spec for spec, present in installed_weights() if present]
    for spec in installed:
        size = spec.path.stat().st_size / 2**20
        print(f"  {spec.describe():28s} {spec.file_name} ({size:.1f} MB)")
    if not installed:
        print("  (no ImageNet backbone files)")
    model = load_config(args.config).model
    which = f"the config {args.config}" if args.config else "the default config"
    weights = image_weights_for(model)
    if weights is None:
        print(f"{which} needs no backbone weights.")
    elif weights != "imagenet":
        state = "present" if Path(weights).is_file() else "MISSING"
        print(f"{which} loads its own file: {weights} ({state})")
    else:
        spec = imagenet_weights_file(model.image_encoder, model.backbone_alpha)
        state = "installed" if spec.path.is_file() else "not installed"
        print(f"{which} needs {spec.describe()}: {spec.path} ({state})")
        if not spec.path.is_file():
            print(
                f"  A run downloads it from {spec.url}; without network, install a copy with "
                f"`{spec.install_command()}`."
            )
    return 0

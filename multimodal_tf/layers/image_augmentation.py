"""Training-only image augmentation, built from Keras' random image layers."""

import keras


def image_augmenter(name="image_augmentation"):
    """Random flips, shifts, zooms and contrast; identity at inference and in exports.

    Keras' random preprocessing layers only transform when `training=True`, so a
    model that contains this block serves exactly as one that does not. Colour
    hue is left alone: in posts it carries meaning (dark, bright, warm).

    Args:
        name: str. Name of the returned `keras.Sequential`.

    Example:
    >>> augment = image_augmenter()
    >>> images = np.ones((2, 16, 16, 3), "float32")
    >>> bool(np.all(augment(images, training=False) == images))
    True
    """
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect"),
            keras.layers.RandomZoom((-0.1, 0.1), fill_mode="reflect"),
            keras.layers.RandomContrast(0.1),
        ],
        name=name,
    )

"""In-graph image decoding shared by `tf.data` and the serving graph."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="multimodal_tf")
class ImageDecoder(keras.layers.Layer):
    """Decodes encoded image bytes (JPEG, PNG, GIF, BMP) to a fixed-size RGB tensor.

    Grayscale, palette and alpha images become 3-channel RGB; an animated GIF
    keeps its first frame; 16-bit PNGs are scaled to 8 bits. Large JPEGs are
    decoded at 1/2, 1/4 or 1/8 scale when that still covers `image_size`. The
    image is then area-resized (squashed, antialiased) to `image_size` and
    returned as float32 in [0, 255]. Empty bytes (a sample without an image)
    give an all-zero image; the preprocessor flags them as absent. Works on a
    scalar string (inside `tf.data`) or a batch
    of strings (inside a serving signature), with core TensorFlow ops only.

    Args:
        image_size: tuple of two ints. Output (height, width).

    Example:
    >>> png = tf.io.encode_png(tf.zeros([10, 20, 3], tf.uint8))
    >>> ImageDecoder(image_size=(8, 8))(tf.stack([png])).shape
    TensorShape([1, 8, 8, 3])
    """

    def __init__(self, image_size=(64, 64), **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.image_size = tuple(int(size) for size in image_size)

    def decode_one(self, image_bytes):
        return tf.cond(
            tf.strings.length(image_bytes) > 0,
            lambda: self._decode_resize(image_bytes),
            lambda: tf.zeros((*self.image_size, 3), tf.float32),
        )

    def _decode_resize(self, image_bytes):
        image = tf.cond(
            tf.io.is_jpeg(image_bytes),
            lambda: self._decode_jpeg_scaled(image_bytes),
            lambda: tf.io.decode_image(
                image_bytes, channels=3, dtype=tf.uint8, expand_animations=False
            ),
        )
        image.set_shape([None, None, 3])
        # Area resizing averages over boxes: it antialiases when shrinking, like
        # bilinear with antialias=True, at a fraction of the cost (which was as
        # large as the JPEG decode itself; benchmarks/input_pipeline.py).
        image = tf.image.resize(image, self.image_size, method="area")
        return tf.clip_by_value(image, 0.0, 255.0)

    def _decode_jpeg_scaled(self, image_bytes):
        # libjpeg can decode at 1/2, 1/4 or 1/8 scale in the DCT domain, skipping
        # most of the work for large photos and small targets. Take the smallest
        # scale that is still at least the target size.
        height, width = tf.unstack(tf.io.extract_jpeg_shape(image_bytes)[:2])
        target_height, target_width = self.image_size
        fits = [
            tf.logical_and(height // ratio >= target_height, width // ratio >= target_width)
            for ratio in (2, 4, 8)
        ]
        branches = [
            lambda ratio=ratio: tf.io.decode_jpeg(image_bytes, channels=3, ratio=ratio)
            for ratio in (1, 2, 4, 8)
        ]
        return tf.switch_case(tf.reduce_sum(tf.cast(fits, tf.int32)), branches)

    def call(self, inputs):
        inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
        if inputs.shape.rank == 0:
            return self.decode_one(inputs)
        return tf.map_fn(
            self.decode_one,
            inputs,
            fn_output_signature=tf.TensorSpec((*self.image_size, 3), tf.float32),
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape, *self.image_size, 3)

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size})
        return config

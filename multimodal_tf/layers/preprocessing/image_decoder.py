"""In-graph image decoding shared by `tf.data` and the serving graph."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="multimodal_tf")
class ImageDecoder(keras.layers.Layer):
    """Decodes encoded image bytes (JPEG, PNG, GIF, BMP) to a fixed-size RGB tensor.

    Grayscale, palette and alpha images become 3-channel RGB; an animated GIF
    keeps its first frame; 16-bit PNGs are scaled to 8 bits. The image is
    resized (squashed, with antialiasing) to `image_size` and returned as
    float32 in [0, 255]. Works on a scalar string (inside `tf.data`) or a batch
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
        image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, 3])
        image = tf.image.resize(image, self.image_size, method="bilinear", antialias=True)
        return tf.clip_by_value(image, 0.0, 255.0)

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

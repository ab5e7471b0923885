"""Raw text + encoded image bytes -> model tensors, inside the TF graph."""

import collections

import keras
import tensorflow as tf

from multimodal_tf.layers.preprocessing.image_decoder import ImageDecoder
from multimodal_tf.layers.preprocessing.text_standardizer import TextStandardizer

PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"


@keras.saving.register_keras_serializable(package="multimodal_tf")
class MultimodalPreprocessor(keras.layers.Layer):
    """Turns `{"text": str, "image": encoded bytes}` into `{"token_ids", "image", "image_present"}`.

    The one decode/standardize path of the package: `tf.data` pipelines map it
    over raw samples at training time and the exported SavedModel runs the same
    layer on raw request tensors. Only core TensorFlow ops run inside it; the
    vocabulary is built beforehand by `adapt()` and stored in the config.

    Args:
        vocabulary: list of str or None. Tokens in index order, without the
            padding and out-of-vocabulary tokens (indices 0 and 1). `None`
            until `adapt()` is called.
        sequence_length: int. Token ids are padded or truncated to this length.
        image_size: tuple of two ints. Decoded images are resized to this.
        max_vocabulary_size: int. `adapt()` keeps at most this many tokens
            (padding and OOV included).
        min_frequency: int. `adapt()` drops tokens seen fewer times than this.

    Example:
    >>> preprocessor = MultimodalPreprocessor(sequence_length=4, image_size=(8, 8))
    >>> preprocessor.adapt(["a red circle", "a blue square"], min_frequency=1)
    >>> png = tf.io.encode_png(tf.zeros([10, 10, 3], tf.uint8))
    >>> out = preprocessor({"text": tf.constant(["A red square"]),
    ...                     "image": tf.stack([png])})
    >>> out["token_ids"].numpy().tolist()
    [[2, 5, 6, 0]]
    """

    def __init__(
        self,
        vocabulary=None,
        sequence_length=32,
        image_size=(64, 64),
        max_vocabulary_size=20000,
        min_frequency=2,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # === Layers ===
        self.text_standardizer = TextStandardizer(name="text_standardizer")
        self.text_vectorizer = keras.layers.TextVectorization(
            standardize=None,
            split="whitespace",
            output_mode="int",
            output_sequence_length=sequence_length,
            name="text_vectorizer",
        )
        self.image_decoder = ImageDecoder(image_size=image_size, name="image_decoder")
        # === Config ===
        self.vocabulary = None
        self.sequence_length = int(sequence_length)
        self.image_size = tuple(int(size) for size in image_size)
        self.max_vocabulary_size = int(max_vocabulary_size)
        self.min_frequency = int(min_frequency)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        # No weights: the only state is the vocabulary table.
        self.built = True

    @property
    def vocabulary_size(self):
        """Number of token ids the model's embedding must hold."""
        if self.vocabulary is None:
            raise ValueError("The vocabulary is not set: call `adapt()` first.")
        return len(self.vocabulary) + 2

    def set_vocabulary(self, vocabulary):
        vocabulary = [str(token) for token in vocabulary]
        if PAD_TOKEN in vocabulary or OOV_TOKEN in vocabulary:
            raise ValueError(
                f"`vocabulary` must not contain the padding token {PAD_TOKEN!r} "
                f"or the OOV token {OOV_TOKEN!r}; they are added at ids 0 and 1."
            )
        self.text_vectorizer.set_vocabulary(vocabulary)
        self.vocabulary = vocabulary

    def adapt(self, texts, min_frequency=None, batch_size=256):
        """Builds the vocabulary from training texts (never from val/test).

        Args:
            texts: iterable of str or a `tf.data.Dataset` of scalar strings.
            min_frequency: int or None. Overrides the constructor's value.
            batch_size: int. Texts standardized per step.
        """
        if min_frequency is not None:
            self.min_frequency = int(min_frequency)
        if not isinstance(texts, tf.data.Dataset):
            texts = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), dtype=tf.string))
        standardized = texts.batch(batch_size).map(
            self.text_standardizer, num_parallel_calls=tf.data.AUTOTUNE
        )
        counts = collections.Counter()
        for batch in standardized.as_numpy_iterator():
            for text in batch:
                counts.update(text.decode("utf-8").split())
        kept = [(token, count) for token, count in counts.items() if count >= self.min_frequency]
        # Most frequent first, ties broken alphabetically so that runs repeat.
        kept.sort(key=lambda item: (-item[1], item[0]))
        self.set_vocabulary([token for token, _ in kept[: self.max_vocabulary_size - 2]])

    def call(self, inputs):
        outputs = {}
        if "text" in inputs:
            text = self.text_standardizer(inputs["text"])
            # Vectorize as a batch even for one sample: on a scalar, text that
            # standardizes to nothing would give 0 ids instead of sequence_length.
            is_scalar = text.shape.rank == 0
            token_ids = self.text_vectorizer(text[None] if is_scalar else text)
            token_ids = tf.cast(token_ids[0] if is_scalar else token_ids, tf.int32)
            outputs["token_ids"] = tf.ensure_shape(
                token_ids, [self.sequence_length] if is_scalar else [None, self.sequence_length]
            )
        if "image" in inputs:
            image = tf.convert_to_tensor(inputs["image"], dtype=tf.string)
            outputs["image"] = self.image_decoder(image)
            outputs["image_present"] = tf.cast(tf.strings.length(image) > 0, tf.float32)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": self.vocabulary,
                "sequence_length": self.sequence_length,
                "image_size": self.image_size,
                "max_vocabulary_size": self.max_vocabulary_size,
                "min_frequency": self.min_frequency,
            }
        )
        return config

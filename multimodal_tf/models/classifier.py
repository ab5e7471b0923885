"""The image+text classification task: encoders, fusion and a softmax head."""

import keras

from multimodal_tf.layers.fusion.attention_fusion import AttentionFusion
from multimodal_tf.models.image_encoder import ImageEncoder
from multimodal_tf.models.text_encoder import TextEncoder

MODALITIES = ("text", "image")


@keras.saving.register_keras_serializable(package="multimodal_tf")
class MultimodalClassifier(keras.Model):
    """Single-label classifier over a text and an image (or just one of them).

    A functional `keras.Model` on preprocessed tensors
    (`{"token_ids": int32 [batch, sequence_length], "image": float32 [batch, height, width, 3]}`),
    so `fit`, `evaluate`, `predict`, callbacks and `.keras` saving work as in
    any Keras model. The `preprocessor` it carries turns raw text and encoded
    image bytes into those tensors; `make_dataset` maps it over a manifest and
    `export_saved_model` puts it in front of the model in the serving graph.

    Args:
        class_names: list of str. Label names in output order.
        preprocessor: `MultimodalPreprocessor`. An adapted preprocessor; it sets
            the vocabulary size, the sequence length and the image size.
        modalities: tuple of str. `("text", "image")`, `("text",)` or `("image",)`.
        embedding_dim: int. Token embedding width.
        lstm_units: int. LSTM state width.
        hidden_dim: int. Width shared by text and image tokens in the fusion.
        image_filters: tuple of int. Channels of the stride-2 convolutions.
        grid_size: int. Image tokens form a `grid_size` x `grid_size` grid.
        num_heads: int. Attention heads in the fusion layer.
        dropout_rate: float. Dropout in the encoders, the fusion and the head.

    Example:
    >>> preprocessor = MultimodalPreprocessor(sequence_length=8, image_size=(32, 32))
    >>> preprocessor.adapt(["a red circle", "a blue square"], min_frequency=1)
    >>> model = MultimodalClassifier(["match", "mismatch"], preprocessor, hidden_dim=8,
    ...                              num_heads=2, image_filters=(8, 8), grid_size=2)
    >>> model.compile()
    >>> model.predict(preprocessor({"text": ["a red circle"],
    ...     "image": [tf.io.encode_png(tf.zeros([5, 5, 3], tf.uint8))]})).shape
    (1, 2)
    """

    def __init__(
        self,
        class_names,
        preprocessor,
        modalities=MODALITIES,
        embedding_dim=64,
        lstm_units=64,
        hidden_dim=64,
        image_filters=(32, 64, 96),
        grid_size=4,
        num_heads=4,
        dropout_rate=0.1,
        **kwargs,
    ):
        if isinstance(preprocessor, dict):
            preprocessor = keras.layers.deserialize(preprocessor)
        modalities = tuple(modalities)
        unknown = [name for name in modalities if name not in MODALITIES]
        if not modalities or unknown or len(set(modalities)) != len(modalities):
            raise ValueError(
                f"`modalities` must be a non-empty subset of {MODALITIES}; received {modalities}."
            )
        class_names = [str(name) for name in class_names]
        if len(class_names) < 2:
            raise ValueError(f"Need at least two classes; received {class_names}.")

        # === Layers ===
        encoders = {}
        if "text" in modalities:
            encoders["text"] = TextEncoder(
                preprocessor.vocabulary_size,
                embedding_dim=embedding_dim,
                lstm_units=lstm_units,
                hidden_dim=hidden_dim,
                dropout_rate=dropout_rate,
                name="text_encoder",
            )
        if "image" in modalities:
            encoders["image"] = ImageEncoder(
                image_filters,
                hidden_dim=hidden_dim,
                grid_size=grid_size,
                dropout_rate=dropout_rate,
                name="image_encoder",
            )
        fusion = AttentionFusion(
            hidden_dim,
            num_heads=num_heads,
            num_modalities=len(modalities),
            dropout_rate=dropout_rate,
            name="fusion",
        )
        head_dropout = keras.layers.Dropout(dropout_rate, name="head_dropout")
        head = keras.layers.Dense(
            len(class_names), activation="softmax", dtype="float32", name="head"
        )

        # === Functional Model ===
        inputs = {}
        if "text" in modalities:
            inputs["token_ids"] = keras.Input(
                (preprocessor.sequence_length,), dtype="int32", name="token_ids"
            )
        if "image" in modalities:
            inputs["image"] = keras.Input(
                (*preprocessor.image_size, 3), dtype="float32", name="image"
            )
        sequences = []
        if "text" in modalities:
            sequences.append(encoders["text"](inputs["token_ids"]))
        if "image" in modalities:
            sequences.append(encoders["image"](inputs["image"]))
        outputs = head(head_dropout(fusion(sequences)))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.class_names = class_names
        self.preprocessor = preprocessor
        self.modalities = modalities
        self.embedding_dim = embedding_dim
        self.lstm_units = lstm_units
        self.hidden_dim = hidden_dim
        self.image_filters = tuple(image_filters)
        self.grid_size = grid_size
        self.num_heads = num_heads
        self.dropout_rate = dropout_rate

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        metrics="auto",
        learning_rate=1e-3,
        weight_decay=1e-4,
        **kwargs,
    ):
        """Compiles with defaults that suit this task; any argument overrides them.

        Labels are one-hot vectors (as `make_dataset` yields them); the default
        metrics are accuracy and macro-F1 (`val_macro_f1` is what model
        selection watches).

        Args:
            optimizer: "auto" (AdamW) or any Keras optimizer.
            loss: "auto" (categorical cross-entropy) or any Keras loss.
            metrics: "auto" (accuracy, macro-F1) or a list of Keras metrics.
            learning_rate: float. Used by the "auto" optimizer.
            weight_decay: float. Used by the "auto" optimizer.
            **kwargs: passed to `keras.Model.compile`.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        if loss == "auto":
            loss = keras.losses.CategoricalCrossentropy()
        if metrics == "auto":
            metrics = [
                keras.metrics.CategoricalAccuracy(name="accuracy"),
                keras.metrics.F1Score(average="macro", name="macro_f1"),
            ]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def call(self, inputs, training=None, mask=None):
        # A unimodal model accepts the full feature dict and ignores the rest,
        # so one dataset and one serving signature fit every model.
        if isinstance(inputs, dict):
            inputs = {name: inputs[name] for name in self.input_names_used}
            if isinstance(mask, dict):
                mask = {name: mask.get(name) for name in self.input_names_used}
        return super().call(inputs, training=training, mask=mask)

    @property
    def input_names_used(self):
        """Feature names the model reads: `token_ids` and/or `image`."""
        names = {"text": "token_ids", "image": "image"}
        return [names[modality] for modality in self.modalities]

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "class_names": self.class_names,
            "preprocessor": keras.layers.serialize(self.preprocessor),
            "modalities": self.modalities,
            "embedding_dim": self.embedding_dim,
            "lstm_units": self.lstm_units,
            "hidden_dim": self.hidden_dim,
            "image_filters": self.image_filters,
            "grid_size": self.grid_size,
            "num_heads": self.num_heads,
            "dropout_rate": self.dropout_rate,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

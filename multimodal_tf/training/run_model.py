"""From a run config to a model ready to `fit`: preprocessor, class weights, schedule, model.

What `train()` does for each run or ensemble member and `tune()` for each
trial, in one place, so the two train alike.
"""

import dataclasses

import tensorflow as tf

from multimodal_tf.data.balance import class_weights
from multimodal_tf.errors import ConfigError
from multimodal_tf.layers.preprocessing.lexicon import load_lexicon
from multimodal_tf.layers.preprocessing.spacy_tables import negation_words
from multimodal_tf.models.backbone_weights import resolve_backbone_weights
from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from multimodal_tf.models.text_encoder import text_features_for
from multimodal_tf.models.warmup_cosine_decay import WarmupCosineDecay
from multimodal_tf.models.wide_text_logits import wide_l2_for
from multimodal_tf.training.wide_first import train_wide_path


def image_weights_for(model_config):
    """`model.image_weights` as the image encoder takes it: None where it loads no weights.

    The scratch `conv` encoder ignores the default `imagenet`, so
    `image_encoder: conv` alone is the no-weights model; a file named for it
    is an error. A model without the image modality has no image encoder.

    Example:
    >>> from multimodal_tf.config import ModelConfig
    >>> image_weights_for(ModelConfig(image_encoder="conv")) is None
    True
    >>> image_weights_for(ModelConfig())
    'imagenet'
    """
    weights = model_config.image_weights or None
    if "image" not in model_config.modalities:
        return None
    if model_config.image_encoder == "conv":
        if weights not in (None, "imagenet"):
            raise ConfigError(
                f"model.image_weights is {weights!r}, but model.image_encoder: conv is trained "
                "from scratch and loads no weights; pick a backbone (e.g. image_encoder: "
                'mobilenet_v2) for that file, or set image_weights to "".'
            )
        return None
    return weights


def find_backbone_weights(model_config):
    """Finds (or downloads once) the backbone's weights before a run reads any data.

    A run without them stops here, with `resolve_backbone_weights`'s error
    (the file, the Keras cache, the URL tried, the ways out), instead of after
    reading and decoding the data. Prints where the weights come from.

    Args:
        model_config: `ModelConfig`.

    Returns:
        str or None: the local weights file, or None for a model without one.
    """
    if model_config.text_encoder == "hub" and "text" in model_config.modalities:
        # keras-hub, tensorflow-text and the preset, or one `error:` line saying how.
        from multimodal_tf.models.hub_text_encoder import resolve_preset

        if not model_config.text_preset:
            raise ConfigError(
                "model.text_encoder: hub needs model.text_preset: a KerasHub preset name "
                "(e.g. bert_tiny_en_uncased) or a folder written by save_to_preset."
            )
        preset = resolve_preset(model_config.text_preset)
        tuned = " (fine-tuned)" if model_config.fine_tune_text else " (frozen)"
        print(f"text: KerasHub preset {preset}{tuned}")
    weights = image_weights_for(model_config)
    path = resolve_backbone_weights(
        weights, model_config.image_encoder, model_config.backbone_alpha
    )
    if path is not None:
        alpha = model_config.backbone_alpha
        print(
            f"image: {model_config.image_encoder}"
            + (f" alpha {alpha:g}" if "mobilenet" in model_config.image_encoder else "")
            + (" (fine-tuned)" if model_config.trainable_backbone else " (frozen)")
            + (", ImageNet weights from " if weights == "imagenet" else ", weights from ")
            + path
        )
    return path


def adapted_preprocessor(config, train_texts):
    """The run config's `MultimodalPreprocessor`, adapted on the training texts only.

    Args:
        config: `RunConfig`. Its `data` section and `model.text_encoder` (which
            decides word or n-gram features; only n-grams take `data.lexicon`).
        train_texts: list of str.
    """
    data = config.data
    text_features = text_features_for(config.model.text_encoder)
    lexicon, negators = None, ()
    wants_lexicon = data.lexicon not in ("", "none")
    if wants_lexicon and text_features == "ngrams":
        lexicon, negators = load_lexicon(data.lexicon), negation_words()
    elif wants_lexicon and "text" in config.model.modalities:
        print(
            f"data.lexicon: {data.lexicon} adds valence tokens to the bag of n-grams; "
            f"model.text_encoder: {config.model.text_encoder} reads words in order, "
            "so the lexicon is not used."
        )
    hub = config.model.text_encoder == "hub" and "text" in config.model.modalities
    text_tokens = None
    if hub:  # its own tokenizer's length
        from multimodal_tf.models.hub_text_encoder import choose_sequence_length

        text_tokens = config.model.text_sequence_length or choose_sequence_length(
            config.model.text_preset, train_texts
        )
    preprocessor = MultimodalPreprocessor(
        sequence_length=data.sequence_length or None,
        image_size=data.image_size,
        max_vocabulary_size=data.max_vocabulary_size,
        min_frequency=data.min_frequency,
        text_features=text_features,
        lexicon=lexicon,
        lexicon_negators=negators,
        emoticons=data.emoticons,
        pass_text=hub,
        text_tokens=text_tokens,
    )
    preprocessor.adapt(train_texts, spacy_norms=data.spacy_norms)
    return preprocessor


def run_class_weights(config, train_labels, class_names):
    """Keras `class_weight` for `training.class_weight`, or None (none, oversample, multi-label).

    Args:
        config: `RunConfig`.
        train_labels: list of str. The training split's label cells.
        class_names: list of str.
    """
    training = config.training
    if training.class_weight == "none" or training.oversample:
        return None
    if config.data.multi_label:
        print(
            f"training.class_weight: {training.class_weight} does not apply with "
            "data.multi_label (Keras class_weight weights one class per row, not "
            "multi-hot targets); training without class weights."
        )
        return None
    power = 0.5 if training.class_weight == "sqrt" else 1.0
    return class_weights(train_labels, class_names, power=power)


def learning_rate(training, total_steps):
    """`training.learning_rate`, constant or as a cosine decay with a linear warm-up.

    The cosine schedule warms up linearly over the first 5% of `total_steps`
    (AdamW's first steps are noisy) and decays to 1% of the peak at the last
    planned step; early stopping may end training before that.
    """
    if training.lr_schedule == "constant":
        return training.learning_rate
    warmup = max(1, int(0.05 * total_steps))
    return WarmupCosineDecay(
        training.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(1, total_steps - warmup),
        alpha=0.01,
    )


def compiled_model(
    config,
    class_names,
    preprocessor,
    num_train,
    steps,
    class_weight,
    wide_batches,
    folder=None,
    resumed=False,
    verbose=0,
    wide_result=None,
    shared=None,
):
    """The run's model ready to `fit`: built, its wide path trained first, compiled.

    What `train()` does for each member and `tune()` for each trial, so the two
    train alike.

    Args:
        config: `RunConfig`.
        class_names: list of str.
        preprocessor: `MultimodalPreprocessor`. Adapted on the training texts.
        num_train: int. Training rows (`model.wide_c`).
        steps: int. Planned training steps (the learning-rate schedule).
        class_weight: dict or None. Keras `class_weight`.
        wide_batches: callable taking `text_only` and returning `(train,
            val)` batches for the wide path; called only when it trains.
        folder: Path or None. Run folder for `wide_history.csv`.
        resumed: bool. The run resumes from its backup.
        verbose: int.
        wide_result: dict or None. If given, filled with the first stage's
            best epoch and its validation logs (`fit_wide_first()`'s dict),
            if that stage trained.
        shared: dict or None. Gets the first stage's cached feature maps
            for `fit_second_stage`, when both stages can read them
            (`fit_wide_first`).
    """
    training = config.training
    model = build_model(
        config.model,
        class_names,
        preprocessor,
        multi_label=config.data.multi_label,
        num_train=num_train,
    )
    best = train_wide_path(
        model,
        training,
        wide_batches,
        class_weight,
        folder,
        resumed=resumed,
        verbose=verbose,
        batch_size=config.data.batch_size * tf.distribute.get_strategy().num_replicas_in_sync,
        cache_bytes=config.data.cache_decoded_images_mb * 2**20,
        shared=shared,
    )
    if wide_result is not None and best is not None:
        wide_result.update(best)
    model.compile(
        learning_rate=learning_rate(training, steps),
        weight_decay=training.weight_decay,
        label_smoothing=training.label_smoothing,
    )
    return model


def build_model(model_config, class_names, preprocessor, multi_label=False, num_train=None):
    """A `MultimodalClassifier` from the run config's `model` section.

    Args:
        model_config: `ModelConfig`. Its fields are the constructor's arguments
            (empty strings for "no file" become `None`), except `wide_c`: with
            `wide`, the wide path's L2 (the constructor's `wide_l2`) is
            `wide_l2_for(wide_c, num_train)`. A model without the text modality gets no wide path;
            `wide_image` applies only with `wide`, the image modality and
            pretrained backbone weights (`image_weights`);
            `image_augmentation: "auto"` becomes `image_augmentation_for()`'s
            choice.
        class_names: list of str. Label names in output order.
        preprocessor: `MultimodalPreprocessor`. Adapted on the training texts.
        multi_label: bool. A sigmoid head with per-class thresholds (`data.multi_label`).
        num_train: int or None. Training rows, for `wide_c`; `None`: no L2.
    """
    kwargs = dataclasses.asdict(model_config)
    kwargs["text_embeddings"] = kwargs["text_embeddings"] or None
    kwargs.pop("text_sequence_length")  # the preprocessor's `text_tokens` (adapted_preprocessor)
    kwargs["image_weights"] = image_weights_for(model_config)
    wide_c = kwargs.pop("wide_c")
    kwargs["wide"] = kwargs["wide"] and "text" in kwargs["modalities"]
    # A linear model over image features needs features worth reading before any
    # training: a pretrained backbone's, not a scratch encoder's random ones.
    kwargs["wide_image"] = bool(
        kwargs["wide_image"]
        and kwargs["wide"]
        and "image" in kwargs["modalities"]
        and kwargs["image_weights"]
    )
    kwargs["image_augmentation"] = image_augmentation_for(model_config)
    if kwargs["wide"] and wide_c and num_train:
        kwargs["wide_l2"] = wide_l2_for(wide_c, num_train)
    return MultimodalClassifier(class_names, preprocessor, multi_label=multi_label, **kwargs)


def image_augmentation_for(model_config):
    """`model.image_augmentation` as a bool: `"auto"` is off only for a frozen pretrained backbone.

    A frozen backbone (`image_weights` set, `trainable_backbone: false`)
    learns nothing from augmented images; only the layers after it see them
    as noise. On MVSA-Single, 3 seeds, val was the same without it (macro-F1
    0.611 vs 0.612) and the second stage's epochs took half the time
    (docs/defaults.md). An encoder that trains, the scratch
    `conv` or a fine-tuned backbone, keeps it.

    Args:
        model_config: `ModelConfig`.

    Example:
    >>> from multimodal_tf.config import ModelConfig
    >>> image_augmentation_for(ModelConfig())
    True
    >>> image_augmentation_for(ModelConfig(image_encoder="mobilenet_v2", image_weights="w.h5"))
    False
    """
    setting = model_config.image_augmentation
    if setting != "auto":
        return bool(setting)
    frozen_pretrained = (
        bool(image_weights_for(model_config)) and not model_config.trainable_backbone
    )
    return not frozen_pretrained

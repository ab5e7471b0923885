"""Attention maps: which words and image regions a prediction's fusion layer weighed."""

import html
import math

import keras
import numpy as np

from multimodal_tf.data.dataset import read_records
from multimodal_tf.layers.fusion import FUSIONS, Fusion

#: The layer whose outputs are the token sequences (and masks) the fusion reads.
TOKENS_LAYER = "modality_dropout"


def attention_unavailable(model):
    """Why the attention of `model` cannot be shown, or `None` when it can.

    Args:
        model: `MultimodalClassifier`.

    Example:
    >>> attention_unavailable(model)  # doctest: +SKIP
    "The 'concat' fusion (ConcatFusion) has no attention layer: ..."
    """
    fusion = model.fusion
    if type(fusion).attention_scores is Fusion.attention_scores:
        names = [name for name, cls in FUSIONS.items() if cls is type(fusion)]
        name = f"'{names[0]}' fusion" if names else "fusion"
        return (
            f"The {name} ({type(fusion).__name__}) has no attention layer: it pools each "
            "modality's tokens and combines the pooled vectors, so no weight says which "
            "word or image region a prediction relied on. Attention maps exist for the "
            "'attention' (default) and 'cross_attention' fusions."
        )
    if TOKENS_LAYER not in [layer.name for layer in model.layers]:
        return (
            f"The model has no '{TOKENS_LAYER}' layer, so the token sequences its "
            "fusion reads cannot be recovered."
        )
    return None


def sample_attention(model, features):
    """Per sample of a preprocessed batch: attention on its words and image regions.

    Weights come from `Fusion.token_attention` (mean over heads, queries and
    blocks) and sum to 1 over all of a sample's tokens, so `text_share` and
    `image_share` say how the attention split between the modalities.

    Args:
        model: `MultimodalClassifier` whose fusion has attention (see
            `attention_unavailable`).
        features: dict. One batch of preprocessed features, as `make_dataset`
            yields them without labels.

    Returns:
        A list of dicts, one per sample: `words` (list of `(word, weight)` or
        `None`), `grid` (`[grid, grid]` weights of the image tokens or `None`),
        `image` (uint8 `[height, width, 3]` as the model saw it, or `None`),
        `text_share`, `image_share` (floats or `None`) and `notes` (list of
        str: what is not shown, and why).

    Example:
    >>> features = next(iter(make_dataset(records[:2], model.preprocessor)))  # doctest: +SKIP
    >>> sample_attention(model, features)[0]["image_share"]  # doctest: +SKIP
    0.41
    """
    tokens_model = keras.Model(model.input, model.get_layer(TOKENS_LAYER).output)
    inputs = {name: features[name] for name in model.input_names_used}
    outputs = keras.tree.flatten(tokens_model(inputs, training=False))
    count = len(model.modalities)
    sequences = outputs[:count]
    masks = [np.asarray(mask).astype(bool) for mask in outputs[count:]]
    weights = np.asarray(model.fusion.token_attention(sequences, mask=masks))
    offsets = np.cumsum([0] + [int(sequence.shape[1]) for sequence in sequences])
    spans = {
        name: weights[:, offsets[index] : offsets[index + 1]]
        for index, name in enumerate(model.modalities)
    }
    samples = []
    for row in range(weights.shape[0]):
        sample = {"words": None, "grid": None, "image": None, "notes": []}
        sample["text_share"] = sample["image_share"] = None
        for modality in ("text", "image"):
            if modality not in spans:
                sample["notes"].append(f"The model reads no {modality}.")
        if "text" in spans:
            _text_attention(sample, spans["text"][row], features, row, model.preprocessor)
        if "image" in spans:
            _image_attention(sample, spans["image"][row], features, row)
        samples.append(sample)
    return samples


def _text_attention(sample, weights, features, row, preprocessor):
    sample["text_share"] = float(weights.sum())
    token_ids = np.asarray(features["token_ids"][row])
    if not (token_ids != 0).any():
        sample["notes"].append("No text: the fusion saw the learned 'no text' placeholder.")
    elif len(weights) != len(token_ids):
        sample["notes"].append(
            f"Words are not shown: the text encoder turns the whole text into "
            f"{len(weights)} token(s) (the 'bag' encoder sums all n-grams into one), "
            "so attention falls on the text as a whole, not on single words."
        )
    else:
        vocabulary = ["", "[UNK]", *(preprocessor.vocabulary or [])]
        sample["words"] = [
            (vocabulary[token], float(weight))
            for token, weight in zip(token_ids, weights, strict=True)
            if token != 0
        ]


def _image_attention(sample, weights, features, row):
    sample["image_share"] = float(weights.sum())
    if float(np.asarray(features["image_present"][row])) < 0.5:
        sample["notes"].append("No image: the fusion saw the learned 'no image' placeholder.")
        return
    sample["image"] = np.clip(np.asarray(features["image"][row]), 0, 255).astype("uint8")
    side = math.isqrt(len(weights))
    if side * side != len(weights):
        sample["notes"].append(
            f"The image map is not shown: {len(weights)} image tokens do not form a square grid."
        )
        return
    sample["grid"] = weights.reshape(side, side)


def plot_attention(sample, path, title=""):
    """Saves one sample's attention as a PNG: image heatmap beside word weights.

    Args:
        sample: dict. One item of `sample_attention`.
        path: str or Path. Where to write the PNG.
        title: str. Figure title (e.g. the true and predicted labels).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.4, 3.2))
    image_axes, words_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    if sample["image"] is not None:
        height, width = sample["image"].shape[:2]
        image_axes.imshow(sample["image"], interpolation="nearest")
        if sample["grid"] is not None:
            heat = image_axes.imshow(
                sample["grid"],
                cmap="inferno",
                alpha=0.55,
                vmin=0.0,
                extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                interpolation="bilinear",
            )
            figure.colorbar(heat, ax=image_axes, fraction=0.046, pad=0.04)
    missing = "the model reads no image" if sample["image_share"] is None else "no image"
    _blank(image_axes, missing if sample["image"] is None else "")
    share = sample["image_share"]
    image_axes.set_title("image" + ("" if share is None else f": {share:.0%} of attention"))
    words = sample["words"]
    if words:
        shown = words[:20]
        positions = np.arange(len(shown))
        words_axes.barh(positions, [weight for _, weight in shown], color="tab:orange")
        words_axes.set_yticks(positions, [word for word, _ in shown])
        words_axes.invert_yaxis()
        words_axes.set_xlabel("attention weight")
    else:
        missing = "the model reads no text" if sample["text_share"] is None else "words not shown"
        _blank(words_axes, f"{missing}\n(see the note below)")
    share = sample["text_share"]
    words_axes.set_title("words" + ("" if share is None else f": {share:.0%} of attention"))
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def _blank(axes, message):
    axes.set_xticks([])
    axes.set_yticks([])
    if message:
        axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)


def words_html(words):
    """Words as HTML spans shaded by attention weight (darkest: the most attended word).

    Args:
        words: list of `(word, weight)`, as `sample_attention` returns them.

    Example:
    >>> words_html([("red", 0.3), ("circle", 0.1)])[:30]
    '<span class="word" style="backg'
    """
    top = max((weight for _, weight in words), default=0.0) or 1.0
    return " ".join(
        f'<span class="word" style="background: rgba(255, 140, 0, {weight / top:.2f})" '
        f'title="{weight:.3f}">{html.escape(word)}</span>'
        for word, weight in words
    )


def choose_samples(wrong, confidence, classes, count):
    """Indices to map: the surest right prediction of each class in turn, the surest mistake last.

    Args:
        wrong: array of bool. Whether each prediction is wrong.
        confidence: array of float. How sure each prediction is.
        classes: array of int. Each sample's (first) true class.
        count: int. How many indices to return (fewer if there are fewer samples).

    Example:
    >>> choose_samples(np.array([0, 0, 1]), np.array([.9, .8, .7]), np.array([0, 1, 0]), 3)
    [0, 1, 2]
    """
    order = [int(index) for index in np.argsort(-np.asarray(confidence), kind="stable")]
    reserve = [index for index in order if wrong[index]][:1] if count > 1 else []
    queues = {}
    for index in order:
        if not wrong[index]:
            queues.setdefault(int(classes[index]), []).append(index)
    chosen = []
    while len(chosen) < count - len(reserve) and any(queues.values()):
        for queue in queues.values():
            if queue and len(chosen) < count - len(reserve):
                chosen.append(queue.pop(0))
    chosen += reserve
    return chosen + [index for index in order if index not in chosen][: count - len(chosen)]


def attention_figures(model, records, titles, figures_dir):
    """Maps the attention of `model` on `records` into `attention_<n>.png` files.

    Args:
        model: `MultimodalClassifier` with an attention fusion.
        records: list of `Record`. The few samples to map (read into one batch).
        titles: list of str. One title per record (labels, confidence).
        figures_dir: Path. Where the PNGs go.

    Returns:
        A list of `(file name, caption HTML)`, one per record; the caption
        holds the title, the words shaded by weight and any notes.
    """
    # The rows are read as every dataset reads them, then preprocessed eagerly: a
    # dataset would trace the preprocessor first, which took longer than the whole
    # batch (0.2-0.4 s against 0.02 s).
    features = model.preprocessor(next(iter(read_records(records).batch(len(records)))))
    figures = []
    samples = sample_attention(model, features)
    for number, (record, title, sample) in enumerate(zip(records, titles, samples, strict=True)):
        name = f"attention_{number + 1}.png"
        plot_attention(sample, figures_dir / name, title=title)
        caption = html.escape(f"id {record.id}: {title}")
        if sample["words"]:
            caption += f'<br><span class="words">{words_html(sample["words"])}</span>'
        caption += "".join(f"<br><i>{html.escape(note)}</i>" for note in sample["notes"])
        figures.append((name, caption))
    return figures

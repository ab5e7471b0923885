"""Training and serving cost per sample of KerasHub transformer text encoders, against the bag.

Measured side by side in one process, on raw text in (tokenization and n-gram extraction
inside each step, as the exported graph runs them), two-class heads:

  bag                 the default text path: the default config's preprocessor (text
                      standardizer, spaCy norms, VADER valence tokens, word + bigram +
                      character 2-5-gram lookup, adapted on the texts) -> BagOfNgramsEncoder
                      (64 dims, token dropout 0.3) -> softmax; the wide path and the
                      image side are left out
  bert_tiny           HubTextEncoder on a preset shaped like `bert_tiny_en_uncased`:
                      2 layers, hidden 128, 2 heads, intermediate 512, vocabulary 30522
  all_minilm_l6       shaped like `all_minilm_l6_v2_en`: 6 layers, hidden 384, 12 heads,
                      intermediate 1536, vocabulary 30522

each KerasHub shape frozen (the default: only the head trains) and fine-tuned, with mean
pooling and `--sequence-length` tokens. The presets are written here with
`save_to_preset` and random weights (no network: the cost does not depend on the weights);
their WordPiece vocabulary holds the texts' words, single letters and filler tokens up to
30522. The texts are synthetic posts: 5 to 30 Zipf-distributed pseudo-words, some
punctuation, @mentions, hashtags and URLs.

Training: samples/s of `train_on_batch` (LazyAdamW, what `compile()` picks) on batches of
`--batch-size` raw texts, after warm-up. Serving: each model is exported as a SavedModel
(`serving_default(text: tf.string [batch])`), loaded with `tf.saved_model.load` as TF Serving
loads it; batch-1 p50 latency over `--calls` calls and batch-64 samples/s. A frozen and a
fine-tuned encoder serve the same graph, so serving is measured once per shape. The
measurements go round by round (`--rounds`), every model in each round, and the median
round is kept: on a shared machine the speed drifts from minute to minute, and ratios are
taken between figures of the same rounds. Usage (needs the [hub] extra):

    python benchmarks/hub_text.py [--rounds 3] [--steps 6] [--sequence-length 64]
        [--output benchmarks/results/hub_text.md]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

SHAPES = {
    "bert_tiny": {"num_layers": 2, "hidden_dim": 128, "num_heads": 2, "intermediate_dim": 512},
    "all_minilm_l6": {
        "num_layers": 6,
        "hidden_dim": 384,
        "num_heads": 12,
        "intermediate_dim": 1536,
    },
}
VOCABULARY_SIZE = 30522
SERVE_BATCH = 64


def synthetic_posts(count, seed=0):
    """`count` post-like texts and the words they use."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = sorted({"".join(rng.choice(letters, rng.integers(2, 10))) for _ in range(6000)})
    ranks = np.arange(1, len(words) + 1)
    weights = 1.0 / ranks**1.1
    weights /= weights.sum()
    texts = []
    for _ in range(count):
        post = list(rng.choice(words, rng.integers(5, 31), p=weights))
        for _ in range(rng.integers(0, 4)):
            extra = rng.choice(["!", "?", ",", ".", "@user", "#topic", "http://t.co/x1y2z3"])
            post.insert(int(rng.integers(0, len(post) + 1)), str(extra))
        texts.append(" ".join(post))
    return texts, words


def wordpiece_vocabulary(words):
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    tokens += list(letters) + [f"##{c}" for c in letters] + list("!?,.@#:/'\"-_()&")
    tokens = list(dict.fromkeys(tokens))
    tokens += [f"[unused{i}]" for i in range(VOCABULARY_SIZE - len(tokens))]
    return tokens


def write_preset(folder, shape, vocabulary):
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), max_sequence_length=512, **SHAPES[shape]
    )
    backbone.save_to_preset(str(folder))
    tokenizer.save_to_preset(str(folder))
    return folder


def build_models(args, texts, words, folder):
    """`{name: (keras model, serving group)}`; rows with one serving group share a graph."""
    import keras

    from multimodal_tf.config import load_config
    from multimodal_tf.models.bag_text_encoder import BagOfNgramsEncoder
    from multimodal_tf.models.hub_text_encoder import HubTextEncoder
    from multimodal_tf.training.run_model import adapted_preprocessor

    def text_model(encoder, preprocessor=None):
        """Raw text -> (preprocessor ->) encoder -> softmax, a functional model."""
        text = keras.Input(shape=(), dtype="string", name="text")
        inputs = text if preprocessor is None else preprocessor({"text": text})["token_ids"]
        features = encoder(inputs)
        if len(features.shape) == 3:  # the bag's one token
            features = keras.layers.Flatten()(features)
        return keras.Model(text, keras.layers.Dense(2, activation="softmax")(features))

    from multimodal_tf.models.lazy_adamw import LazyAdamW

    config = load_config(None)
    models = {}
    if "bag" in args.models:
        preprocessor = adapted_preprocessor(config, texts)
        encoder = BagOfNgramsEncoder(
            preprocessor.vocabulary_size,
            embedding_dim=config.model.embedding_dim,
            hidden_dim=config.model.hidden_dim,
            token_dropout=config.model.token_dropout,
            idf_weights=preprocessor.idf_weights,
            num_word_features=preprocessor.num_word_features,
        )
        models["bag"] = (text_model(encoder, preprocessor), "bag")
        print(
            f"bag: {preprocessor.vocabulary_size:,} n-grams, "
            f"sequence length {preprocessor.sequence_length}",
            file=sys.stderr,
        )
    vocabulary = wordpiece_vocabulary(words)
    for shape in SHAPES:
        if shape not in args.models:
            continue
        preset = write_preset(folder / shape, shape, vocabulary)
        for fine_tune in (False, True):
            encoder = HubTextEncoder(
                str(preset),
                sequence_length=args.sequence_length,
                pooling="mean",
                fine_tune=fine_tune,
            )
            name = f"{shape} {'fine-tuned' if fine_tune else 'frozen'}"
            models[name] = (text_model(encoder), shape)
    for model, _ in models.values():
        model.compile(LazyAdamW(learning_rate=1e-4), "sparse_categorical_crossentropy")
    return models


def export(model, folder):
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda text: {"probabilities": model(text, training=False)},
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    archive.write_out(str(folder), verbose=False)
    return tf.saved_model.load(str(folder)).signatures["serving_default"]


def time_training(model, batches, labels, steps):
    for step in range(2):  # trace and warm up
        model.train_on_batch(batches[step % len(batches)], labels)
    started = time.perf_counter()
    for step in range(steps):
        model.train_on_batch(batches[step % len(batches)], labels)
    return (time.perf_counter() - started) / (steps * len(labels))


def time_serving(served, texts, calls):
    import tensorflow as tf

    singles = [tf.constant([text]) for text in texts[:calls]]
    batch = tf.constant(texts[:SERVE_BATCH])
    for single in singles[:3]:
        served(text=single)
    served(text=batch)
    latencies = []
    for single in singles:
        started = time.perf_counter()
        served(text=single)["probabilities"].numpy()
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(2):
        served(text=batch)["probabilities"].numpy()
    per_sample = (time.perf_counter() - started) / (2 * SERVE_BATCH)
    return statistics.median(latencies), per_sample


def count_params(model):
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    total = sum(int(w.numpy().size) for w in model.weights)
    return trainable, total


def run(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The bag's one token carries a mask that Flatten drops, on purpose.
    warnings.filterwarnings("ignore", message=".*does not support masking.*")
    import keras
    import numpy as np
    import tensorflow as tf

    from multimodal_tf.models.hub_text_encoder import HubTextEncoder

    keras.utils.set_random_seed(0)
    texts, words = synthetic_posts(args.texts)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as scratch:
        folder = Path(scratch)
        models = build_models(args, texts, words, folder)
        rng = np.random.default_rng(1)
        labels = rng.integers(0, 2, args.batch_size)
        batches = [
            tf.constant(texts[i : i + args.batch_size])
            for i in range(0, len(texts) - args.batch_size + 1, args.batch_size)
        ][:8]
        served = {}
        for name, (model, group) in models.items():
            model(batches[0][:2])  # build
            if group not in served:
                served[group] = export(model, folder / "export" / name.replace(" ", "_"))
        rounds = {name: [] for name in models}
        serve_rounds = {group: [] for group in served}
        for index in range(args.rounds):
            for name, (model, _) in models.items():
                rounds[name].append(time_training(model, batches, labels, args.steps))
            for group, signature in served.items():
                serve_rounds[group].append(time_serving(signature, texts, args.calls))
            print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)
        hub = [
            layer
            for model, group in models.values()
            for layer in model.layers
            if isinstance(layer, HubTextEncoder)
        ]
        max_tokens = None
        if hub:  # untruncated: how many tokens the longest post has, [CLS] and [SEP] included
            pieces = tf.function(hub[0].tokenizer)(tf.constant(texts))
            max_tokens = int(pieces.row_lengths().numpy().max()) + 2
    return {
        "models": models,
        "train": rounds,
        "serve": serve_rounds,
        "seconds": time.perf_counter() - started,
        "max_tokens": max_tokens,
        "load": (load_before, os.getloadavg()[0]),
    }


def table(args, results):
    models = results["models"]
    train = {name: statistics.median(values) for name, values in results["train"].items()}
    serve_latency = {g: statistics.median(v[0] for v in vs) for g, vs in results["serve"].items()}
    serve_batch = {g: statistics.median(v[1] for v in vs) for g, vs in results["serve"].items()}
    base_train = train.get("bag")
    lines = [
        "## Training (raw text in, batch "
        f"{args.batch_size}, median of {args.rounds} rounds of {args.steps} steps)",
        "",
        "| text path | trainable / all params | ms per sample | x bag |",
        "|---|---:|---:|---:|",
    ]
    for name, (model, _) in models.items():
        trainable, total = count_params(model)
        ratio = f"{train[name] / base_train:.1f}" if base_train else "-"
        lines.append(f"| {name} | {trainable:,} / {total:,} | {1000 * train[name]:.2f} | {ratio} |")
    lines += [
        "",
        f"## Serving (SavedModel signature, raw text in; batch-1 p50 over {args.calls} calls, "
        f"batch {SERVE_BATCH})",
        "",
        "| text path | batch-1 p50 ms | x bag | batch-64 ms per sample | x bag "
        "| batch-64 samples/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for group in results["serve"]:
        latency, per_sample = serve_latency[group], serve_batch[group]
        base_latency, base_sample = serve_latency.get("bag"), serve_batch.get("bag")
        lines.append(
            f"| {group if group == 'bag' else group + ' (frozen or fine-tuned)'} "
            f"| {1000 * latency:.2f} | {latency / base_latency:.1f} "
            f"| {1000 * per_sample:.3f} | {per_sample / base_sample:.1f} | {1 / per_sample:,.0f} |"
            if base_latency
            else f"| {group} | {1000 * latency:.2f} | - | {1000 * per_sample:.3f} | - | "
            f"{1 / per_sample:,.0f} |"
        )
    lines += [
        "",
        f"{args.texts} synthetic posts; KerasHub encoders at sequence length "
        f"{args.sequence_length} (the longest post has {results['max_tokens']} tokens with "
        f"[CLS] and [SEP]); TensorFlow's default threads; {os.cpu_count()} cores, "
        f"1-minute load average {results['load'][0]:.1f} before and {results['load'][1]:.1f} "
        f"after the run (over {os.cpu_count()}, other processes shared the cores and absolute "
        f"figures are slower than on an idle machine; each ratio is of figures measured in "
        f"the same rounds); {results['seconds']:.0f} s in all.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes a Markdown table to stdout (and --output). Needs the [hub] extra.",
    )
    parser.add_argument(
        "--models",
        default="bag,bert_tiny,all_minilm_l6",
        help="Comma-separated: bag, bert_tiny, all_minilm_l6 (default: all three).",
    )
    parser.add_argument("--rounds", type=int, default=3, help="Measurement rounds (default 3).")
    parser.add_argument("--steps", type=int, default=6, help="Training steps per round (6).")
    parser.add_argument("--batch-size", type=int, default=32, help="Training batch (32).")
    parser.add_argument(
        "--sequence-length", type=int, default=64, help="KerasHub tokens per text (64)."
    )
    parser.add_argument("--texts", type=int, default=2000, help="Synthetic posts (2000).")
    parser.add_argument("--calls", type=int, default=30, help="Batch-1 serving calls (30).")
    parser.add_argument("--output", help="Also write the tables to this Markdown file.")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = set(args.models) - {"bag", *SHAPES}
    if unknown:
        parser.error(f"unknown --models {sorted(unknown)}")
    results = run(args)
    text = table(args, results)
    print(text)
    if args.output:
        command = " ".join(["python", "benchmarks/hub_text.py", *(argv or sys.argv[1:])])
        Path(args.output).write_text(
            f"`{command}`\n\n# KerasHub text encoders against the n-gram bag: cost per sample\n\n"
            + text,
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

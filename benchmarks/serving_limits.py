"""What hostile requests cost an exported SavedModel, and the REST test double under load.

Loads an export (`--model saved_models/NAME/VERSION`) with `tf.saved_model.load`, as
TF Serving does, warms it up with an ordinary request, then prints:

- a decompression bomb: a real PNG of 20000 x 20000 grey pixels (a few hundred KB
  that inflate to 400 MB): time until the signature refuses it, and the process's
  RSS growth (now, and at its peak);
- a 10 MB text: time to serve it, and the RSS growth;
- `multimodal_tf.serving.emulator.ServingEmulator` (the REST test double of TF
  Serving) with `--clients` concurrent clients on 127.0.0.1, each sending
  `--requests` `:predict` calls of one row on its own connection: connection
  resets and other failures, answers that differ from the signature's own, and
  latency percentiles.

Usage:

    .venv/bin/python benchmarks/serving_limits.py --model saved_models/mvsa/1
        [--clients 200] [--requests 5] [--output benchmarks/results/serving_limits.md]
"""

import argparse
import base64
import http.client
import io
import json
import os
import resource
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGETS = "Targets: bomb and 10 MB text RSS growth <= 50 MB; 0 resets, 0 wrong answers."


def bomb_png(width=20000, height=20000):
    """A valid 8-bit grey PNG of `width` x `height` black pixels, compressed in chunks."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    parts = [compressor.compress(row * 500) for _ in range(height // 500)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def photo_jpeg():
    sys.path.insert(0, str(Path(__file__).parent))
    from helpers.synthetic_images import make_image

    buffer = io.BytesIO()
    make_image(np.random.default_rng(0), 500, 400).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def timed_request(serve, text, image):
    import tensorflow as tf

    before, peak_before = rss_mb(), peak_mb()
    started = time.perf_counter()
    try:
        serve(text=tf.constant([text]), image=tf.constant([image]))
        outcome = "served"
    except tf.errors.InvalidArgumentError as error:
        lines = [line for line in error.message.splitlines() if "image 0 of 1" in line]
        outcome = "refused: " + (lines or error.message.splitlines())[0].strip()[:160]
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rss_growth_mb": rss_mb() - before,
        "peak_growth_mb": peak_mb() - peak_before,
        "outcome": outcome,
    }


def rest_load(version_dir, serve, clients, requests, text, image):
    import tensorflow as tf

    from multimodal_tf.serving.emulator import ServingEmulator

    expected = serve(text=tf.constant([text]), image=tf.constant([image]))["probabilities"]
    expected = expected.numpy()[0]
    body = json.dumps(
        {"instances": [{"text": text, "image": {"b64": base64.b64encode(image).decode()}}]}
    )
    latencies, failures, wrong = [], [], []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(port):
        start.wait()
        for _ in range(requests):
            began = time.perf_counter()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                connection.request("POST", "/v1/models/model:predict", body)
                response = connection.getresponse()
                answer = json.loads(response.read())
                connection.close()
            except Exception as error:  # noqa: BLE001  (every failure is counted)
                with lock:
                    failures.append(type(error).__name__)
                continue
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                got = answer.get("predictions", [{}])[0]
                probabilities = got.get("probabilities") if isinstance(got, dict) else None
                if response.status != 200 or not np.allclose(probabilities, expected, atol=1e-5):
                    wrong.append(response.status)

    with ServingEmulator(version_dir, "model") as server:
        port = int(server.url.rsplit(":", 1)[1])
        threads = [threading.Thread(target=client, args=(port,)) for _ in range(clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
    kinds = {kind: failures.count(kind) for kind in sorted(set(failures))}
    return {
        "requests": clients * requests,
        "answered": len(latencies),
        "failures": kinds,
        "resets": kinds.get("ConnectionResetError", 0),
        "wrong": len(wrong),
        "p50_ms": float(np.percentile(latencies, 50) * 1e3) if latencies else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3) if latencies else float("nan"),
        "per_second": len(latencies) / wall,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="An exported version folder.")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--output", help="Also write the report to this Markdown file.")
    args = parser.parse_args()
    command = "python benchmarks/serving_limits.py " + " ".join(sys.argv[1:])

    import tensorflow as tf

    serve = tf.saved_model.load(args.model).signatures["serving_default"]
    text, image = "what a view from the top today #happy", photo_jpeg()
    for _ in range(5):
        serve(text=tf.constant([text]), image=tf.constant([image]))
    bomb = bomb_png()
    rows = {
        f"PNG bomb, 20000x20000 ({len(bomb) / 1024:.0f} KB)": timed_request(serve, text, bomb),
        "10 MB text": timed_request(serve, "so good " * (10 * 2**20 // 8), image),
    }
    lines = [
        f"`{command}`",
        "",
        "| request | outcome | seconds | RSS growth MB | peak RSS growth MB |",
    ]
    lines.append("|---|---|---:|---:|---:|")
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['outcome']} | {row['seconds']:.3f} | {row['rss_growth_mb']:.1f} "
            f"| {row['peak_growth_mb']:.1f} |"
        )
    load = rest_load(Path(args.model), serve, args.clients, args.requests, text, image)
    lines += [
        "",
        f"REST test double, {args.clients} concurrent clients x {args.requests} requests "
        "(one row, a 500x400 JPEG) on 127.0.0.1:",
        "",
        f"- answered {load['answered']} of {load['requests']}; resets {load['resets']}; "
        f"failures {load['failures'] or 'none'}; wrong answers {load['wrong']}",
        f"- latency p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms; "
        f"{load['per_second']:.0f} requests/s",
        "",
        TARGETS,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        from multimodal_tf.files import write_text_atomically

        write_text_atomically(args.output, "# Serving limits\n\n" + text)


if __name__ == "__main__":
    main()

"""The serving graph's checks of a request, before any preprocessing (core TF ops only).

`export_saved_model` runs them first: one non-empty batch with as many images as
texts; every image in a supported format; every image's header within the pixel
limit. Each failure is an `InvalidArgumentError` (HTTP 400 under TF Serving) that
names the instances at fault.
"""

import tensorflow as tf

# What `tf.io.decode_image` recognises; the same magic bytes as `data.validate`.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
_HEX = [f"{byte:02x}" for byte in range(256)]


def checked_batch(texts, images):
    """Passes `texts` and `images` on once they are one non-empty batch, or fails saying so.

    Without it an empty batch failed deep in the image encoder ("input depth
    must be evenly divisible by filter depth") and batches of different
    lengths in a concat.
    """
    num_texts, num_images = tf.size(texts), tf.size(images)
    checks = [
        tf.debugging.assert_positive(
            num_texts, message="an empty batch: send at least one instance"
        ),
        tf.debugging.assert_equal(
            num_texts,
            num_images,
            message="text and image must have one entry per instance, the same number of each "
            "(texts, images)",
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(texts), tf.identity(images)


def checked_images(images, allow_empty=True, max_pixels=None):
    """Passes a batch of encoded images on, or fails naming each bad one and why.

    Args:
        images: tf.string tensor `[batch]`. Encoded image bytes.
        allow_empty: bool. An empty string (a sample without an image) is fine.
        max_pixels: int or None. Refuse an image whose header declares more
            than this many pixels (width x height), before it is decoded.

    Returns:
        `images`, once every one starts with JPEG, PNG, GIF or BMP magic bytes
        (and, with `max_pixels`, declares at most that many pixels).

    Example:
    >>> checked_images(tf.constant([b"BM..."])).shape
    TensorShape([1])
    """
    empty = tf.strings.length(images) == 0
    known = tf.reduce_any(
        tf.stack([tf.strings.substr(images, 0, len(magic)) == magic for magic in IMAGE_MAGIC]),
        axis=0,
    )
    bad = tf.logical_and(tf.logical_not(empty), tf.logical_not(known))
    if not allow_empty:
        bad = tf.logical_or(bad, empty)
    # The message is only built for a bad request.
    message = tf.cond(
        tf.reduce_any(bad),
        lambda: _bad_image_message(images, empty, bad),
        lambda: tf.constant(""),
    )
    assertion = tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message])
    if max_pixels is None:
        with tf.control_dependencies([assertion]):
            return tf.identity(images)
    with tf.control_dependencies([assertion]):
        # Read only once every image is known to start like a supported format.
        height, width = header_sizes(images)
    too_big = height * width > int(max_pixels)
    message = tf.cond(
        tf.reduce_any(too_big),
        lambda: _too_big_message(height, width, too_big, max_pixels),
        lambda: tf.constant(""),
    )
    size_assertion = tf.debugging.Assert(tf.logical_not(tf.reduce_any(too_big)), [message])
    with tf.control_dependencies([size_assertion]):
        return tf.identity(images)


def header_sizes(images):
    """`(height, width)` of each encoded image, int64 `[batch]`, read from its header.

    JPEG through `tf.io.extract_jpeg_shape` (which reads the markers up to the
    frame header and decodes nothing), PNG, GIF and BMP from their fixed header
    fields. Empty strings and other bytes give 0 x 0.

    Args:
        images: tf.string tensor `[batch]`. Encoded image bytes.

    Returns:
        Two int64 tensors `[batch]`: heights and widths.

    Example:
    >>> png = tf.io.encode_png(tf.zeros([3, 5, 3], tf.uint8))
    >>> [int(size[0]) for size in header_sizes(tf.stack([png]))]
    [3, 5]
    """
    head = tf.cast(tf.io.decode_raw(images, tf.uint8, fixed_length=26), tf.int64)

    def big_endian(start, count):
        return sum(head[:, start + i] * 256 ** (count - 1 - i) for i in range(count))

    def little_endian(start, count):
        return sum(head[:, start + i] * 256**i for i in range(count))

    def signed32(value):  # a top-down BMP stores a negative height
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    is_png = tf.strings.substr(images, 0, 8) == IMAGE_MAGIC[1]
    is_gif = tf.logical_or(
        tf.strings.substr(images, 0, 6) == IMAGE_MAGIC[2],
        tf.strings.substr(images, 0, 6) == IMAGE_MAGIC[3],
    )
    is_bmp = tf.strings.substr(images, 0, 2) == IMAGE_MAGIC[4]
    height = tf.where(is_png, big_endian(20, 4), 0)
    width = tf.where(is_png, big_endian(16, 4), 0)
    height = tf.where(is_gif, little_endian(8, 2), height)
    width = tf.where(is_gif, little_endian(6, 2), width)
    height = tf.where(is_bmp, signed32(little_endian(22, 4)), height)
    width = tf.where(is_bmp, signed32(little_endian(18, 4)), width)

    def jpeg_size(image):
        return tf.cond(
            tf.io.is_jpeg(image),
            lambda: tf.cast(tf.io.extract_jpeg_shape(image)[:2], tf.int64),
            lambda: tf.zeros([2], tf.int64),
        )

    is_jpeg = tf.strings.substr(images, 0, 3) == IMAGE_MAGIC[0]
    jpeg = tf.cond(
        tf.reduce_any(is_jpeg),
        lambda: tf.map_fn(jpeg_size, images, fn_output_signature=tf.int64),
        lambda: tf.zeros([tf.size(images), 2], tf.int64),
    )
    height = tf.where(is_jpeg, jpeg[:, 0], height)
    width = tf.where(is_jpeg, jpeg[:, 1], width)
    return height, width


def _bad_image_message(images, empty, bad):
    head = tf.strings.bytes_split(tf.strings.substr(images, 0, 8))
    codes = tf.reshape(tf.io.decode_raw(head.flat_values, tf.uint8), [-1])
    hexes = tf.strings.reduce_join(
        head.with_flat_values(tf.gather(tf.constant(_HEX), tf.cast(codes, tf.int32))), axis=1
    )
    reasons = tf.where(
        empty,
        "empty",
        tf.strings.join(["not JPEG, PNG, GIF or BMP bytes (starts with 0x", hexes, "...)"]),
    )
    count = tf.strings.as_string(tf.size(images))
    lines = tf.strings.join(
        ["image ", tf.strings.as_string(tf.range(tf.size(images))), " of ", count, ": ", reasons]
    )
    return tf.strings.reduce_join(tf.boolean_mask(lines, bad), separator="; ")


def _too_big_message(height, width, too_big, max_pixels):
    count = tf.strings.as_string(tf.size(height))
    lines = tf.strings.join(
        [
            "image ",
            tf.strings.as_string(tf.range(tf.size(height))),
            " of ",
            count,
            ": ",
            tf.strings.as_string(width),
            "x",
            tf.strings.as_string(height),
            f" pixels, over the limit of {int(max_pixels)}",
        ]
    )
    return tf.strings.reduce_join(tf.boolean_mask(lines, too_big), separator="; ")

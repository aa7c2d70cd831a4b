"""Small real image files and TFRecord shards for the data tests (written with PIL and TensorFlow)."""

import io
import os
import pathlib
import shutil

import numpy as np
import tensorflow as tf
from PIL import Image

from monet_tf.config import base_config
from monet_tf.data import records


def colours(n: int, offset: int = 0) -> list[tuple[int, int, int]]:
    """n distinct RGB colours, far enough apart to survive JPEG."""
    return [((37 * i + offset) % 256, (91 * i + 2 * offset) % 256, (151 * i + 3 * offset) % 256)
            for i in range(1, n + 1)]


def solid(colour, height: int = 40, width: int = 40) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()


def gradient(height: int = 256, width: int = 256) -> np.ndarray:
    """A smooth, non-symmetric RGB image: JPEG keeps it close, and flips or crops show."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                     (x + 2 * y) * 255 // max(1, width + 2 * height - 3)], -1).astype(np.uint8)


def encode(pixels: np.ndarray, fmt: str = "PNG", mode: str = "RGB", **kwargs) -> bytes:
    """RGB pixels -> image file bytes in the given PIL mode (L, RGBA, CMYK, P, ...)."""
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def write_images(folder: pathlib.Path, named: dict[str, bytes]) -> list[pathlib.Path]:
    """Writes {relative path: bytes} under folder (sub-folders created)."""
    paths = []
    for relative, data in named.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def write_shard(path: pathlib.Path, items: list[tuple[str, bytes]], target: str = "photo"):
    """A TFRecord shard in the competition schema from (image_name, image bytes) pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for name, data in items:
            writer.write(records.serialize(name, data, target))
    return path


def read_shard(path) -> list[tf.train.Example]:
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


def colour_shard(path: pathlib.Path, cols, prefix: str, target: str = "photo", size: int = 40):
    """One lossless PNG record per colour, named prefix + index."""
    return write_shard(path, [(f"{prefix}{i:03d}", encode(solid(c, size, size)))
                              for i, c in enumerate(cols)], target)


def data_config(**overrides):
    """cfg.data for tests: tiny images, no held-out photos, no augmentation unless asked."""
    cfg = base_config().data
    cfg.image_size = 32
    cfg.shuffle_buffer = 64
    cfg.heldout_fraction = 0.0
    cfg.min_image_size = 16
    cfg.jitter = False
    cfg.flip = False
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def pixel_colours(batch: np.ndarray) -> list[tuple[int, int, int]]:
    """The colour of each solid image in a float [-1, 1] batch (asserting each is solid)."""
    uint8 = np.round((np.asarray(batch) + 1.0) * 127.5).astype(np.int64)
    found = []
    for image in uint8:
        assert (image == image[0, 0]).all(), "expected a solid-colour image"
        found.append(tuple(int(v) for v in image[0, 0]))
    return found


def copy_competition_monets(shared_data: pathlib.Path, folder: pathlib.Path, n: int) -> list[str]:
    """Copies the first n of the competition's monet_jpg files into folder; returns their names."""
    names = sorted(os.listdir(shared_data / "monet_jpg"))[:n]
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(shared_data / "monet_jpg" / name, folder / name)
    return names

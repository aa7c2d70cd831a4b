r"""Photos/s of monet_tf.predict against a plain loop calling the Keras generator per image.

    PYTHONPATH=. python bench/predict.py            # resnet_9blocks, ngf 64, 100 photos, 3 repeats
    PYTHONPATH=. python bench/predict.py --quick    # 16 photos, 2 repeats

Both sides start from the same JPEG files and end with 256x256 JPEGs on disk, using the same
randomly initialised generator: the baseline is what notebooks do (decode, call the Keras model on
one image, encode, save), monet_tf.predict is the exported SavedModel driven by its tf.data
pipeline into an images.zip (model loading and tracing included). Repeats alternate the two;
medians are printed and the last line is `ratio X.XX` (predict / loop, target >= 2.0).
"""

import os
import statistics
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from monet_tf.export import export_generator  # noqa: E402
from monet_tf.models.generators import build_generator, generator_multiple  # noqa: E402
from monet_tf.predict import predict  # noqa: E402

PHOTOS = "/work/shared/data/gan-getting-started/photo_jpg"

flags.DEFINE_string("photos", PHOTOS, "Folder of 256x256 photo JPEGs (the competition's photo_jpg).")
flags.DEFINE_integer("num_images", 100, "Photos translated per repeat.")
flags.DEFINE_string("generator", "resnet_9blocks", "Generator name (monet_tf.models).")
flags.DEFINE_integer("ngf", 64, "Generator width.")
flags.DEFINE_integer("repeats", 3, "Timed repeats of each side (alternating).")
flags.DEFINE_integer("batch_size", 16, "monet_tf.predict batch size.")
flags.DEFINE_bool("quick", False, "Smoke run: 16 photos, 2 repeats.")
FLAGS = flags.FLAGS


def keras_loop(generator, files: list[str], out_dir: str) -> float:
    """Seconds for the notebook way: one image at a time through the Keras model."""
    start = time.perf_counter()
    for path in files:
        image = np.asarray(Image.open(path).convert("RGB").resize((256, 256)), np.float32)
        translated = generator(image[None] / 127.5 - 1.0, training=False)[0].numpy()
        pixels = np.clip(np.round((translated + 1.0) * 127.5), 0, 255).astype(np.uint8)
        name = os.path.splitext(os.path.basename(path))[0] + ".jpg"
        Image.fromarray(pixels).save(os.path.join(out_dir, name), quality=95)
    return time.perf_counter() - start


def predict_run(model_dir: str, input_dir: str, zip_path: str) -> float:
    start = time.perf_counter()
    written = predict(
        model_dir, input_dir, zip_path, batch_size=FLAGS.batch_size, allow_any_count=True,
        verbose=False,
    )
    seconds = time.perf_counter() - start
    assert written == len(os.listdir(input_dir)), written
    return seconds


def main(argv: list[str]) -> None:
    del argv
    num_images, repeats = (16, 2) if FLAGS.quick else (FLAGS.num_images, FLAGS.repeats)
    files = sorted(
        os.path.join(FLAGS.photos, f) for f in os.listdir(FLAGS.photos) if f.endswith(".jpg")
    )[:num_images]
    if len(files) < num_images:
        raise app.UsageError(f"--photos {FLAGS.photos} has {len(files)} JPEGs, need {num_images}")
    print(
        f"{FLAGS.generator} ngf={FLAGS.ngf}, {num_images} photos at 256 px, {repeats} repeats, "
        f"predict batch {FLAGS.batch_size}, {os.cpu_count()} CPUs, TF {tf.__version__}"
    )
    generator = build_generator(FLAGS.generator, ngf=FLAGS.ngf, seed=0)
    generator(np.zeros((1, 256, 256, 3), np.float32), training=False)  # Build and warm up.
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "photo_to_monet")
        export_generator(generator, model_dir, multiple=generator_multiple(FLAGS.generator))
        input_dir = os.path.join(tmp, "photos")
        os.makedirs(input_dir)
        for path in files:  # Links, not copies: predict reads exactly these photos.
            os.symlink(path, os.path.join(input_dir, os.path.basename(path)))
        loop_dir = os.path.join(tmp, "loop")
        os.makedirs(loop_dir)
        loop_times, predict_times = [], []
        for r in range(repeats):
            loop_times.append(keras_loop(generator, files, loop_dir))
            predict_times.append(predict_run(model_dir, input_dir, os.path.join(tmp, "images.zip")))
            print(
                f"repeat {r + 1}: keras loop {num_images / loop_times[-1]:.2f} photos/s, "
                f"monet_tf.predict {num_images / predict_times[-1]:.2f} photos/s",
                flush=True,
            )
    loop_rate = num_images / statistics.median(loop_times)
    predict_rate = num_images / statistics.median(predict_times)
    print(f"median keras loop (1 image/call): {loop_rate:.2f} photos/s")
    print(f"median monet_tf.predict:          {predict_rate:.2f} photos/s")
    print(f"ratio {predict_rate / loop_rate:.2f}")


if __name__ == "__main__":
    app.run(main)

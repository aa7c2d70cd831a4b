r"""Photos/s of monet_tf.inference.predict against a plain loop calling the Keras generator per
image.

    PYTHONPATH=. python bench/predict.py            # resnet_9blocks, ngf 64, 100 photos, 3 repeats
    PYTHONPATH=. python bench/predict.py --quick    # 16 photos, 2 repeats

Every side starts from the same JPEG files and ends with 256x256 JPEGs on disk, using the same
randomly initialised generator: the baseline is what notebooks do (decode, call the float32 Keras
model on one image, encode, save); monet_tf.inference.predict is an exported SavedModel driven by
its tf.data pipeline into an images.zip (model loading and tracing included), once with a float32
export and once with a bfloat16 one (`python -m monet_tf export --precision=bfloat16`). Each repeat
runs every side, in an order that reverses every repeat; medians are printed. The last line is
`ratio X.XX`: predict / loop with the export this machine should use (bfloat16 where the CPU
computes it natively, else float32); target >= 2.0.
"""

import os
import pathlib
import statistics
import tempfile
import time

from absl import flags

from monet_tf.runtime import commandline

commandline.prepare(backend=None)  # The quiet console, before TensorFlow loads.

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from monet_tf.inference.export import export_generator  # noqa: E402
from monet_tf.config import generator_multiple  # noqa: E402
from monet_tf.models.generators import build_generator  # noqa: E402
from monet_tf.inference.predict import predict  # noqa: E402
from monet_tf.runtime.tf_strategy import cpu_has_native_bfloat16  # noqa: E402

PHOTOS = pathlib.Path(__file__).resolve().parents[2] / "shared/data/gan-getting-started/photo_jpg"

flags.DEFINE_string("photos", str(PHOTOS), "Folder of 256x256 photo JPEGs (the competition's photo_jpg).")
flags.DEFINE_integer("num_images", 100, "Photos translated per repeat.")
flags.DEFINE_string("generator", "resnet_9blocks", "Generator name (monet_tf.models).")
flags.DEFINE_integer("ngf", 64, "Generator width.")
flags.DEFINE_integer("repeats", 3, "Timed repeats of each side.")
flags.DEFINE_integer("batch_size", 16, "monet_tf.inference.predict batch size.")
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
        commandline.fail(f"--photos={FLAGS.photos}: {len(files)} JPEGs, {num_images} needed; "
                         "point it at a folder with more (the competition's photo_jpg/)")
    print(
        f"{FLAGS.generator} ngf={FLAGS.ngf}, {num_images} photos at 256 px, {repeats} repeats, "
        f"predict batch {FLAGS.batch_size}, {os.cpu_count()} CPUs, TF {tf.__version__}"
    )
    generator = build_generator(FLAGS.generator, ngf=FLAGS.ngf, seed=0)
    generator(np.zeros((1, 256, 256, 3), np.float32), training=False)  # Build and warm up.
    native = "bfloat16" if cpu_has_native_bfloat16() else "float32"
    with tempfile.TemporaryDirectory() as tmp:
        input_dir = os.path.join(tmp, "photos")
        os.makedirs(input_dir)
        for path in files:  # Links, not copies: predict reads exactly these photos.
            os.symlink(path, os.path.join(input_dir, os.path.basename(path)))
        loop_dir = os.path.join(tmp, "loop")
        os.makedirs(loop_dir)
        sides = {"keras loop": lambda: keras_loop(generator, files, loop_dir)}
        for precision in ("float32", "bfloat16"):
            model_dir = os.path.join(tmp, f"photo_to_monet_{precision}")
            export_generator(generator, model_dir, generator_multiple(FLAGS.generator), precision)
            zip_path = os.path.join(tmp, f"images_{precision}.zip")
            sides[f"predict {precision}"] = (
                lambda model_dir=model_dir, zip_path=zip_path:
                predict_run(model_dir, input_dir, zip_path))
        times = {side: [] for side in sides}
        for r in range(repeats):
            for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                times[side].append(sides[side]())
            print(f"repeat {r + 1}: " + ", ".join(
                f"{side} {num_images / times[side][-1]:.2f}" for side in sides) + " photos/s",
                flush=True)
    rate = {side: num_images / statistics.median(seconds) for side, seconds in times.items()}
    for side in sides:
        print(f"median {side:17} {rate[side]:6.2f} photos/s  "
              f"{rate[side] / rate['keras loop']:.2f}x the loop")
    print(f"this CPU computes bfloat16 natively: {native == 'bfloat16'}; ratio uses "
          f"predict {native}")
    print(f"ratio {rate[f'predict {native}'] / rate['keras loop']:.2f}")


if __name__ == "__main__":
    commandline.run(main)

"""Rebuilds tfrecords/sample/ from its public-domain and CC0 sources (see tfrecords/README.md).

    pip download --no-deps -d /tmp/sk scikit-image && unzip -q /tmp/sk/*.whl 'skimage/data/*' -d /tmp/sk
    python tfrecords/build_sample.py --skimage_data /tmp/sk/skimage/data \
        --monet_jpg ../shared/data/gan-getting-started/monet_jpg

scikit-image is only a source of photos here, not a dependency of monet_tf.
"""

import argparse
import os
import pathlib
import tempfile

import matplotlib
import numpy as np
import tensorflow as tf

from monet_tf.data.make_tfrecords import write_tfrecords

HERE = pathlib.Path(__file__).resolve().parent
# (file in skimage/data, licence); grass and gravel are grayscale and stored as RGB (R = G = B).
SKIMAGE_PHOTOS = {
    "astronaut.png": "public domain (NASA)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "rocket.jpg": "public domain (SpaceX)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "grass.png": "CC0 (\"Grass 01\" by linolafett)",
    "gravel.png": "CC0 (CC0Textures)",
}
CROPS = ((0.5, 0.5, 1.0), (0.3, 0.35, 0.6), (0.7, 0.6, 0.55), (0.45, 0.7, 0.45))  # cx, cy, side
NUM_MONET = 30


def square_crops(image: np.ndarray):
    h, w = image.shape[:2]
    for cx, cy, frac in CROPS:
        side = int(min(h, w) * frac)
        top = int(np.clip(cy * h - side / 2, 0, h - side))
        left = int(np.clip(cx * w - side / 2, 0, w - side))
        crop = image[top:top + side, left:left + side]
        yield tf.image.resize(crop, [256, 256], method="area", antialias=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skimage_data", required=True)
    parser.add_argument("--monet_jpg", required=True)
    args = parser.parse_args()
    sources = {os.path.join(args.skimage_data, f): f for f in SKIMAGE_PHOTOS}
    hopper = pathlib.Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    sources[str(hopper)] = "grace_hopper.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        photo_dir, monet_dir = os.path.join(tmp, "photo"), os.path.join(tmp, "monet")
        os.makedirs(photo_dir)
        os.makedirs(monet_dir)
        for path, name in sources.items():
            image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                                       expand_animations=False).numpy()
            for i, crop in enumerate(square_crops(image)):
                jpeg = tf.io.encode_jpeg(tf.cast(tf.round(crop), tf.uint8), quality=90)
                tf.io.write_file(os.path.join(photo_dir, f"{name.split('.')[0]}_{i}.jpg"), jpeg)
        for name in sorted(os.listdir(args.monet_jpg))[:NUM_MONET]:
            tf.io.gfile.copy(os.path.join(args.monet_jpg, name), os.path.join(monet_dir, name))
        out = HERE / "sample"
        for domain, folder in (("photo", photo_dir), ("monet", monet_dir)):
            target = out / f"{domain}_tfrec"
            if target.exists():
                for old in target.glob("*.tfrec"):
                    old.unlink()
            write_tfrecords(folder, str(target), domain, shards=2)


if __name__ == "__main__":
    main()

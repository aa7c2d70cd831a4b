r"""`monet-tf quality`: the quality card of generated paintings, with no pretrained network.

    monet-tf quality --generated images.zip --real monet_tfrec [--photos photo_tfrec] [--json]
    monet-tf quality --generated translated/ --real monet_heldout/ --training monet_train/ \
        --photos photo_heldout/

--generated: a zip or a folder of JPEG/PNG images (recursive); --real, --training, --photos: a
folder, a TFRecord directory or glob (competition schema), or a zip. Every image is resized
(square) to --size, by default the generated images' side. --training: the paintings the
generator trained on, for the memorization distance (default: --real). --photos: the photos
that were translated, matched to the generated images by file name (without extension) for SSIM.
The measures and their floors are monet_tf.scoring.quality's; the card goes to stdout (--json:
one object whose keys name the measures), progress to stderr.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import tensorflow as tf
from absl import flags

from monet_tf.scoring import quality
from monet_tf.scoring.fid import read_images

FLAGS = flags.FLAGS


class QualityError(ValueError):
    """Bad input to `monet-tf quality`: names the flag or path and what is wrong."""


def _stem(name) -> str:
    name = name.decode() if isinstance(name, bytes) else str(name)
    return os.path.splitext(os.path.basename(name))[0]


def load(spec: str, flag: str, size: int | None, limit: int = 0,
         keep: set[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(names, uint8 [N, size, size, 3]) of the images at `spec`, resized square to `size` (None:
    the first image's side); at most `limit` (> 0), every k-th image, counted and reported;
    only those whose names are in `keep`, when given (the photos of the generated images)."""
    from monet_tf.data import resize_square

    dataset = read_images(spec, flag)
    total = int(dataset.cardinality())
    if limit and total > limit:
        step = -(-total // limit)
        dataset = dataset.shard(step, 0)
        print(f"--{flag}: every {step}th of {total} images", file=sys.stderr)
    if size is None:
        first = next(iter(dataset.take(1)), None)
        if first is None:
            raise QualityError(f"--{flag} {spec} holds no images")
        height, width = first[1].shape[:2]
        size = min(height, width)
    names, images = [], []
    for name, image in dataset.map(lambda n, i: (n, resize_square(i, size))).batch(64):
        stems = [_stem(n) for n in name.numpy()]
        wanted = [keep is None or stem in keep for stem in stems]
        names += [stem for stem, w in zip(stems, wanted) if w]
        images.append(image.numpy()[np.array(wanted, bool)])
    if not images:
        raise QualityError(f"--{flag} {spec} holds no images")
    return names, np.concatenate(images)


def compute_card(generated: str, real: str, training: str = "", photos: str = "",
                 size: int = 0, max_images: int = 1000, seed: int = 0) -> dict:
    """The card of the images at `generated` (see the module docstring for the arguments)."""
    for flag, spec in (("generated", generated), ("real", real)):
        if not spec:
            raise QualityError(f"--{flag} is empty")
    gen_names, gen = load(generated, "generated", size or None, max_images)
    size = gen.shape[1]
    try:
        quality.levels_for(size)
    except ValueError as err:
        raise QualityError(f"--size {size}: {err}; pass --size=128 or 256") from None
    _, real_images = load(real, "real", size)
    training_images = load(training, "training", size)[1] if training else None
    reference = quality.Reference(real_images, training_images, seed=seed,
                                  max_generated=max_images)
    card = reference.card(gen)
    matched = None
    if photos:
        photo_names, photo_images = load(photos, "photos", size, keep=set(gen_names))
        by_name = dict(zip(photo_names, range(len(photo_names))))
        pairs = [(i, by_name[n]) for i, n in enumerate(gen_names) if n in by_name]
        if not pairs:
            raise QualityError(f"--photos {photos}: no photo has the name of a generated image "
                               f"(e.g. {gen_names[0]!r}); SSIM pairs them by file name")
        matched = len(pairs)
        if matched < len(gen_names):
            print(f"--photos: {len(gen_names) - matched} of {len(gen_names)} generated images "
                  "have no photo of the same name; SSIM is over the other "
                  f"{matched}", file=sys.stderr)
        gen_index, photo_index = map(np.array, zip(*pairs))
        card["measures"]["ssim"] = float(np.mean(quality.ssim_luminance(
            photo_images[photo_index], gen[gen_index])))
    card.update(generated_path=generated, real_path=real, training_path=training or real,
                photos_path=photos or None, ssim_pairs=matched)
    return card


def main(argv):
    del argv
    try:
        card = compute_card(FLAGS.generated, FLAGS.real, FLAGS.training, FLAGS.photos,
                            FLAGS.size, FLAGS.max_images, FLAGS.seed)
    except ValueError as err:  # QualityError, monet_tf.data.DataError, fid.FIDError
        print(f"monet-tf quality: error: {err}", file=sys.stderr)
        sys.exit(2)
    except tf.errors.OpError as err:  # An undecodable image met while reading.
        print(f"monet-tf quality: error: {err.message.strip().splitlines()[0]}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(card, indent=1) if FLAGS.json else quality.format_card(card))


def define_flags() -> None:
    flags.DEFINE_string("generated", None, "Generated images: a zip or a folder of JPEG/PNG.")
    flags.DEFINE_string("real", None, "Real paintings: folder, TFRecord dir/glob, or zip.")
    flags.DEFINE_string("training", "", "The paintings the generator trained on, for the "
                        "memorization distance (default: --real).")
    flags.DEFINE_string("photos", "", "The photos that were translated (matched by file name), "
                        "for SSIM; empty: no SSIM.")
    flags.DEFINE_integer("size", 0, "Side every image is resized to (a power of two >= 16); "
                         "0: the generated images' side.")
    flags.DEFINE_integer("max_images", 1000, "At most this many generated images (every k-th).")
    flags.DEFINE_integer("seed", 0, "Seeds the neighbourhoods, pixels and directions drawn.")
    flags.DEFINE_bool("json", False, "Print the card as one JSON object.")
    flags.mark_flags_as_required(["generated", "real"])

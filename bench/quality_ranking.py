r"""Does the quality card rank what it must? Cards of known sets on the competition's paintings.

    python bench/quality_ranking.py                  # 256 px, prints a Markdown table
    python bench/quality_ranking.py --size=128 --seeds=0,1,2

The paintings (--data_dir's monet_tfrec, 300) are split by name into two halves: the real set the
card compares with, and 150 held-out paintings. Carded against the real set: the held-out
paintings as they are; blurred (Gaussian, sigma 1 px); re-encoded as JPEG at quality 10; with a
faint checkerboard (+-3 of 255, 1-pixel cells: period 2, what a stride-2 transposed convolution
leaves); 150 untranslated photos; and copies of 150 of the real paintings themselves
(memorization). Each row is the mean over --seeds (the card's random neighbourhoods, pixels and
directions, and its floor's halves); the floor row is the real set against itself, half against
half.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/gan-getting-started"
KEYS = ("score", "swd", "palette", "spectrum", "checkerboard", "memorization")


def blurred(images: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    smooth = ndimage.gaussian_filter(images.astype(np.float64), (0, sigma, sigma, 0))
    return np.clip(np.rint(smooth), 0, 255).astype(np.uint8)


def jpeg(images: np.ndarray, quality: int = 10) -> np.ndarray:
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out)


def checkered(images: np.ndarray, amplitude: float = 3.0) -> np.ndarray:
    size = images.shape[1]
    sign = (-1.0) ** np.add.outer(np.arange(size), np.arange(size))
    return np.clip(np.rint(images + amplitude * sign[None, :, :, None]), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=str(DATA))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    if not pathlib.Path(args.data_dir, "monet_tfrec").is_dir():
        sys.exit(f"--data_dir={args.data_dir}: no monet_tfrec/ there; give the competition data")

    from monet_tf.scoring import quality
    from monet_tf.scoring.quality_command import load

    names, paintings = load(str(pathlib.Path(args.data_dir, "monet_tfrec")), "real", args.size)
    order = np.argsort(names)
    real, heldout = paintings[order[::2]], paintings[order[1::2]]
    photos = load(str(pathlib.Path(args.data_dir, "photo_tfrec")), "photos", args.size,
                  limit=len(heldout))[1][:len(heldout)]
    sets = {
        "held-out paintings": heldout,
        "held-out, blurred (sigma 1 px)": blurred(heldout),
        "held-out, JPEG quality 10": jpeg(heldout),
        "held-out, faint checkerboard (+-3, period 2 px)": checkered(heldout),
        "untranslated photos": photos,
        "copies of the real paintings": real[:len(heldout)],
    }
    rows = {name: [] for name in ["floor (real half against half)", *sets]}
    for seed in map(int, args.seeds.split(",")):
        reference = quality.Reference(real, seed=seed)
        rows["floor (real half against half)"].append({**reference.floor, "score": 1.0})
        for name, images in sets.items():
            rows[name].append(reference.card(images)["measures"])
            print(f"seed {seed}: {name}", file=sys.stderr, flush=True)
    print(f"{len(real)} real paintings, {args.size} px, mean of seeds {args.seeds}\n")
    print("| set | score | SWD x1e3 | SWD finest level | palette (dE) | spectrum (dB) | "
          "checkerboard (dB) | memorization |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, cards in rows.items():
        mean = {key: float(np.mean([c[key] for c in cards])) for key in KEYS}
        finest = float(np.mean([c["swd_levels"][0] for c in cards]))
        print(f"| {name} | {mean['score']:.2f} | {mean['swd']:.1f} | {finest:.1f} | "
              f"{mean['palette']:.2f} | {mean['spectrum']:.2f} | {mean['checkerboard']:.2f} | "
              f"{mean['memorization']:.3f} |")


if __name__ == "__main__":
    main()

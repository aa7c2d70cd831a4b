r"""A look at a data set before training: sample grid, per-channel colour histograms, counts.

    python -m monet_tf.data.inspect --data_dir ../shared/data/gan-getting-started --out report.png
    python -m monet_tf.data.inspect --monet my_paintings/ --photo 'gs://bucket/photos/*.tfrec' \
        --out report.png --num_images 8 --seed 1

The data is found and checked exactly as training does (find_sources, then validate), so a bad
file stops here with the same message. The report is one PNG: a row of unaugmented samples per
domain, labelled at its left, the R, G, B histograms of each domain at training resolution, a line
of counts and original image sizes, and the two sources in a footer. Samples and histogram images
are drawn at random (by --seed) from the usable records, held-out photos included, and only the
chosen records are decoded.
"""

from __future__ import annotations

import dataclasses
import io
import math
import sys

import numpy as np
import tensorflow as tf
from absl import app, flags
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monet_tf.config import base_config
from monet_tf.data.images import decode_rgb, resize_square
from monet_tf.data.pipeline import usable_records
from monet_tf.data.sources import DOMAINS, DataError, DataSources, find_sources
from monet_tf.data.validate import DataReport, validate

TITLES = {"monet": "Monet", "photo": "Photo"}
CHANNELS = (("R", "tab:red"), ("G", "tab:green"), ("B", "tab:blue"))
GRID_COLUMNS = 8  # Samples per row of the grid; more samples wrap onto further rows.
FLAGS = flags.FLAGS  # Flags are defined only when run as a program (see define_flags).


@dataclasses.dataclass(frozen=True)
class DomainLook:
    """What the report shows of one domain."""

    samples: np.ndarray  # uint8 [n, S, S, 3], unaugmented
    histogram: np.ndarray  # int64 [3, 256]: pixel counts per channel (R, G, B) and value
    histogram_images: int  # images the histogram is over
    sizes: np.ndarray  # int [k, 2]: original (height, width) of those images

    def channel_means(self) -> np.ndarray:
        """Mean value of R, G, B over the histogram's pixels (0-255)."""
        return (self.histogram * np.arange(256)).sum(axis=1) / self.histogram.sum(axis=1)


def look_at_domain(sources: DataSources, report: DataReport, domain: str, num_images: int,
                   hist_images: int, image_size: int, seed: int) -> DomainLook:
    """Decodes up to max(num_images, hist_images) random usable records of one domain, once."""
    count = report[domain].count
    rng = np.random.default_rng([seed, DOMAINS.index(domain)])
    chosen = rng.choice(count, size=min(max(num_images, hist_images), count), replace=False)
    for_samples = chosen[:num_images]
    picked, in_hist = np.zeros(count, bool), np.zeros(count, bool)
    picked[chosen] = True
    in_hist[chosen[:hist_images]] = True
    picked_t = tf.constant(picked)
    offsets = tf.constant([0, 256, 512], tf.int32)

    def decode(index, record):
        _, data = record
        image = data if data.dtype == tf.uint8 else decode_rgb(data)
        original = tf.shape(image)[:2]
        image = resize_square(image, image_size)
        values = tf.reshape(tf.cast(image, tf.int32) + offsets, [-1])
        histogram = tf.math.bincount(values, minlength=768, maxlength=768, dtype=tf.int64)
        return index, image, tf.reshape(histogram, [3, 256]), original

    ds = usable_records(sources[domain], report[domain]).enumerate()
    ds = ds.filter(lambda index, record: picked_t[index])
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    samples, histogram, sizes = {}, np.zeros([3, 256], np.int64), []
    wanted = set(for_samples.tolist())
    for index, image, hist, original in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        if index in wanted:
            samples[int(index)] = image
        if in_hist[index]:
            histogram += hist
            sizes.append(original)
    order = [samples[i] for i in for_samples.tolist()]
    return DomainLook(
        samples=np.stack(order) if order else np.zeros([0, image_size, image_size, 3], np.uint8),
        histogram=histogram,
        histogram_images=len(sizes),
        sizes=np.array(sizes, np.int64).reshape(-1, 2),
    )


def _size_text(sizes: np.ndarray) -> str:
    if not len(sizes):
        return "no images"
    unique, counts = np.unique(sizes, axis=0, return_counts=True)
    if len(unique) == 1:
        height, width = unique[0]
        return f"all {width}x{height}"
    sides = sizes.min(axis=1)
    common = unique[np.argmax(counts)]
    return (f"shorter side {sides.min()}-{sides.max()} px (median {int(np.median(sides))}), "
            f"most often {common[1]}x{common[0]}")


def summary(report: DataReport, looks: dict[str, DomainLook]) -> str:
    """One line per domain: records, skipped, held out, and the original sizes seen."""
    lines = []
    for domain in DOMAINS:
        r, look = report[domain], looks[domain]
        held = f", {r.heldout_count:,} held out" if domain == "photo" else ""
        lines.append(f"{TITLES[domain]}: {r.count:,} records ({r.skipped:,} skipped{held}); "
                     f"sizes of {look.histogram_images:,} sampled: {_size_text(look.sizes)}")
    return "\n".join(lines)


def report_figure(sources: DataSources, report: DataReport, looks: dict[str, DomainLook],
                  image_size: int) -> Figure:
    """Sample rows labelled by domain, the histograms, the counts, and the sources in a footer.

    The sources go in a footer: above the sample rows, the photo source read as a caption of the
    paintings under it.
    """
    columns = max(1, min(GRID_COLUMNS, max(len(look.samples) for look in looks.values())))
    rows = {d: max(1, math.ceil(len(looks[d].samples) / columns)) for d in DOMAINS}
    grid_rows = sum(rows.values())
    fig = Figure(figsize=(1.6 * max(columns, 5), 1.6 * grid_rows + 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.6 * grid_rows, 3.0])
    axes = top.subplots(grid_rows, columns, squeeze=False)
    row = 0
    for domain in DOMAINS:
        samples = looks[domain].samples
        for r in range(rows[domain]):
            for c in range(columns):
                ax = axes[row + r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                i = r * columns + c
                if i < len(samples):
                    ax.imshow(samples[i], interpolation="nearest")
            if r == 0:
                axes[row, 0].set_ylabel(TITLES[domain], fontsize=11, fontweight="bold")
        row += rows[domain]
    hist_axes = bottom.subplots(1, 2)
    densities = {d: looks[d].histogram / np.maximum(looks[d].histogram.sum(axis=1, keepdims=True), 1)
                 for d in DOMAINS}
    # Saturated pixels (0 and 255) can dwarf the rest; the scale follows values 1-254 and the
    # fractions at the ends are given in the legend instead.
    top_y = 1.15 * max(float(densities[d][:, 1:255].max()) for d in DOMAINS) or 1.0
    for ax, domain in zip(hist_axes, DOMAINS):
        look, density = looks[domain], densities[domain]
        for (name, colour), values, mean in zip(CHANNELS, density, look.channel_means()):
            ax.plot(np.arange(256), values, color=colour, lw=1.2,
                    label=f"{name}: mean {mean:.0f}, at 0 {values[0]:.1%}, at 255 {values[255]:.1%}")
        ax.set_title(f"{TITLES[domain]}: {look.histogram_images:,} images at {image_size} px",
                     fontsize=10)
        ax.set_xlim(0, 255)
        ax.set_ylim(0, top_y)
        ax.set_xlabel("pixel value")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    hist_axes[0].set_ylabel("fraction of pixels")
    bottom.supxlabel(summary(report, looks), fontsize=8, ha="center")
    fig.supxlabel("\n".join(sources[d].describe() for d in DOMAINS), fontsize=8, color="0.3")
    return fig


def check_arguments(out: str, num_images: int, hist_images: int) -> None:
    """Bad arguments fail before the data is read."""
    if not out.lower().endswith(".png"):
        raise DataError(f"--out={out}: the report is a PNG; give a path ending in .png")
    if tf.io.gfile.isdir(out):
        raise DataError(f"--out={out}: is a directory; give a file path ending in .png")
    if num_images < 1:
        raise DataError(f"--num_images={num_images}: must be at least 1")
    if hist_images < 1:
        raise DataError(f"--hist_images={hist_images}: must be at least 1")


def inspect(sources: DataSources, report: DataReport, out: str, num_images: int = 8,
            hist_images: int = 300, image_size: int = 256, seed: int = 0) -> dict[str, DomainLook]:
    """Writes the report PNG to `out` (local or gs://) and returns what it shows, per domain."""
    check_arguments(out, num_images, hist_images)
    looks = {d: look_at_domain(sources, report, d, num_images, hist_images, image_size, seed)
             for d in DOMAINS}
    fig = report_figure(sources, report, looks, image_size)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    parent = out.rsplit("/", 1)[0] if "/" in out else ""
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(out, "wb") as f:
        f.write(buffer.getvalue())
    return looks


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        check_arguments(FLAGS.out, FLAGS.num_images, FLAGS.hist_images)
        sources = find_sources(FLAGS.data_dir, FLAGS.monet, FLAGS.photo)
        print(sources.describe(), flush=True)
        report = validate(sources, min_image_size=FLAGS.min_image_size,
                          skip_bad_records=FLAGS.skip_bad_records,
                          heldout_fraction=FLAGS.heldout_fraction)
        looks = inspect(sources, report, FLAGS.out, num_images=FLAGS.num_images,
                        hist_images=FLAGS.hist_images, image_size=FLAGS.image_size,
                        seed=FLAGS.seed)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(summary(report, looks))
    print(f"wrote {FLAGS.out}")


def define_flags() -> None:
    defaults = base_config().data
    flags.DEFINE_string("data_dir", "", "Kaggle-layout folder (monet_tfrec/ + photo_tfrec/, or "
                        "monet_jpg/ + photo_jpg/). Empty: Kaggle's mount, else the bundled sample.")
    flags.DEFINE_string("monet", "", "Paintings: TFRecord dir or glob, image folder, or tfds:NAME.")
    flags.DEFINE_string("photo", "", "Photos: TFRecord dir or glob, image folder, or tfds:NAME.")
    flags.DEFINE_string("out", None, "The report PNG to write (local or gs://).")
    flags.DEFINE_integer("num_images", 8, "Samples shown per domain.")
    flags.DEFINE_integer("hist_images", 300, "Random images per domain the histograms are over.")
    flags.DEFINE_integer("image_size", defaults.image_size, "Side the images are resized to.")
    flags.DEFINE_integer("seed", 0, "Chooses the samples.")
    flags.DEFINE_integer("min_image_size", defaults.min_image_size, "Smaller images are bad input.")
    flags.DEFINE_bool("skip_bad_records", defaults.skip_bad_records,
                      "Skip undecodable records and report the count instead of stopping.")
    flags.DEFINE_float("heldout_fraction", defaults.heldout_fraction,
                       "Photos held out of training, as training would hold them out (counted).")
    flags.mark_flag_as_required("out")


if __name__ == "__main__":  # python -m monet_tf.data.inspect: monet-tf inspect.
    from monet_tf.runtime import commandline

    define_flags()
    commandline.run(main)

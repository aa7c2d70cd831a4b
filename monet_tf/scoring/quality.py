"""A quality card that needs no pretrained network: how close generated paintings are to real
ones, measured on the pixels alone (numpy; the SSIM is TensorFlow's).

- Sliced Wasserstein distance (SWD) between 7x7 neighbourhoods of Laplacian pyramids, per level
  and averaged: Karras et al. 2018, "Progressive Growing of GANs", section 5.1 and appendix D,
  as their `metrics/sliced_wasserstein.py` computes it (128 neighbourhoods per image, each
  level's descriptors normalised per colour channel and set, 4 x 128 random directions, reported
  x 1e3).
- Palette: the sliced Wasserstein-1 distance between the two sets' pixel colours in CIELAB (D65),
  scaled so that a uniform colour cast of delta E (CIE 1976) scores delta E: what SWD's per-set
  normalisation cannot see.
- Spectrum: Durall et al. 2020, "Watch your Up-Convolution": each image's power spectrum
  (luminance) integrated over the azimuth into a 1-D profile; the distance is the mean absolute
  difference of the sets' mean log profiles, in dB. Each profile is normalised to unit AC power
  (the paper divides by the DC term, which ties the profile to the image's mean brightness).
- Checkerboard: the power at the frequencies that stride-2 upsampling leaves (multiples of 1/4
  cycle per pixel: periods of 2 and 4 pixels, two stride-2 layers), over the median power around
  each, in dB, averaged over images (Hann-windowed, so the image borders add no cross).
- Content kept: SSIM (Wang et al. 2004, `tf.image.ssim`: 11x11 Gaussian, sigma 1.5) on BT.601
  luminance between each photo and its translation.
- Memorization: each generated image's RMS distance to its nearest training painting over every
  value of SWD's two coarsest pyramid levels, normalised by the training paintings' statistics
  (a copy scores 0), median over images.

Each distance comes with its floor: the same measure between two disjoint halves of the real
paintings; the measure compares as many generated images with the same half (Reference). `score`
is the one number `export/best` is chosen by when no Inception weights are given: the mean over
SWD, palette and spectrum of measure / floor (1.0: as close as real paintings are to each other;
lower is better). Floors, and so scores, depend on the real set's size: compare cards against
the same real paintings.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

NEIGHBOURHOOD = 7  # Karras et al.: 7x7 pixel neighbourhoods,
PER_IMAGE = 128  # 128 of them per image and level,
DIR_REPEATS, DIRS_PER_REPEAT = 4, 128  # projected on 4 x 128 random directions,
SMALLEST_LEVEL = 16  # down to the 16x16 level.
PALETTE_PIXELS = 256  # Pixels per image drawn for the palette.
PALETTE_DIRECTIONS = 128
CHECKER_PERIODS = (2, 4)  # Pixels: one and two stride-2 upsamplings.
MEMORIZED_BELOW = 0.5  # Of the floor: a median nearest distance under this is flagged.
_GAUSS = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # cv2.pyrDown's 5-tap kernel.

# (key, what, which way is better) of the card's measures, in the order the card prints them.
MEASURES = (
    ("swd", "SWD x1e3, Laplacian 7x7 (Karras 2018), mean over levels", "lower"),
    ("palette", "palette: sliced W1 of CIELAB colours (delta E)", "lower"),
    ("spectrum", "spectrum: azimuthal power profile difference (dB, Durall 2020)", "lower"),
    ("checkerboard", "checkerboard: power at stride-2 upsampling frequencies (dB)", "lower"),
    ("ssim", "content kept: SSIM of luminance, photo vs translation (Wang 2004)", "higher"),
    ("memorization", "memorization: median distance to the nearest training painting", "higher"),
)


# ---- Laplacian pyramids and their neighbourhoods (Karras et al.'s sliced_wasserstein.py) ----

def _blur(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 2-D filter over H and W of [N, H, W, C], mirrored at the borders (scipy's
    'mirror', cv2's BORDER_REFLECT_101)."""
    out = ndimage.correlate1d(images, kernel, axis=1, mode="mirror")
    return ndimage.correlate1d(out, kernel, axis=2, mode="mirror")


def pyr_down(images: np.ndarray) -> np.ndarray:
    return _blur(images, _GAUSS)[:, ::2, ::2]


def pyr_up(images: np.ndarray) -> np.ndarray:
    n, h, w, c = images.shape
    up = np.zeros((n, 2 * h, 2 * w, c), images.dtype)
    up[:, ::2, ::2] = images
    return _blur(up, _GAUSS * 2.0)  # x4 in 2-D: the zeros take 3/4 of the energy.


def levels_for(size: int) -> int:
    """Pyramid levels from `size` down to 16 px (Karras: 1024 ... 16)."""
    if size < SMALLEST_LEVEL or size & (size - 1):
        raise ValueError(f"images must be square with a power-of-two side >= {SMALLEST_LEVEL}, "
                         f"got {size}")
    return int(math.log2(size // SMALLEST_LEVEL)) + 1


def laplacian_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """[full-res band, ..., coarsest (Gaussian) level] of float32 [N, H, W, 3] in [0, 255]."""
    pyramid = [np.asarray(images, np.float32)]
    for _ in range(1, levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1])
    return pyramid


def neighbourhoods(level: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """counts[i] random 7x7x3 neighbourhoods of image i of one level: [sum(counts), 7, 7, 3]."""
    half = NEIGHBOURHOOD // 2
    n, h, w, _ = level.shape
    image = np.repeat(np.arange(n), counts)
    y = rng.integers(half, h - half, size=len(image))
    x = rng.integers(half, w - half, size=len(image))
    offsets = np.arange(-half, half + 1)
    return level[image[:, None, None], (y[:, None] + offsets)[:, :, None],
                 (x[:, None] + offsets)[:, None, :]]


def _normalised(descriptors: np.ndarray) -> np.ndarray:
    """Karras' finalize_descriptors: zero mean, unit std per colour channel, over the set."""
    d = descriptors - descriptors.mean(axis=(0, 1, 2), keepdims=True)
    d /= d.std(axis=(0, 1, 2), keepdims=True) + 1e-12
    return d.reshape(len(d), -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                       repeats: int = DIR_REPEATS, directions: int = DIRS_PER_REPEAT,
                       fixed: np.ndarray | None = None) -> float:
    """Mean over random unit directions (or the `fixed` [K, D] ones) of the 1-D Wasserstein-1
    distance between the projections of two equally many points (sorted projections,
    pointwise |difference|)."""
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs equally many points: {a.shape} vs {b.shape}")
    results = []
    for _ in range(1 if fixed is not None else repeats):
        if fixed is None:
            dirs = rng.standard_normal((directions, a.shape[1]))
            dirs /= np.sqrt(np.square(dirs).sum(axis=1, keepdims=True))
        else:
            dirs = fixed
        dirs = dirs.astype(np.float32)  # [direction, component]: each projection contiguous.
        results.append(np.abs(np.sort(dirs @ a.T, axis=1) - np.sort(dirs @ b.T, axis=1)).mean())
    return float(np.mean(results))


def sphere_directions(n: int) -> np.ndarray:
    """n unit vectors spread evenly over the sphere (the Fibonacci lattice): [n, 3]."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


# ---- colour, spectra, SSIM ----

_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 (or [0, 255] float) sRGB [..., 3] -> CIELAB [..., 3] under D65 (CIE 1976)."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _SRGB_TO_XYZ.T / _WHITE_D65
    delta = 6.0 / 29.0
    f = np.where(xyz > delta ** 3, np.cbrt(xyz), xyz / (3 * delta ** 2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def luminance(images: np.ndarray) -> np.ndarray:
    """BT.601 luma of [..., 3] pixels, [0, 255] float64: [...]."""
    return np.asarray(images, np.float64) @ np.array([0.299, 0.587, 0.114])


def _power(images: np.ndarray, window: bool) -> np.ndarray:
    """|FFT|^2 of each image's mean-free luminance: [N, H, W] (unshifted: DC at [0, 0])."""
    y = luminance(images)
    y -= y.mean(axis=(1, 2), keepdims=True)
    if window:
        y *= np.outer(np.hanning(y.shape[1]), np.hanning(y.shape[2]))
    return np.abs(np.fft.fft2(y)) ** 2


def azimuthal_profiles(images: np.ndarray) -> np.ndarray:
    """Durall et al.'s 1-D spectra: power summed over the ring of each integer radius 1 ... S/2-1
    (cycles per image), normalised to unit AC power, in dB: [N, S/2-1]."""
    power = _power(images, window=False)
    size = power.shape[1]
    freq = np.fft.fftfreq(size) * size
    radius = np.rint(np.hypot(freq[:, None], freq[None, :])).astype(int)
    rings = np.stack([np.bincount(radius.ravel(), weights=p.ravel(), minlength=size)[1:size // 2]
                      for p in power])
    rings /= rings.sum(axis=1, keepdims=True) + 1e-30
    return 10.0 * np.log10(rings + 1e-30)


def checkerboard_db(images: np.ndarray) -> np.ndarray:
    """Per image: 10 log10 of the mean, over the upsampling frequencies (every nonzero multiple
    of size / max(CHECKER_PERIODS) on both axes), of the power there over the median power of the
    5x5 frequencies around it."""
    power = _power(images, window=True)
    size = power.shape[1]
    step = size // max(CHECKER_PERIODS)
    peaks = [(u, v) for u in range(0, size, step) for v in range(0, size, step) if (u, v) != (0, 0)]
    ring = [(du, dv) for du in range(-2, 3) for dv in range(-2, 3) if (du, dv) != (0, 0)]
    ratios = []
    for u, v in peaks:
        around = np.stack([power[:, (u + du) % size, (v + dv) % size] for du, dv in ring], axis=1)
        ratios.append(power[:, u, v] / (np.median(around, axis=1) + 1e-12))
    return 10.0 * np.log10(np.mean(ratios, axis=0) + 1e-12)


def ssim_luminance(photos: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """tf.image.ssim (Wang et al. 2004's constants) of BT.601 luminance, per pair: [N]."""
    import tensorflow as tf

    a = tf.constant(luminance(photos)[..., None], tf.float32)
    b = tf.constant(luminance(translations)[..., None], tf.float32)
    return tf.image.ssim(a, b, max_val=255.0).numpy().astype(np.float64)


# ---- the card ----

def _even_counts(total: int, images: int) -> np.ndarray:
    """`total` draws spread over `images` as evenly as possible."""
    return np.full(images, total // images) + (np.arange(images) < total % images)


class Descriptors:
    """What the card needs of one set of uint8 [N, S, S, 3] images, drawn once: `count` random
    neighbourhoods per pyramid level (spread evenly over the images), PALETTE_PIXELS Lab pixels
    per image, spectra, checkerboard figures, and each image's memorization descriptor."""

    def __init__(self, images: np.ndarray, count: int, rng: np.random.Generator,
                 batch: int = 64):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be [N, S, S, 3], got {images.shape}")
        n, size = len(images), images.shape[1]
        self.size, self.count = size, len(images)
        levels = levels_for(size)
        counts = _even_counts(count, n)
        patches = [[] for _ in range(levels)]
        coarse, profiles, checkerboard = [], [], []
        for start in range(0, n, batch):  # In batches: memory stays bounded for any N.
            part = images[start:start + batch]
            pyramid = laplacian_pyramid(part, levels)
            for level, band in enumerate(pyramid):
                patches[level].append(neighbourhoods(band, counts[start:start + batch], rng))
            coarse.append(np.concatenate([_grid(band) for band in pyramid[-2:]], axis=1))
            profiles.append(azimuthal_profiles(part))
            checkerboard.append(checkerboard_db(part))
        self.levels = [np.concatenate(p) for p in patches]
        self.coarse = np.concatenate(coarse)  # [N, D] memorization descriptors, unnormalised.
        self.profiles = np.concatenate(profiles)
        self.checkerboard = np.concatenate(checkerboard)
        y = rng.integers(0, size, (n, PALETTE_PIXELS))
        x = rng.integers(0, size, (n, PALETTE_PIXELS))
        self.lab = srgb_to_lab(images[np.arange(n)[:, None], y, x].reshape(-1, 3))

    def subset(self, index: np.ndarray, count: int, rng: np.random.Generator) -> "Descriptors":
        """The descriptors of the images `index` (for the floors' halves), `count` neighbourhoods
        per level drawn from theirs."""
        part = object.__new__(Descriptors)
        part.size, part.count = self.size, len(index)
        # Drawn evenly and in image order: image i owns a run of rows.
        owner = np.repeat(np.arange(self.count), _even_counts(len(self.levels[0]), self.count))
        rows = np.flatnonzero(np.isin(owner, index))
        take = rng.choice(rows, size=count, replace=len(rows) < count)
        part.levels = [level[take] for level in self.levels]
        part.coarse = self.coarse[index]
        pixels = np.arange(self.count * PALETTE_PIXELS).reshape(self.count, -1)[index].ravel()
        part.lab = self.lab[pixels]
        part.profiles = self.profiles[index]
        part.checkerboard = self.checkerboard[index]
        return part


def _grid(band: np.ndarray) -> np.ndarray:
    """Each image's memorization descriptor from one pyramid level: every pixel of it (every
    neighbourhood, without overlap counted twice), [N, H*W*3]."""
    return band.reshape(len(band), -1)


def swd_levels(a: Descriptors, b: Descriptors, rng: np.random.Generator) -> list[float]:
    """SWD x 1e3 per level (finest first), each level's descriptors normalised per set."""
    return [1e3 * sliced_wasserstein(_normalised(x), _normalised(y), rng)
            for x, y in zip(a.levels, b.levels)]


def palette_distance(a: Descriptors, b: Descriptors, rng: np.random.Generator,
                     pixels: int) -> float:
    n = min(len(a.lab), len(b.lab), pixels)
    pa = a.lab[rng.choice(len(a.lab), n, replace=False)]
    pb = b.lab[rng.choice(len(b.lab), n, replace=False)]
    # Over the sphere's directions E|d . t| = |t| / 2: x2 makes a uniform colour cast of delta E
    # move the palette by delta E. Evenly spread directions, not random ones: 3-D needs few.
    return 2.0 * sliced_wasserstein(pa, pb, rng, fixed=_PALETTE_DIRECTIONS)


_PALETTE_DIRECTIONS = sphere_directions(PALETTE_DIRECTIONS)


def spectral_distance(a: Descriptors, b: Descriptors) -> float:
    return float(np.abs(a.profiles.mean(axis=0) - b.profiles.mean(axis=0)).mean())


def nearest_distances(a: Descriptors, b: Descriptors, scale: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """For each image of `a`, the RMS difference of normalised descriptors to its nearest
    image of `b`."""
    mean, std = scale
    x, y = (a.coarse - mean) / std, (b.coarse - mean) / std
    squared = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.sqrt(np.clip(squared.min(axis=1), 0.0, None) / x.shape[1])


def _distances(a: Descriptors, b: Descriptors, rng: np.random.Generator, pixels: int) -> dict:
    levels = swd_levels(a, b, rng)
    return {"swd": float(np.mean(levels)), "swd_levels": levels,
            "palette": palette_distance(a, b, rng, pixels), "spectrum": spectral_distance(a, b)}


def _mean_distances(results: list[dict]) -> dict:
    mean = {key: float(np.mean([r[key] for r in results])) for key in ("swd", "palette", "spectrum")}
    mean["swd_levels"] = [float(v) for v in np.mean([r["swd_levels"] for r in results], axis=0)]
    return mean


class Reference:
    """The real paintings' side of the card, computed once (training scores every few epochs).

    The real paintings are split SPLITS times into two disjoint random halves A and B. Every
    distance compares a set of as many images as a half with B: the floor is A against B; a card
    draws that many of the generated images against B. Same image count, same neighbourhood
    count, so a measure and its floor share their sampling noise and bias (SWD of few images is
    biased upwards); both are means over the splits. Memorization compares every generated image
    with the training paintings (default: the real paintings; the floor then is A against B,
    else the real paintings against the training ones)."""

    SPLITS = 4

    def __init__(self, real: np.ndarray, training: np.ndarray | None = None, seed: int = 0,
                 max_generated: int = 1000):
        real = np.asarray(real)
        if len(real) < 4:
            raise ValueError(f"the real paintings are {len(real)} images; the card's floor needs "
                             "at least 4 (two halves of 2)")
        rng = np.random.default_rng(seed)
        self.seed, self.size = seed, real.shape[1]
        self.half = len(real) // 2
        self.patches = self.half * PER_IMAGE
        self.pixels = self.half * PALETTE_PIXELS
        self.max_generated = max_generated
        self.real = Descriptors(real, PER_IMAGE * len(real), rng)
        self.training = self.real if training is None else Descriptors(training, PER_IMAGE, rng)
        coarse = self.training.coarse
        self.scale = (coarse.mean(axis=0), coarse.std() + 1e-6)
        self.halves, floors, memorization = [], [], []
        for _ in range(self.SPLITS):
            order = rng.permutation(len(real))
            first = self.real.subset(order[:self.half], self.patches, rng)
            second = self.real.subset(order[self.half:2 * self.half], self.patches, rng)
            self.halves.append(second)
            floors.append(_distances(first, second, rng, self.pixels))
            memorization.append(np.median(nearest_distances(
                first, second if training is None else self.training, self.scale)))
        self.floor = _mean_distances(floors)
        self.floor["checkerboard"] = float(np.mean(self.real.checkerboard))
        self.floor["memorization"] = float(np.mean(memorization))
        self.floor["ssim"] = None

    def card(self, generated: np.ndarray, photos: np.ndarray | None = None) -> dict:
        """The card of uint8 [N, S, S, 3] `generated` images (S: the real paintings' side), with
        `photos` (the same order and side) for SSIM."""
        generated = np.asarray(generated)
        if generated.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"generated images are {generated.shape[1:]}, the real paintings "
                             f"{self.size}x{self.size}x3: resize one to the other")
        if len(generated) < 2:
            raise ValueError(f"{len(generated)} generated image: the card needs at least 2")
        rng = np.random.default_rng(self.seed + 1)
        if len(generated) > self.max_generated:
            keep = np.sort(rng.choice(len(generated), self.max_generated, replace=False))
            generated = generated[keep]
            photos = None if photos is None else np.asarray(photos)[keep]
        gen = Descriptors(generated, PER_IMAGE * len(generated), rng)
        values = _mean_distances([
            _distances(gen.subset(rng.choice(len(generated), min(self.half, len(generated)),
                                             replace=False), self.patches, rng),
                       half, rng, self.pixels)
            for half in self.halves])
        values["checkerboard"] = float(np.mean(gen.checkerboard))
        values["memorization"] = float(np.median(nearest_distances(gen, self.training, self.scale)))
        values["ssim"] = None if photos is None else float(np.mean(ssim_luminance(photos, generated)))
        values["score"] = float(np.mean([values[k] / self.floor[k]
                                         for k in ("swd", "palette", "spectrum")]))
        values["memorized"] = bool(values["memorization"]
                                   < MEMORIZED_BELOW * self.floor["memorization"])
        return {"measures": values, "floor": self.floor, "generated": len(generated),
                "real": self.real.count, "training": self.training.count, "size": self.size,
                "images_per_distance": self.half, "neighbourhoods_per_level": self.patches}


def format_card(card: dict) -> str:
    """The card as a person reads it: each measure, its floor, and which way is better."""
    m, floor = card["measures"], card["floor"]
    lines = [f"quality card: {card['generated']} generated against {card['real']} real paintings "
             f"({card['training']} training paintings), {card['size']} px; floor: the same "
             "measure between two halves of the real paintings"]
    for key, what, better in MEASURES:
        if m.get(key) is None:
            lines.append(f"  {what:<72} {'n/a (no --photos)':>10}")
            continue
        shown = f"{m[key]:10.3f}"
        base = floor.get(key)
        lines.append(f"  {what:<72} {shown}  floor {base:8.3f}  ({better} is better)"
                     if base is not None else f"  {what:<72} {shown}  ({better} is better)")
    levels = ", ".join(f"{card['size'] >> i}px {v:.1f}" for i, v in enumerate(m["swd_levels"]))
    lines.append(f"  SWD by level: {levels}")
    lines.append(f"  score (mean of SWD, palette, spectrum over their floors; 1 = as real as the "
                 f"real paintings): {m['score']:.3f}"
                 + ("   MEMORIZED: median nearest distance under half the floor's" if m["memorized"]
                    else ""))
    return "\n".join(lines)

"""Every hyperparameter of monet_tf, documented in one place.

Experiment files in `configs/` start from `base_config()` and override what they change; any
field can be overridden on the command line (`--config.train.epochs=5`). The resolved config is
saved beside the checkpoints as `config.json`.
"""

import difflib
import re
from typing import Any

import ml_collections

# The names a field chooses from. The factories keyed by them (models/, runtime/tf_strategy) take
# them from here, so a config is checked, and a mistake named, without importing Keras.
KINDS = ("cyclegan", "cut", "fastcut", "dcgan")  # model.kind
# model.generator: the reference's names; any resnet_<n>blocks (n >= 1) builds too (the tests
# use resnet_2blocks).
GENERATORS = ("resnet_6blocks", "resnet_9blocks", "unet_256", "unet_128")
# Conv2DTranspose | nearest-neighbour resize + conv | conv + depth-to-space (sub-pixel).
UPSAMPLES = ("transpose", "resize", "subpixel")
INSTANCE_NORMS = ("group_norm", "one_pass")  # monet_tf.models.layers.instance_norm
REFLECT_PADDINGS = ("pad", "gather")  # monet_tf.models.layers.ReflectionPadding2D
CRITICS = ("patchgan",)  # model.critic
GAN_LOSSES = ("lsgan", "bce", "hinge")  # loss.gan
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")  # loss.diffaugment, comma-separated
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")  # train.mixed_precision
_RESNET = re.compile(r"resnet_([1-9][0-9]*)blocks")


def resnet_blocks(generator: str) -> int | None:
    """n for resnet_<n>blocks, None for another name."""
    match = _RESNET.fullmatch(generator)
    return int(match.group(1)) if match else None


def check_generator(name: str) -> None:
    if name not in GENERATORS and resnet_blocks(name) is None:
        raise ValueError(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)} "
                         "(or resnet_<n>blocks for n residual blocks)")


def generator_multiple(name: str) -> int:
    """H and W of the generator's input must be multiples of this."""
    check_generator(name)
    if name.startswith("resnet"):
        return 4
    return 256 if name == "unet_256" else 128


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # Seeds the data order, augmentation, weight init and the training step's RNG.

    c.data = ml_collections.ConfigDict()
    # A Kaggle-layout folder (monet_tfrec/ + photo_tfrec/, or monet_jpg/ + photo_jpg/). Empty: the
    # mounted /kaggle/input/gan-getting-started when present, else the bundled tfrecords/sample.
    c.data.data_dir = ""
    # Explicit sources override data_dir per domain: a TFRecord directory or glob (local or gs://),
    # a folder of JPEG/PNG files (searched recursively), or "tfds:cycle_gan/monet2photo".
    c.data.monet = ""
    c.data.photo = ""
    c.data.image_size = 256  # Training resolution; images of any size are resized to it.
    c.data.jitter = True  # Random jitter: upscale by jitter_scale, then random-crop image_size.
    c.data.jitter_scale = 1.12  # 256 -> 286 as in the CycleGAN paper.
    c.data.flip = True  # Random horizontal flip.
    c.data.shuffle_buffer = 2048  # Per domain; both domains are shuffled and repeated separately.
    c.data.steps_per_epoch = 0  # 0: one pass over the training photos (dcgan: paintings) per epoch.
    c.data.heldout_fraction = 0.02  # Photos held out of training (chosen by name) for grids/scores.
    c.data.min_image_size = 64  # Smaller images are bad input.
    c.data.skip_bad_records = False  # True: skip undecodable records and report the count.
    c.data.cache = True  # Cache decoded images in memory (the competition data fits easily).

    c.model = ml_collections.ConfigDict()
    # The model family (monet_tf/models/families.py): cyclegan (two generators, two critics,
    # cycle loss) | cut | fastcut (one generator, one critic, PatchNCE: Park et al. 2020) |
    # dcgan (noise -> painting, trained on the paintings alone; no photo_to_monet).
    c.model.kind = "cyclegan"
    # Translators (cyclegan, cut, fastcut; CUT needs a ResNet):
    c.model.generator = "resnet_9blocks"  # resnet_<n>blocks (6, 9) | unet_256 | unet_128
    c.model.ngf = 64  # Generator width (filters of the first conv).
    # ResNets: transpose | resize (nearest-neighbour resize + conv) | subpixel (conv to 4x the
    # channels + depth-to-space, ICNR init). U-Nets: transpose.
    c.model.upsample = "transpose"
    c.model.dropout = 0.0  # U-Net decoder dropout rate (pix2pix uses 0.5).
    c.model.critic = "patchgan"
    c.model.ndf = 64  # Critic width.
    c.model.critic_layers = 3  # 3 layers: 70x70 receptive field.
    c.model.critic_noise = 0.0  # Std of Gaussian noise added to critic inputs (0: off).
    c.model.spectral_norm = False  # Spectral normalisation on the critic's convolutions.
    c.model.norm_epsilon = 1e-5  # Instance norm epsilon (PyTorch's default, not Keras' 1e-3).
    # How instance norm and reflection padding are computed; the choices give equal results
    # (a checkpoint of one restores into the other) as different XLA programs: group_norm
    # (keras GroupNormalization(groups=-1)) | one_pass (one float32 pass for both moments);
    # pad (ops.pad reflect) | gather (mirrored indices, fusable with the producer).
    c.model.instance_norm = "group_norm"
    c.model.reflect_padding = "pad"
    # dcgan only: the length of noise_to_monet's standard normal noise vector, and its channels
    # at the 4x4 start, halved at each doubling of the side down to model.ngf.
    c.model.latent_dim = 128
    c.model.dcgan_width = 512

    c.loss = ml_collections.ConfigDict()
    c.loss.gan = "lsgan"  # lsgan | bce | hinge
    c.loss.cycle_weight = 10.0  # lambda of the cycle-consistency L1 (cyclegan).
    c.loss.identity_weight = 0.5  # Identity L1 weight, as a fraction of cycle_weight (cyclegan).
    c.loss.pool_size = 50  # Image history pool per critic (0: off; cyclegan only).
    c.loss.diffaugment = ""  # Comma list of color,translation,cutout (empty: off).
    # cut / fastcut only (the reference's CUT_mode defaults where "auto" or 0):
    c.loss.gan_weight = 1.0  # lambda_GAN.
    c.loss.nce_weight = 0.0  # lambda_NCE; 0: the kind's (cut 1, fastcut 10).
    c.loss.nce_identity = "auto"  # Identity NCE on real paintings: auto (cut on, fastcut off).
    # Flip equivariance: a flipped photo's translation, flipped back, must match the photo's
    # patches: auto (fastcut on, cut off) | true | false.
    c.loss.nce_flip_equivariance = "auto"
    # Generator layers PatchNCE compares (the reference's ResNet layers 0,4,8,12,16), by name:
    # padded_input, down_1, down_2, block_1 ... block_9.
    c.loss.nce_layers = "padded_input,down_1,down_2,block_1,block_5"
    c.loss.nce_patches = 256  # Patches sampled per layer and image (negatives: the others).
    c.loss.nce_units = 256  # Width of each layer's 2-layer MLP projection head.
    c.loss.nce_temperature = 0.07  # tau.

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 2e-4
    c.optim.beta_1 = 0.5
    c.optim.beta_2 = 0.999
    c.optim.epsilon = 1e-7  # Adam's epsilon (Keras' default; PyTorch's is 1e-8).

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 1  # Per replica; the global batch is batch_size x replicas.
    c.train.epochs = 100  # Epochs at constant learning rate...
    c.train.decay_epochs = 100  # ...then epochs of linear decay to zero.
    # Total training steps; > 0 replaces epochs/decay_epochs (the last epoch may be partial):
    # the learning rate is constant for (1 - decay_fraction) of the steps, then decays to zero.
    c.train.steps = 0
    c.train.decay_fraction = 0.5
    c.train.steps_per_execution = 1  # Steps per compiled call (raise it on TPU).
    # XLA-compile the training step: true | false | auto (XLA on one GPU; off on CPU-only hosts,
    # where it is slower). Never under Mirrored/multi-worker strategies (keras#21366, #19005);
    # under TPUStrategy, and always on JAX, the step is one XLA program anyway.
    c.train.jit_compile = "auto"
    # auto | float32 | mixed_bfloat16 | mixed_float16. auto: mixed_bfloat16 on TPU and on GPUs
    # of compute capability >= 8.0; mixed_float16 with dynamic loss scaling on 7.x GPUs (T4,
    # V100; TensorFlow only); on a CPU whichever of float32 and mixed_bfloat16 ran a probe of
    # the generator's layers faster there (monet_tf.models.precision_probe: measured once per
    # machine, cached); else float32.
    c.train.mixed_precision = "auto"
    c.train.checkpoint_every = 1  # Epochs between checkpoints (one is always written at the end).
    # Wall-clock limit for training in this process, e.g. "4h30m", "90m", "600s" (empty: none).
    # Training stops before an epoch that would not fit (judged by the last epoch's time) or at
    # the step the limit passes, then saves and exports as usual. Rerun to continue.
    c.train.time_budget = ""
    c.train.keep_checkpoints = 3
    c.train.sample_every = 1  # Epochs between sample grids (0: off).
    c.train.num_samples = 4  # Held-out images per domain in the sample grid.
    c.train.deterministic = False  # tf.config.experimental.enable_op_determinism().
    c.train.demo_images = 4  # Photos translated into <workdir>/demo/ at the end.

    # Scores every eval.every epochs on held-out photos: the quality card (no pretrained network:
    # monet_tf/scoring/quality.py) and, with InceptionV3 weights, MiFID. export/best keeps the
    # best generator by MiFID, else by the card's score (README: the rule).
    c.eval = ml_collections.ConfigDict()
    c.eval.every = 0  # Epochs between scores (0: off).
    c.eval.num_images = 1000  # Held-out photos translated and scored; paintings carded against.
    c.eval.batch_size = 32
    # Local InceptionV3 .h5 for MiFID (it must exist); empty: Keras' ImageNet weights when they
    # can be had (cached or downloaded), else the quality card alone.
    c.eval.inception_weights = ""

    # The Kaggle submission written at the end of training: every photo of the data's photo
    # source through photo_to_monet (the best by MiFID when scores are on, else the last), on the
    # run's devices, into a zip of 256x256 JPEGs (dcgan: submission.count generated paintings).
    c.submission = ml_collections.ConfigDict()
    # "": none; "auto": /kaggle/working/images.zip inside a Kaggle notebook, else none; or a path.
    c.submission.path = ""
    c.submission.batch_size = 16  # Photos per device per call.
    c.submission.allow_any_count = False  # Kaggle wants 7,000-10,000 images; True: any count.
    # dcgan only (it translates no photos): paintings generated from noise into the zip.
    c.submission.count = 7000

    # What a config assumes about the hardware it is sized for, for the plan the run prints
    # (and --dry_run): time and memory of the full run. Measured figures replace guesses.
    c.estimate = ml_collections.ConfigDict()
    c.estimate.devices = 1  # Devices (chips / GPUs) the batch size is meant for.
    # A TPU slice of monet_tf/tpus.py (v5e-8, ...) to plan for: its chips replace `devices`, and
    # training runs at peak_fraction of its bfloat16 peak over XLA:TPU's FLOPs per pair
    # (flops_per_pair, from bench/tpu_sizing.py; `--dry_run --compile_for` counts them afresh).
    c.estimate.accelerator = ""
    c.estimate.flops_per_pair = 0.0
    c.estimate.peak_fraction = 0.3  # Of the bf16 peak (README, "Compiled for the TPU": why 30%).
    c.estimate.pairs_per_second = 0.0  # Without an accelerator (GPUs): throughput (0: unknown).
    c.estimate.images_per_second = 0.0  # Translation throughput for the submission (0: unknown).
    c.estimate.photos = 7038  # Photos per epoch and to translate: the competition's photo_tfrec.
    c.estimate.limit = "5h"  # The wall-clock limit the whole job must fit (a Kaggle notebook's).

    c.wandb = ml_collections.ConfigDict()
    c.wandb.enabled = False
    c.wandb.project = "monet_tf"
    c.wandb.entity = ""
    c.wandb.run_name = ""
    return c


# ---- the fields by name, for messages that name one -------------------------------------------

def flatten(tree: dict, prefix: str = ""):
    """(dotted field, value) of every leaf of a config's dict: ("train.epochs", 100), ..."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def known_fields() -> list[str]:
    return [field for field, _ in flatten(base_config().to_dict())]


def flag(field: str, value: Any) -> str:
    """How a user sets this value: --config.train.lr=0.1."""
    shown = "''" if value == "" else str(value).lower() if isinstance(value, bool) else value
    return f"--config.{field}={shown}"


def unknown_field_message(field: str, value: Any = None) -> str:
    """`--config.<field>: there is no such field; did you mean --config.<nearest>?`"""
    near = difflib.get_close_matches(field, known_fields(), n=1, cutoff=0.6)
    hint = f"did you mean --config.{near[0]}?" if near else "see monet_tf/config.py for every field"
    shown = f"--config.{field}" if value is None else flag(field, value)
    return f"{shown}: there is no such field; {hint}"


def apply_overrides(cfg: ml_collections.ConfigDict, items) -> None:
    """FIELD=VALUE strings (what the benches take as --set / --against) onto cfg, each value
    read as the field's own type; ValueError naming the item when it does not fit."""
    for item in items:
        field, sep, value = item.partition("=")
        section, _, name = field.partition(".")
        if not sep or section not in cfg or name not in cfg[section]:
            raise ValueError(unknown_field_message(field) if sep else
                             f"{item!r}: expected FIELD=VALUE, e.g. model.upsample=subpixel")
        current = cfg[section][name]
        try:
            cfg[section][name] = (value.lower() in ("1", "true", "yes")
                                  if isinstance(current, bool) else type(current)(value))
        except ValueError:
            raise ValueError(f"{flag(field, value)}: expected a {type(current).__name__}") from None

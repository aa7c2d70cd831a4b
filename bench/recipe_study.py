r"""Which recipe paints best for the same CPU time: a study at 128 px on this machine's CPU.

    python bench/recipe_study.py                        # split, train every recipe, score, sheet
    python bench/recipe_study.py --stage=train --recipes=unet128,fastcut
    python bench/recipe_study.py --stage=extend --recipes=unet128 --cpu_minutes=120 --cores=0,1
    python bench/recipe_study.py --stage=score          # the card and contact sheets only

Stages (each reruns safely: a trained recipe is not trained again, a run stopped part-way resumes):

- split: the competition data (--data_dir, Kaggle's layout) into <out>/data: the paintings whose
  name hashes into the lowest --heldout_paintings fraction (monet_tf's held-out rule,
  `data.validate`) become monet_heldout/ (their JPEG bytes), the rest monet_train/ (TFRecords);
  the photos monet_tf's own split holds out of training (--heldout_photos, the run's
  data.heldout_fraction) are written to photo_heldout/ the same way. Nothing here is committed:
  the photos are not ours to publish.
- train: each recipe of --recipes in its own process pinned to one core (`taskset`), --parallel
  at a time, for --cpu_minutes of that process's CPU time (user + system, read from /proc, the
  start-up's data scan and caching included): then SIGTERM, which monet_tf answers by saving a
  checkpoint at the step it is on. Same CPU time, not the same steps: what a recipe's step costs
  is part of the recipe.
- score: each trained recipe exported (`monet-tf export`), the held-out photos translated
  (`monet-tf predict`) and carded against the held-out paintings (`monet-tf quality`, memorization
  against the training paintings); <out>/study.json and a Markdown table; contact sheets of the
  bundled sample's 8 photographs (public, never trained on) through every recipe.
- extend: train --recipes further (resume) for --cpu_minutes more on --cores (the front page's
  long run; --eval_every cards it during training), then score again.
- table: study.json as a Markdown table.

The recipes share a base (BASE: 128 px on the full data, batch 1, float32, lr 2e-4 constant over
the budget, PatchGAN ndf 64, DiffAugment color,translation,cutout) and differ in RECIPES below.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/gan-getting-started"
PYTHON = sys.executable

# Shared by every recipe (on top of configs/demo.py as it was when the study ran: every field the
# demo has set since is set here).
BASE = {
    "model.kind": "cyclegan",
    "loss.diffaugment": "color,translation,cutout",
    "data.image_size": 128,
    "data.shuffle_buffer": 2048,
    "data.steps_per_epoch": 200,  # An epoch: a checkpoint, a sample grid; ~5 CPU-minutes.
    "model.ndf": 64,
    "train.steps": 2_000_000,  # The budget ends training long before the decay would start.
    "train.epochs": 4,  # Unused beside train.steps; the demo's values when the study ran.
    "train.decay_epochs": 2,
    "train.decay_fraction": 0.5,
    "train.mixed_precision": "float32",
    "train.keep_checkpoints": 2,
    "train.demo_images": 4,
}

# name: (what it is, its overrides of BASE).
RECIPES = {
    "resnet6_transpose": ("ResNet-6 ngf 32, transposed convolutions (today's demo recipe)", {
        "model.generator": "resnet_6blocks", "model.ngf": 32, "model.upsample": "transpose"}),
    "resnet6_resize": ("ResNet-6 ngf 32, nearest resize + convolution", {
        "model.generator": "resnet_6blocks", "model.ngf": 32, "model.upsample": "resize"}),
    "unet128": ("U-Net 128 ngf 64, dropout 0.5 (the Kaggle TPU tutorial's generator)", {
        "model.generator": "unet_128", "model.ngf": 64, "model.dropout": 0.5}),
    "fastcut": ("FastCUT, ResNet-6 ngf 32 (Park et al. 2020: PatchNCE, no cycle)", {
        "model.kind": "fastcut", "model.generator": "resnet_6blocks", "model.ngf": 32}),
}
NO_AUGMENT = "_noaug"  # <recipe>_noaug: that recipe without DiffAugment.


def recipe(name: str) -> tuple[str, dict]:
    if name.endswith(NO_AUGMENT) and name[:-len(NO_AUGMENT)] in RECIPES:
        what, overrides = RECIPES[name[:-len(NO_AUGMENT)]]
        return what + ", without DiffAugment", {**overrides, "loss.diffaugment": ""}
    if name not in RECIPES:
        sys.exit(f"--recipes: no recipe {name!r}; one of {', '.join(RECIPES)} (or <name>"
                 f"{NO_AUGMENT})")
    return RECIPES[name]


def _split(args) -> None:
    """monet_train/ (TFRecords), monet_heldout/ and photo_heldout/ (JPEG bytes) under <out>/data,
    by monet_tf's held-out rule (the lowest-hashing names): for the photos the very split that
    training makes with data.heldout_fraction=--heldout_photos."""
    import tensorflow as tf

    from monet_tf import data
    from monet_tf.data.validate import heldout_threshold, name_hash

    out = pathlib.Path(args.out) / "data"
    done = out / "split.json"
    if done.exists():
        return
    sources = data.find_sources(str(args.data_dir))
    counts = {}
    for domain, fraction in (("monet", args.heldout_paintings), ("photo", args.heldout_photos)):
        examples = [tf.train.Example.FromString(record.numpy())
                    for record in tf.data.TFRecordDataset(sources[domain].files)]
        names = [e.features.feature["image_name"].bytes_list.value[0] for e in examples]
        below, _ = heldout_threshold(names, fraction)
        held = name_hash(tf.constant(names)).numpy() < below
        held_dir = out / f"{domain}_heldout"
        held_dir.mkdir(parents=True, exist_ok=True)
        for example, name, is_held in zip(examples, names, held):
            if is_held:
                (held_dir / f"{name.decode()}.jpg").write_bytes(
                    example.features.feature["image"].bytes_list.value[0])
        if domain == "monet":
            (out / "monet_train").mkdir(exist_ok=True)
            with tf.io.TFRecordWriter(str(out / "monet_train" / "monet_train.tfrec")) as writer:
                for example, is_held in zip(examples, held):
                    if not is_held:
                        writer.write(example.SerializeToString())
        counts[domain] = {"heldout": int(held.sum()), "train": int((~held).sum())}
        print(f"split {domain}: {counts[domain]}", flush=True)
    done.write_text(json.dumps(counts, indent=1))


def _cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _train_command(args, name: str) -> list[str]:
    _, overrides = recipe(name)
    data_dir = pathlib.Path(args.out) / "data"
    settings = {**BASE, **overrides, "data.monet": str(data_dir / "monet_train"),
                "data.photo": str(pathlib.Path(args.data_dir) / "photo_tfrec"),
                "data.heldout_fraction": args.heldout_photos, "seed": args.seed}
    if args.eval_every:  # The quality card every N epochs on the held-out photos.
        settings.update({"eval.every": args.eval_every, "eval.num_images": 1000})
    return [PYTHON, str(ROOT / "run_train.py"), f"--config={ROOT / 'configs/demo.py'}",
            f"--workdir={pathlib.Path(args.out) / name}",
            *[f"--config.{key}={value}" for key, value in settings.items()]]


def _state(args, name: str) -> dict:
    path = pathlib.Path(args.out) / name / "study_state.json"
    return json.loads(path.read_text()) if path.exists() else {"cpu_seconds": 0.0, "wall": 0.0}


def _train(args, names: list[str], cpu_minutes: float, cores: list[str]) -> None:
    """Runs `names` pinned one per core, `len(cores)` at a time, until each has used
    cpu_minutes more of CPU time."""
    waiting = list(names)
    running: dict[str, tuple] = {}
    while waiting or running:
        while waiting and len(running) < len(cores):
            name = waiting.pop(0)
            state = _state(args, name)
            if state.get("target", 0) and not args.more and state["cpu_seconds"] >= state["target"]:
                print(f"{name}: trained ({state['cpu_seconds']:.0f} CPU-s)", flush=True)
                continue
            target = state["cpu_seconds"] + cpu_minutes * 60
            free = [c for c in cores if c not in {r[1] for r in running.values()}][0]
            log = open(pathlib.Path(args.out) / f"{name}.log", "a")
            process = subprocess.Popen(["taskset", "-c", free, *_train_command(args, name)],
                                       stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            print(f"{name}: started on core(s) {free}, to {target:.0f} CPU-s", flush=True)
            running[name] = (process, free, state, target, time.time(), False)
        time.sleep(5)
        for name, (process, core, state, target, started, stopping) in list(running.items()):
            try:
                used = state["cpu_seconds"] + _cpu_seconds(process.pid)
            except (FileNotFoundError, ProcessLookupError):
                used = None
            if process.poll() is None:
                if used is not None and used >= target and not stopping:
                    process.send_signal(signal.SIGTERM)
                    running[name] = (process, core, state, target, started, True)
                    state["cpu_seconds_at_stop"] = used
                elif used is not None:
                    state["last"] = used
                continue
            state = {**state, "cpu_seconds": state.get("cpu_seconds_at_stop", state.get("last", 0)),
                     "wall": state["wall"] + time.time() - started, "target": target,
                     "exit": process.returncode}
            state.pop("cpu_seconds_at_stop", None)
            state.pop("last", None)
            (pathlib.Path(args.out) / name / "study_state.json").write_text(json.dumps(state))
            print(f"{name}: stopped, exit {process.returncode}, {state['cpu_seconds']:.0f} CPU-s",
                  flush=True)
            del running[name]


def _run(command: list[str]) -> str:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def _steps(workdir: pathlib.Path) -> int:
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    if latest is None:
        return 0
    names = [n for n, _ in tf.train.list_variables(latest) if "iter" in n and "optimizer" in n]
    return max(int(tf.train.load_variable(latest, n)) for n in names)


def _score(args, names: list[str], suffix: str = "") -> None:
    """Exports, translates and cards each recipe; `suffix` keeps an extended run's results
    (study.json's "<recipe><suffix>", its folders *<suffix>) beside the study's."""
    out = pathlib.Path(args.out)
    data_dir = out / "data"
    results = json.loads((out / "study.json").read_text()) if (out / "study.json").exists() else {}
    monet_tf = [PYTHON, "-m", "monet_tf"]
    for name in names:
        workdir = out / name
        if not (workdir / "checkpoints").exists():
            continue
        export = workdir / f"study_export{suffix}"
        _run([*monet_tf, "export", f"--workdir={workdir}", f"--output={export}"])
        model = export / "photo_to_monet"
        translated = workdir / f"heldout_translated{suffix}"
        _run([*monet_tf, "predict", f"--model={model}", f"--input={data_dir / 'photo_heldout'}",
              f"--output={translated}", "--image_size=128"])
        card = json.loads(_run([*monet_tf, "quality", f"--generated={translated}",
                                f"--real={data_dir / 'monet_heldout'}",
                                f"--training={data_dir / 'monet_train'}",
                                f"--photos={data_dir / 'photo_heldout'}", "--json"]))
        _run([*monet_tf, "predict", f"--model={model}",
              f"--input={ROOT / 'tfrecords/sample/photo_tfrec'}",
              f"--output={workdir / f'sample_translated{suffix}'}", "--image_size=128"])
        state = _state(args, name)
        results[name + suffix] = {"what": recipe(name)[0], "cpu_seconds": state["cpu_seconds"],
                                  "wall_seconds": state["wall"], "steps": _steps(workdir),
                                  "card": card}
        print(f"{name + suffix}: {results[name + suffix]['steps']} steps, card score "
              f"{card['measures']['score']:.3f}", flush=True)
    (out / "study.json").write_text(json.dumps(results, indent=1))


SHEET_PHOTOS = ("astronaut_0", "chelsea_0", "coffee_0", "rocket_0", "hubble_deep_field_0",
                "grass_0", "gravel_0", "grace_hopper_0")  # The sample's 8 photographs, whole.


def contact_sheet(args, names: list[str], path: pathlib.Path, cell: int = 128,
                  suffix: str = "") -> None:
    """Columns: the bundled sample's 8 photographs; rows: the photos, then each recipe's
    translations (<out>/<recipe>/sample_translated<suffix>), its name on the left."""
    from PIL import Image, ImageDraw

    import tensorflow as tf

    from monet_tf.data import read_image_files

    photos = {name.numpy().decode(): image.numpy() for name, image in
              read_image_files(str(ROOT / "tfrecords/sample/photo_tfrec"))}
    folder = f"sample_translated{suffix}"
    names = [n for n in names if (pathlib.Path(args.out) / n / folder).is_dir()]
    label = 150
    sheet = Image.new("RGB", (label + cell * len(SHEET_PHOTOS), cell * (len(names) + 1)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, title in enumerate(["photo", *names]):
        draw.text((4, row * cell + cell // 2 - 6), title, fill="black")
    for column, photo in enumerate(SHEET_PHOTOS):
        x = label + column * cell
        small = tf.image.resize(photos[photo], (cell, cell), antialias=True).numpy()
        sheet.paste(Image.fromarray(small.round().clip(0, 255).astype("uint8")), (x, 0))
        for row, name in enumerate(names, start=1):
            image = Image.open(pathlib.Path(args.out) / name / folder / f"{photo}.jpg")
            sheet.paste(image.convert("RGB").resize((cell, cell)), (x, row * cell))
    sheet.save(path, quality=90)
    print(f"contact sheet: {path}", flush=True)


def table(args) -> None:
    """study.json as the Markdown table of docs/study.md, the floor last."""
    results = json.loads((pathlib.Path(args.out) / "study.json").read_text())
    print("| recipe | steps | CPU-min | score | SWD x1e3 | palette (dE) | spectrum (dB) | "
          "checkerboard (dB) | SSIM | memorization |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, result in sorted(results.items(), key=lambda r: r[1]["card"]["measures"]["score"]):
        m = result["card"]["measures"]
        print(f"| `{name}`: {result['what']} | {result['steps']:,} | "
              f"{result['cpu_seconds'] / 60:.0f} | {m['score']:.2f} | {m['swd']:.1f} | "
              f"{m['palette']:.2f} | {m['spectrum']:.2f} | {m['checkerboard']:.2f} | "
              f"{m['ssim']:.3f} | {m['memorization']:.3f} |")
    floor = next(iter(results.values()))["card"]["floor"]
    print(f"| floor: held-out paintings, half against half | | | 1.00 | {floor['swd']:.1f} | "
          f"{floor['palette']:.2f} | {floor['spectrum']:.2f} | {floor['checkerboard']:.2f} | | "
          f"{floor['memorization']:.3f} |")
    for name in results:  # Runs carded during training (--eval_every): the card by epoch.
        path = pathlib.Path(args.out) / name / "metrics.csv"
        if not path.exists():
            continue
        with open(path) as f:
            rows = [r for r in csv.DictReader(f) if r.get("card_score", "NA") not in ("NA", "nan")]
        if not rows:
            continue
        print(f"\n`{name}` during training, carded against its 240 training paintings:\n")
        print("| epoch | steps | score | SWD x1e3 | palette (dE) | spectrum (dB) | "
              "checkerboard (dB) | SSIM | memorization |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            epoch = int(r["epoch"]) + 1
            print(f"| {epoch} | {epoch * BASE['data.steps_per_epoch']:,} | "
                  + " | ".join(f"{float(r['card_' + k]):.{d}f}" for k, d in (
                      ("score", 2), ("swd", 1), ("palette", 2), ("spectrum", 2),
                      ("checkerboard", 2), ("ssim", 3), ("memorization", 3))) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="all", choices=["all", "split", "train", "score",
                                                           "extend", "table"])
    parser.add_argument("--recipes", default="resnet6_transpose,resnet6_resize,unet128,fastcut")
    parser.add_argument("--data_dir", default=str(DATA))
    parser.add_argument("--out", default=str(ROOT / "runs/study"))
    parser.add_argument("--cpu_minutes", type=float, default=20.0)
    parser.add_argument("--cores", default="0,1", help="Cores to pin runs to, one run each "
                        "(extend: all of them for one run, e.g. 0,1 or 0-1).")
    parser.add_argument("--heldout_paintings", type=float, default=0.2)
    parser.add_argument("--heldout_photos", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval_every", type=int, default=0, help="Card the held-out photos' "
                        "translations every N epochs (200 steps) during training (0: off).")
    parser.add_argument("--more", action="store_true", help="Train again for --cpu_minutes even "
                        "when a recipe has reached its budget.")
    args = parser.parse_args()
    if not pathlib.Path(args.data_dir, "monet_tfrec").is_dir():
        sys.exit(f"--data_dir={args.data_dir}: no monet_tfrec/ there; give the competition data "
                 "in Kaggle's layout")
    if args.stage == "table":
        return table(args)
    names = args.recipes.split(",")
    for name in names:
        recipe(name)
    if args.stage in ("all", "split", "train", "extend"):
        _split(args)
    if args.stage in ("all", "train"):
        _train(args, names, args.cpu_minutes, args.cores.split(","))
    if args.stage == "extend":
        args.more = True
        _train(args, names, args.cpu_minutes, [args.cores])
    if args.stage in ("all", "score"):
        _score(args, names)
        contact_sheet(args, names, pathlib.Path(args.out) / "contact_sheet.jpg")
    if args.stage == "extend":
        _score(args, names, suffix="_extended")
        contact_sheet(args, names, pathlib.Path(args.out) / "contact_sheet_extended.jpg",
                      suffix="_extended")


if __name__ == "__main__":
    main()

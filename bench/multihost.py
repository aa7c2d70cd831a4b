r"""Training steps/s of 2 processes x 1 device against 1 process x 2 devices, on this machine, in
one run: what the collectives between processes cost (gloo over 127.0.0.1 on JAX, gRPC on
TensorFlow's MultiWorkerMirroredStrategy) against the same collectives inside one process.

    python bench/multihost.py                       # both backends, the defaults below
    python bench/multihost.py --backend jax --rounds 5 --steps 10 --image_size 32 --ngf 8

Both sides are the same model (`build_model` on base_config() with --image_size, --generator,
--ngf, float32, seed 0) trained by Keras' `fit` on the same fixed global batch of 2 pairs, each
process feeding its own rows of it (`Runtime.host_batches`), as `run_train.py` does. The sides
stay up as worker processes (this script with --serve) and run --steps steps in turn, the order
reversed every round; each block's time is the slowest process's. Prints per side the first
call (trace + compile + one step), steps/s per round and the median, and per backend the line
"ratio 2x1/1x2 R in steps/s". Ports are free ones on 127.0.0.1; nothing leaves the machine.

--serve (a worker): prints one JSON line when ready ({"ready": true, "first_call_s", ...}), then
reads "run N" lines from stdin, runs N steps and prints {"seconds": S}; "quit" or end of input
exits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPO, "monet_tf")) and _REPO not in sys.path:
    sys.path.append(_REPO)  # Run from a checkout; an installed monet_tf comes first.

SIDES = ("1x2", "2x1")  # processes x devices per process


def _flags(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("jax", "tensorflow", "both"), default="both")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--generator", default="resnet_6blocks")
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--serve", action="store_true", help="worker mode (see the docstring)")
    p.add_argument("--devices", type=int, default=1, help="worker: devices of this process")
    return p.parse_args(argv)


def serve(args) -> None:
    from monet_tf.runtime.backend import select_backend

    backend = os.environ["MONET_TF_BENCH_BACKEND"]
    select_backend(backend, "cpu", args.devices)
    import keras
    import numpy as np
    import tensorflow as tf

    from monet_tf.config import base_config
    from monet_tf.models.families import build_model
    from monet_tf.runtime.devices import make_runtime

    runtime = make_runtime("cpu", cpu_replicas=args.devices)
    cfg = base_config()
    cfg.data.image_size, cfg.model.generator = args.image_size, args.generator
    cfg.model.ngf = cfg.model.ndf = args.ngf
    cfg.train.mixed_precision = "float32"
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    global_batch = 2
    with runtime.scope():
        model = build_model(cfg, steps_per_epoch=1000, global_batch_size=global_batch,
                            jit_compile=backend == "jax", replicas=runtime.replicas)
    rng = np.random.default_rng(0)
    shape = (global_batch, args.image_size, args.image_size, 3)
    photo, monet = (rng.uniform(-1, 1, shape).astype("float32") for _ in range(2))
    local = global_batch // runtime.processes
    rows = slice(runtime.process_index * local, (runtime.process_index + 1) * local)
    batches = runtime.host_batches(
        lambda: tf.data.Dataset.from_tensors((photo[rows], monet[rows])).repeat())

    def run(steps: int) -> float:
        started = time.perf_counter()
        model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
        return time.perf_counter() - started

    first = run(1)
    print(json.dumps({"ready": True, "first_call_s": first, "backend": backend,
                      "processes": runtime.processes, "replicas": runtime.replicas}), flush=True)
    for line in sys.stdin:
        if not line.startswith("run "):
            break
        print(json.dumps({"seconds": run(int(line.split()[1]))}), flush=True)
    runtime.leave()


def _start(side: str, backend: str, args) -> list[subprocess.Popen]:
    from monet_tf.runtime.launch import free_ports, process_environments

    processes, devices = (int(n) for n in side.split("x"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("KERAS_BACKEND", "XLA_FLAGS", "TF_CONFIG")
           and not k.startswith("KERAS_DISTRIBUTION")}
    env.update(MONET_TF_BENCH_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [_REPO, env.get("PYTHONPATH")])))
    envs = process_environments(processes, free_ports(processes), env) if processes > 1 else [env]
    command = [sys.executable, os.path.abspath(__file__), "--serve", f"--devices={devices}",
               f"--image_size={args.image_size}", f"--generator={args.generator}",
               f"--ngf={args.ngf}"]
    return [subprocess.Popen(command, env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True) for e in envs]


def _answer(workers) -> list[dict]:
    """Each worker's next JSON line (other lines on their stdout, gloo's, are passed on)."""
    answers = []
    for worker in workers:
        while True:
            line = worker.stdout.readline()
            if not line:
                raise RuntimeError(f"a worker exited (code {worker.wait()}); rerun without "
                                   "stderr=DEVNULL in _start to see why")
            if line.startswith("{"):
                answers.append(json.loads(line))
                break
            print(line, end="", file=sys.stderr)
    return answers


def bench(backend: str, args) -> dict:
    sides = {side: _start(side, backend, args) for side in SIDES}
    try:
        ready = {side: _answer(workers) for side, workers in sides.items()}
        rates = {side: [] for side in SIDES}
        for round_ in range(args.rounds):
            for side in (SIDES if round_ % 2 == 0 else SIDES[::-1]):
                for worker in sides[side]:
                    worker.stdin.write(f"run {args.steps}\n")
                    worker.stdin.flush()
                seconds = max(a["seconds"] for a in _answer(sides[side]))
                rates[side].append(args.steps / seconds)
    finally:
        for workers in sides.values():
            for worker in workers:
                try:
                    worker.stdin.write("quit\n")
                    worker.stdin.close()
                except (BrokenPipeError, ValueError):
                    pass
                try:
                    worker.wait(timeout=120)
                except subprocess.TimeoutExpired:  # Its partner is gone: it waits forever.
                    worker.kill()
    print(f"{backend}: {args.image_size} px, {args.generator}, ngf {args.ngf}, float32, global "
          f"batch 2; {args.rounds} rounds of {args.steps} steps")
    medians = {}
    for side in SIDES:
        medians[side] = statistics.median(rates[side])
        print(f"  {side} (processes x devices): {medians[side]:.3f} steps/s median "
              f"({', '.join(f'{r:.3f}' for r in rates[side])}); first call "
              f"{max(a['first_call_s'] for a in ready[side]):.1f} s")
    ratio = medians["2x1"] / medians["1x2"]
    print(f"{backend}: ratio 2x1/1x2 {ratio:.2f} in steps/s", flush=True)
    return {"medians": medians, "rates": rates, "ratio": ratio}


def main() -> None:
    args = _flags()
    if args.serve:
        serve(args)
        return
    from monet_tf.models.precision_probe import cpu_model

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores", flush=True)
    for backend in (("jax", "tensorflow") if args.backend == "both" else (args.backend,)):
        bench(backend, args)


if __name__ == "__main__":
    main()

"""Runs a few training steps on fixed batches, case after case, on the backend it is told.

  python tests/step_runner.py BACKEND HOST_DEVICES CASES.json

CASES.json is a list of {"name", "devices", "weights_dir", "out", "flags"}; `devices` counts
every process's (a run of several processes: one started by `python -m monet_tf launch`, or with
its environment); flags are
[--kind K] [--pool N] [--diffaugment P] [--batch B] [--steps S] [--nce_layers L] [--nce_patches N]
[--lr LR] [--adam_epsilon E] [--generator G] [--dtype float32|float64]. For each case: loads each network's `<weights_dir>/<name>.weights.h5`
(writing them first when absent), trains S steps of global batch B on batches drawn from a fixed
seed, and saves the per-step losses and the final weights of every network of the model kind
(default cyclegan). devices > 1 on JAX: that many of the HOST_DEVICES under
keras.distribution.DataParallel. One process serves every case of a backend (Keras picks its
backend once per process); the equivalence tests compare the outputs of two cases. With several
processes each feeds its own rows of every batch, and process i > 0 saves to OUT.process<i>.npz.
"""

import argparse
import atexit
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monet_tf.runtime.backend import select_backend  # noqa: E402

SIZE = 32


def main():
    backend, host_devices, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # Registered first, so it runs last: a thread still alive there goes into the interpreter's
    # finalisation, where one coming back from C++ aborts the process (runtime.devices._leave).
    atexit.register(lambda: print("threads at exit:", sorted(
        t.name for t in threading.enumerate() if t is not threading.main_thread()), flush=True))
    select_backend(backend, "cpu", host_devices)
    with open(cases) as f:
        cases = json.load(f)
    for case in cases:
        run_case(backend, case)
        print("case", case["name"], "done", flush=True)


def _case_flags(flags):
    p = argparse.ArgumentParser()
    p.add_argument("--kind", default="cyclegan")
    p.add_argument("--generator", default="resnet_2blocks")
    p.add_argument("--nce_layers", default="")
    p.add_argument("--nce_patches", type=int, default=32)
    p.add_argument("--pool", type=int, default=0)
    p.add_argument("--diffaugment", default="")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    # Adam divides each gradient by its own magnitude (+ epsilon): with Keras' epsilon 1e-7 a
    # gradient that is float noise (instance norm cancels most of some kernels' gradients) moves
    # its weight by a full lr step, in a direction the summation order decides, and the runs
    # drift apart by far more than rounding. epsilon 1e-3 keeps those noise gradients from
    # moving weights while real gradients still move every network by ~lr a step.
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--adam_epsilon", type=float, default=1e-3)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    return p.parse_args(flags)


RUNTIMES = {}


def run_case(backend, case):
    args = _case_flags(case["flags"])
    args.backend, args.devices = backend, case["devices"]
    args.weights_dir, args.out = case["weights_dir"], case["out"]

    import keras
    import numpy as np
    import tensorflow as tf

    from monet_tf.config import base_config
    from monet_tf.models.families import build_model
    from monet_tf.runtime.devices import make_runtime

    # One runtime per device count and process: a second MirroredStrategy over the same
    # devices would reuse the first one's collective keys (conftest says more).
    if args.devices not in RUNTIMES:
        keras.distribution.set_distribution(None)
        RUNTIMES[args.devices] = make_runtime(
            "cpu", cpu_replicas=1 if multi_process(backend) else args.devices)
    runtime = RUNTIMES[args.devices]
    keras.distribution.set_distribution(runtime.distribution)
    assert runtime.replicas == args.devices, runtime
    cfg = base_config()
    cfg.model.kind = args.kind
    cfg.loss.nce_layers = args.nce_layers or "padded_input,down_1,down_2,block_1,block_2"
    cfg.loss.nce_patches = args.nce_patches
    cfg.data.image_size = SIZE
    cfg.model.generator = args.generator
    cfg.model.ngf = 8
    cfg.model.ndf = 8
    cfg.loss.pool_size = args.pool
    cfg.loss.diffaugment = args.diffaugment
    cfg.train.epochs, cfg.train.decay_epochs = 1, 1
    cfg.train.mixed_precision = "float32"
    cfg.optim.lr = args.lr
    cfg.optim.epsilon = args.adam_epsilon
    keras.config.set_floatx(args.dtype)
    keras.config.set_dtype_policy(args.dtype)
    if args.backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", args.dtype == "float64")
    with runtime.scope():
        model = build_model(cfg, steps_per_epoch=args.steps, global_batch_size=args.batch,
                            jit_compile=args.backend == "jax", replicas=runtime.replicas)
    networks = model.NETWORKS
    for name in networks:
        path = os.path.join(args.weights_dir, f"{name}.weights.h5")
        if os.path.exists(path):
            getattr(model, name).load_weights(path)
        else:
            os.makedirs(args.weights_dir, exist_ok=True)
            getattr(model, name).save_weights(path)
    initial = {name: [np.asarray(v.numpy()) for v in getattr(model, name).trainable_variables]
               for name in networks}

    rng = np.random.default_rng(7)
    n = args.steps * args.batch
    photo = rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32").astype(args.dtype)
    monet = rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32").astype(args.dtype)
    # This process's rows of every global batch: process i feeds rows [i * b, (i + 1) * b).
    local = args.batch // runtime.processes
    rows = np.concatenate([np.arange(start + runtime.process_index * local,
                                     start + (runtime.process_index + 1) * local)
                           for start in range(0, n, args.batch)])
    data = runtime.host_batches(lambda: tf.data.Dataset.from_tensor_slices(
        (photo[rows], monet[rows])).batch(local, drop_remainder=True))

    steps = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append({k: float(v) for k, v in logs.items()})

    model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[Record()])
    out = {f"loss/{k}": np.array([s[k] for s in steps]) for k in steps[0]}
    for name in networks:
        for i, v in enumerate(getattr(model, name).trainable_variables):
            out[f"{name}/{i}"] = np.asarray(v.numpy())
            out[f"initial/{name}/{i}"] = initial[name][i]
    out["iterations"] = np.array(int(model.optimizer.iterations.numpy()))
    out["meta"] = np.array([keras.backend.backend(), str(runtime.replicas), str(len(steps))])
    out["processes"] = np.array(runtime.processes)
    np.savez(args.out if runtime.chief else f"{args.out}.process{runtime.process_index}.npz",
             **out)


def multi_process(backend) -> bool:
    from monet_tf.runtime.cluster import from_environment

    return from_environment(backend).multi


if __name__ == "__main__":
    main()

"""Runs a few training steps on fixed batches in its own process, on the backend it is told.

  python tests/step_runner.py BACKEND DEVICES WEIGHTS_DIR OUT.npz [--kind K] [--pool N]
      [--diffaugment P] [--batch B] [--steps S] [--nce_layers L] [--nce_patches N]

Loads each network's `<WEIGHTS_DIR>/<name>.weights.h5` (writing them first when absent), trains S
steps of global batch B on batches drawn from a fixed seed, and saves the per-step losses and the
final weights of every network of the model kind (default cyclegan). DEVICES > 1 on JAX: that many host devices under
keras.distribution.DataParallel. The equivalence tests compare the outputs of two runs.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monet_tf.backend import select_backend  # noqa: E402

SIZE = 32


def main():
    p = argparse.ArgumentParser()
    p.add_argument("backend")
    p.add_argument("devices", type=int)
    p.add_argument("weights_dir")
    p.add_argument("out")
    p.add_argument("--kind", default="cyclegan")
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
    args = p.parse_args()
    select_backend(args.backend, "cpu", args.devices)

    import keras
    import numpy as np
    import tensorflow as tf

    from monet_tf.config import base_config
    from monet_tf.models.families import build_model
    from monet_tf.runtime import make_runtime

    runtime = make_runtime("cpu", cpu_replicas=args.devices)
    assert runtime.replicas == args.devices, runtime
    cfg = base_config()
    cfg.model.kind = args.kind
    if args.nce_layers:
        cfg.loss.nce_layers = args.nce_layers
    cfg.loss.nce_patches = args.nce_patches
    cfg.data.image_size = SIZE
    cfg.model.generator = "resnet_6blocks"
    cfg.model.ngf = 8
    cfg.model.ndf = 8
    cfg.loss.pool_size = args.pool
    cfg.loss.diffaugment = args.diffaugment
    cfg.train.epochs, cfg.train.decay_epochs = 1, 1
    cfg.train.mixed_precision = "float32"
    cfg.optim.lr = args.lr
    cfg.optim.epsilon = args.adam_epsilon
    keras.config.set_dtype_policy("float32")
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
    photo = rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")
    monet = rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((photo, monet)).batch(args.batch, drop_remainder=True)
    if runtime.tf_strategy is not None and args.devices > 1:
        data = runtime.tf_strategy.experimental_distribute_dataset(data)

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
    np.savez(args.out, **out)
    print("backend", keras.backend.backend(), "devices", runtime.replicas, "steps", len(steps))


if __name__ == "__main__":
    main()

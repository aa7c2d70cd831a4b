"""Plants TPU-hostile constructs in CycleGAN's loss maths, one at a time, and runs
monet_tf.training.tpu_compile's command for each, in one process.

  python tests/tpu_plant.py float64,callback,dynamic_shape [tpu_compile flags]

Each is what a CPU or GPU runs without complaint and a TPU program must not hold: a float64 op,
a host callback in the step, a shape that depends on the data. The planted line is marked, so
the test can check that the compiler's message names it. Each plant's output (stdout and stderr)
starts with a line `== PLANT` and ends with `== PLANT exit CODE`, the command's exit code.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monet_tf.runtime.backend import select_backend  # noqa: E402

PLANTS = ("float64", "callback", "dynamic_shape")


def main() -> None:
    plants = sys.argv.pop(1).split(",")
    if not set(plants) <= set(PLANTS):
        raise SystemExit(f"usage: tpu_plant.py {','.join(PLANTS)} [tpu_compile flags]")
    plant = plants[0]
    select_backend("jax", "cpu")
    import jax
    import keras

    from monet_tf.training import tpu_compile
    from monet_tf.models.cyclegan import CycleGAN

    original = CycleGAN.compute_losses

    def planted(self, photo, monet, global_batch):
        terms = dict(original(self, photo, monet, global_batch))
        loss = terms["gen_total_loss"]
        if plant == "float64":
            loss = loss + keras.ops.cast(keras.ops.cast(loss, "float64") * 0, "float32")  # PLANTED
        elif plant == "callback":
            jax.debug.print("generator loss {loss}", loss=loss)  # PLANTED
        else:
            loss = loss + keras.ops.sum(photo[photo > 0]) * 0  # PLANTED
        terms["gen_total_loss"] = loss
        return terms

    CycleGAN.compute_losses = planted
    from absl import app

    def each_plant(argv):
        nonlocal plant
        for plant in plants:
            for stream in (sys.stdout, sys.stderr):
                print(f"== {plant}", file=stream, flush=True)
            try:
                tpu_compile.main(argv)
                code = 0
            except SystemExit as stop:
                code = stop.code
            for stream in (sys.stdout, sys.stderr):
                print(f"== {plant} exit {code}", file=stream, flush=True)

    tpu_compile.define_flags()
    app.run(each_plant)


if __name__ == "__main__":
    main()

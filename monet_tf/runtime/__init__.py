"""Where and how a run executes: the Keras backend, devices and strategies, precision and XLA,
several processes, and the console.

- `backend`: TensorFlow or JAX, chosen before Keras is imported;
- `devices`: the Runtime of a run (its devices, precision, XLA, processes) on either backend;
- `precision`: train.mixed_precision=auto's rule per device, in plain Python;
- `tf_strategy`: the tf.distribute strategies and the XLA rule per device kind;
- `translate`: a generator's images in inference mode (one jitted call on JAX), for every caller;
- `cluster`, `launch`: several processes of one run, found, met and started;
- `tpus`: TPU slices by the names users know; `jax_compat`: older JAX releases;
- `console`: the quiet console of every command-line tool.

Imports only monet_tf.config from the rest of monet_tf; this file imports nothing, so a tool can
reach `console` and `backend` before TensorFlow or JAX loads.
"""

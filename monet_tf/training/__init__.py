"""The training job and what it plans with: `job` (config -> data -> model -> epochs ->
export -> submission, resumable at any step), `callbacks`, `plan` (what a config's full run
costs), `tpu_compile` (its programs through XLA:TPU without a TPU) and `command` (`monet-tf
train`, run_train.py's flags).

May import every other package of monet_tf; nothing imports it but the command line.
"""

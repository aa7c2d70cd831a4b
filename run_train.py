"""Trains photo<->Monet CycleGAN generators and exports them.

With no flags: the small demo config on the bundled sample, on CPU, in a few minutes.

  python run_train.py                                   # configs/demo.py, tfrecords/sample
  python run_train.py --strategy=tpu --config=configs/kaggle_tpu.py   # JAX on Kaggle's TPU VMs
  python run_train.py --backend=jax --strategy=cpu --cpu_replicas=2  # JAX over 2 host devices
  python run_train.py --strategy=gpu --config=configs/gpu.py --data_dir=/path/to/gan-getting-started
  python run_train.py --config=configs/demo.py --config.train.epochs=3 --workdir=runs/try
  python run_train.py --verbosity=0                     # with TensorFlow's and XLA's INFO logs
  python run_train.py --config=configs/kaggle_tpu.py --dry_run   # a few steps, and the full plan
  # one of N processes (JAX; on TensorFlow, TF_CONFIG names them); monet-tf launch
  # starts N on this machine
  python run_train.py --backend=jax --num_processes=2 --process_id=0 --coordinator_address=H:P

Rerunning the same command with the same --workdir resumes from the latest checkpoint. This is
`monet-tf train` (monet_tf/training/command.py holds its flags), reading configs/ and
tfrecords/sample beside this script.
"""

import sys

from monet_tf import cli

if __name__ == "__main__":
    cli.main(["train", *sys.argv[1:]])

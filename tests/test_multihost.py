"""A run of several processes: who they are (flags, the variables JAX and Keras read, TF_CONFIG),
the check they make before either engine starts, each process's part of the data, the launcher,
and bad set-ups through run_train.py: one line naming the fix, exit 2, in bounded time.
The runs themselves are in test_multihost_runs.py and test_multihost_steps.py."""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from monet_tf import data
from monet_tf.runtime.cluster import (Cluster, ClusterError, from_settings, rendezvous,
                                      tf_task_process)
from monet_tf.data.pipeline import host_share
from monet_tf.runtime.launch import free_ports, process_environments
from tests.data_files import colour_shard, colours, data_config, pixel_colours

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "tiny_config.py"


def tf_config(index, ports):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


@pytest.mark.parametrize("backend,flags,env,message", [
    ("jax", {"num_processes": 2, "process_id": 2, "coordinator_address": "127.0.0.1:9"}, {},
     "--process_id=2: give each of the --num_processes=2 processes its own id, 0 to 1"),
    ("jax", {"num_processes": 2, "process_id": 0}, {},
     "--num_processes=2 needs --coordinator_address=HOST:PORT"),
    ("jax", {"num_processes": 2, "process_id": 1, "coordinator_address": "nowhere"}, {},
     "--coordinator_address='nowhere': expected host:port"),
    ("jax", {}, {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"},
     "--process_id=None: give each of the --num_processes=2 processes its own id"),
    ("jax", {"num_processes": 3, "process_id": 1}, {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:1,127.0.0.1:2"},
     "KERAS_DISTRIBUTION_JOB_ADDRESSES names 2 processes, --num_processes=3"),
    ("tensorflow", {"num_processes": 2, "process_id": 0}, {},
     "--num_processes: on TensorFlow the processes are the workers that TF_CONFIG names"),
    ("tensorflow", {}, {"TF_CONFIG": "{not json"}, "TF_CONFIG is not a cluster and task"),
    ("tensorflow", {}, {"TF_CONFIG": tf_config(2, [1, 2])},
     "TF_CONFIG task worker 2 is not in its cluster (2 tasks)"),
    ("tensorflow", {"process_id": 0}, {"TF_CONFIG": tf_config(1, [1, 2])},
     "--process_id=0 but TF_CONFIG says 1"),
])
def test_a_bad_cluster_is_one_line_naming_the_fix(backend, flags, env, message):
    with pytest.raises(ClusterError) as caught:
        from_settings(backend, **flags, environ=env)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_where_the_processes_come_from():
    keras_env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:5,127.0.0.1:6",
                 "KERAS_DISTRIBUTION_PROCESS_ID": "1"}
    assert from_settings("jax", environ=keras_env) == Cluster(2, 1, "127.0.0.1:5")
    assert from_settings("jax", 2, 0, "10.0.0.1:8476", environ={}).coordinator == "10.0.0.1:8476"
    assert from_settings("jax", environ={"TPU_WORKER_HOSTNAMES": "t0,t1"}).auto
    assert not from_settings("jax", environ={"TPU_WORKER_HOSTNAMES": "t0"}).multi
    tf_cluster = from_settings("tensorflow", environ={"TF_CONFIG": tf_config(1, [7, 8])})
    assert (tf_cluster.processes, tf_cluster.index, tf_cluster.coordinator) == (
        2, 1, "127.0.0.1:7")
    # The launcher's environment gives each process its place, for either backend.
    envs = process_environments(2, [11, 12], environ={})
    assert [from_settings("jax", environ=e) for e in envs] == [
        Cluster(2, i, "127.0.0.1:11") for i in range(2)]
    assert [from_settings("tensorflow", environ=e).index for e in envs] == [0, 1]


def test_a_tf_config_task_is_one_process_to_the_cluster_and_to_a_lost_peer():
    """TF_CONFIG's tasks, chiefs first: the process a worker is and the peer a failed collective's
    /job:.../task:N names are numbered by one mapping."""
    import tensorflow as tf

    from monet_tf.runtime.tf_strategy import lost_task

    spec = {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"]}
    assert [tf_task_process(spec, job, task) for job, task in (
        ("chief", 0), ("worker", 0), ("worker", 1))] == [0, 1, 2]
    assert tf_task_process({"worker": spec["worker"]}, "worker", 1) == 1
    cluster = from_settings("tensorflow", environ={"TF_CONFIG": json.dumps(
        {"cluster": spec, "task": {"type": "worker", "index": 1}})})
    assert (cluster.processes, cluster.index) == (3, 2)
    here = "/job:worker/replica:0/task:1"
    for peer, process in (("/job:chief/replica:0/task:0", 0), ("/job:worker/replica:0/task:0", 1)):
        error = tf.errors.UnavailableError(None, None, f"{here}: collective aborted by {peer}")
        assert lost_task(error, cluster) == process
    assert lost_task(tf.errors.UnavailableError(None, None, here), cluster) is None
    assert lost_task(ValueError(f"not a collective: {peer}"), cluster) is None


def meet(clusters, runs, started=None):
    """rendezvous() of every cluster in its own thread; returns each one's error or None."""
    errors = [None] * len(clusters)

    def one(i):
        if started and i in started:
            time.sleep(started[i])
        try:
            rendezvous(clusters[i], runs[i])
        except ClusterError as e:
            errors[i] = str(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clusters))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def group(count, coordinator, timeout=10.0, counts=None, indices=None):
    return [Cluster(counts[i] if counts else count, indices[i] if indices else i, coordinator,
                    timeout) for i in range(count)]


def test_rendezvous_lets_one_run_through_and_stops_a_bad_one_on_every_process():
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    # Three processes of one run, process 0 last to start: all pass.
    assert meet(group(3, address), ["a"] * 3, started={0: 0.5}) == [None] * 3
    # Another count on process 1: every process is told, in one line.
    errors = meet(group(2, f"127.0.0.1:{free_ports(1)[0]}", counts=[2, 3]), ["a", "a"])
    assert errors == ["process 1 was started with --num_processes=3, process 0 with 2: give "
                      "every process the same count"] * 2
    # Two processes with id 1.
    errors = meet(group(3, f"127.0.0.1:{free_ports(1)[0]}", timeout=3, indices=[0, 1, 1]),
                  ["a"] * 3)
    assert all(e and "two processes say --process_id=1" in e for e in errors), errors
    # Another config.
    errors = meet(group(2, f"127.0.0.1:{free_ports(1)[0]}"), ["a", "b"])
    assert all(e and "runs another config or other flags than process 0" in e
               for e in errors), errors


def test_rendezvous_gives_up_in_bounded_time_naming_who_is_missing():
    started = time.monotonic()
    address = f"127.0.0.1:{free_ports(1)[0]}"
    errors = meet(group(3, address, timeout=1.5)[:2], ["a"] * 2)  # Process 2 never starts.
    assert errors[0] == errors[1] and errors[0].startswith(
        f"process(es) 2 of 3 did not reach process 0 at {address} within "
        "--coordinator_timeout=1.5s: start every process"), errors
    alone = Cluster(2, 1, f"127.0.0.1:{free_ports(1)[0]}", timeout=1.5)
    with pytest.raises(ClusterError, match="no process 0 answered within "
                                           "--coordinator_timeout=1.5s"):
        rendezvous(alone, "a")
    assert time.monotonic() - started < 10
    # A second process 0 on the same address cannot listen there.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ClusterError, match="process 0 cannot listen there"):
            rendezvous(Cluster(2, 0, f"127.0.0.1:{taken.getsockname()[1]}", 1.0), "a")


@pytest.fixture
def uneven_shards(tmp_path):
    """15 solid-colour photos in shards of 5, 4 and 6 (1 in 5 held out), 7 paintings in 2."""
    photos, monets = colours(15), colours(7, 100)
    for i, (start, end) in enumerate(((0, 5), (5, 9), (9, 15))):
        colour_shard(tmp_path / "photo_tfrec" / f"photo{i:02d}.tfrec", photos[start:end],
                     f"p{i}_", size=32)
    colour_shard(tmp_path / "monet_tfrec" / "monet00.tfrec", monets[:4], "m0_", "monet", 32)
    colour_shard(tmp_path / "monet_tfrec" / "monet01.tfrec", monets[4:], "m1_", "monet", 32)
    sources = data.find_sources(str(tmp_path))
    return sources, data.validate(sources, min_image_size=16, heldout_fraction=0.2), photos


def test_each_process_reads_its_own_part_and_an_epoch_sees_every_photo_once(uneven_shards):
    """Every image name (colour) each process trains on in an epoch: no photo twice across the
    processes, held-out photos never, and no more left out than one process would leave out."""
    sources, report, photos = uneven_shards
    cfg = data_config(heldout_fraction=0.2)
    heldout = {c for c in photos if c not in
               {c for p, _ in data.train_dataset(sources, report, cfg, 1, seed=0).take(60)
                for c in pixel_colours(p)}}
    assert len(heldout) == report.photo.heldout_count == 3 and sum(report.photo.per_file) == 12
    for count, per_process in ((2, 2), (3, 1), (3, 2)):
        global_batch = count * per_process
        steps = data.steps_per_epoch(report, cfg, global_batch)
        seen, paintings = [], []
        for index in range(count):
            batches = list(data.train_dataset(sources, report, cfg, global_batch, seed=3,
                                              host=(index, count)).take(steps))
            assert all(p.shape[0] == m.shape[0] == per_process for p, m in batches)
            seen.append([c for p, _ in batches for c in pixel_colours(p)])
            paintings.append({c for _, m in batches for c in pixel_colours(m)})
        names = [c for part in seen for c in part]
        assert len(names) == len(set(names)) == steps * global_batch, (count, seen)
        assert not set(names) & heldout
        assert 12 - len(names) < global_batch  # As many left out as one process leaves out.
        assert all(not a & b for i, a in enumerate(paintings) for b in paintings[i + 1:])


def test_parts_are_whole_files_where_the_boundaries_allow():
    assert host_share((5, 4, 6), 0, 3) == [(0, 0, 5)]  # File 0 alone...
    assert host_share((5, 4, 6), 1, 3) == [(1, 0, 4), (2, 0, 1)]  # ...files 1 and the start of 2.
    assert host_share((5, 4, 6), 2, 3) == [(2, 1, 5)]
    assert host_share((10,) * 20, 1, 2) == [(f, 0, 10) for f in range(10, 20)]
    sizes = [sum(n for _, _, n in host_share((7, 0, 3, 9), i, 4)) for i in range(4)]
    assert sizes == [4, 5, 5, 5]


def test_too_few_images_for_the_processes_is_one_line(tmp_path):
    colour_shard(tmp_path / "photo_tfrec" / "p.tfrec", colours(3), "p", size=32)
    colour_shard(tmp_path / "monet_tfrec" / "m.tfrec", colours(1, 9), "m", "monet", size=32)
    sources = data.find_sources(str(tmp_path))
    report = data.validate(sources, min_image_size=16)
    with pytest.raises(data.DataError, match="monet: 1 training images for 2 processes: each "
                                             "process needs at least one"):
        data.train_dataset(sources, report, data_config(), 2, seed=0, host=(0, 2))


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS_", "TF_CONFIG"))}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    return env


def test_the_launcher_starts_every_process_with_its_place_and_prefixes_their_lines():
    probe = ("import os, json, sys; print(os.environ['KERAS_DISTRIBUTION_PROCESS_ID'], "
             "json.loads(os.environ['TF_CONFIG'])['task']['index']); "
             "sys.exit(int(os.environ['KERAS_DISTRIBUTION_PROCESS_ID']) * 3)")
    result = subprocess.run([sys.executable, "-m", "monet_tf", "launch", "--num_processes=3", "--",
                             sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, env=_env())
    assert sorted(result.stdout.splitlines()) == [
        "[process 0] 0 0", "[process 1] 1 1", "[process 2] 2 2"]
    assert result.returncode in (3, 6)  # The first failure's code.


def run_train(*flags, env=None, timeout=120):
    return subprocess.run([sys.executable, str(REPO / "run_train.py"), f"--config={TINY}", *flags],
                          capture_output=True, text=True, timeout=timeout, env=env or _env())


def test_an_unreachable_coordinator_is_one_line_within_the_timeout(tmp_path):
    started = time.monotonic()
    result = run_train("--backend=jax", f"--workdir={tmp_path}", "--num_processes=2",
                       "--process_id=1", f"--coordinator_address=127.0.0.1:{free_ports(1)[0]}",
                       "--coordinator_timeout=2")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: --coordinator_address=127.0.0.1:")
    assert "no process 0 answered within --coordinator_timeout=2s: start process 0" in (
        result.stderr)
    assert time.monotonic() - started < 60
    assert not (tmp_path / "config.json").exists()


def test_processes_started_with_other_configs_stop_before_training(tmp_path):
    """Through TF_CONFIG (TensorFlow's form) this time: the same check, the same line."""
    ports = free_ports(2)
    procs = [subprocess.Popen(
        [sys.executable, str(REPO / "run_train.py"), f"--config={TINY}", f"--workdir={tmp_path}",
         f"--config.train.batch_size={1 + index}", "--coordinator_timeout=30"],
        env={**_env(), "TF_CONFIG": tf_config(index, ports)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for index in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 2, err[-3000:]
        assert err.strip().splitlines()[-1] == (
            "error: process 1 runs another config or other flags than process 0: run the same "
            "command, config file and flags on every process")
        assert "Epoch" not in out
    assert not (tmp_path / "checkpoints").exists()


def test_the_console_names_the_coordinator_when_jax_ends_a_process_for_its_loss():
    """When process 0 dies, JAX aborts the others from C++ (they cannot catch it); the console
    filter, which outlives the process, adds the one line. The lines are JAX 0.10's, as seen
    here when process 0 was killed with -9."""
    from monet_tf.runtime import console

    fatal = [b"E1204 14:38:42.612505    1605 coordination_service_agent.cc:289] Polled an error "
             b"from coordination service (this can be an error from this or another task).\n",
             b"F1204 14:38:42.612540    1605 client.h:80] Terminating process because the JAX "
             b"distributed service detected fatal errors. This most likely indicates that "
             b"another task died; see the other task logs for more details.\n",
             b"Additional GRPC error information from remote target coordination_service while "
             b"calling /xla.coordination.CoordinationService/PollForError:\n",
             b"*** Check failure stack trace: ***\n"]
    for lines, expected in ((fatal, console.LOST_COORDINATOR), (fatal[:2] + fatal[3:], b""),
                            ([b"Traceback (most recent call last):\n"], b"")):
        source, sink = os.pipe(), os.pipe()
        os.write(source[1], b"".join(lines))
        os.close(source[1])
        console._forward(source[0], sink[1])
        os.close(sink[1])
        with os.fdopen(sink[0], "rb") as out:
            assert out.read() == b"".join(lines) + expected


RESOLVED = """
import runpy, sys
from monet_tf.training import job as t
from monet_tf.runtime.devices import make_runtime

cfg = runpy.run_path(sys.argv[1])["get_config"]()
cfg.data.steps_per_epoch = int(sys.argv[3])  # As if this process had other data.
try:
    t.train(cfg, sys.argv[2], make_runtime("cpu"), verbose=0)  # No flags to compare first.
except t.ConfigError as e:
    print("error:", e)
"""


def test_processes_that_resolve_other_configs_stop_before_building_a_model(tmp_path):
    """The check after the engines start, on the resolved config (data counts included): here
    through the library, which has no flags for the first check to compare."""
    ports = free_ports(2)
    procs = [subprocess.Popen([sys.executable, "-c", RESOLVED, str(TINY), str(tmp_path),
                               str(3 + index)],
                              env={**_env(), "TF_CONFIG": tf_config(index, ports)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for index in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        assert re.search(r"^error: process 1's resolved config \(digest \w+\) differs from "
                         r"process 0's \(\w+\): data\.steps_per_epoch: 3 vs 4\. Run the same "
                         r"command, config file and data on every process$", out, re.M), out
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "config.json").exists()

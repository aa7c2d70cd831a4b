r"""A config's TPU programs, compiled by the real XLA:TPU compiler on a machine without a TPU.

    python -m monet_tf compile-tpu --config=configs/kaggle_tpu.py --topology=v5e-8
    python -m monet_tf compile-tpu --config_json=runs/demo/config.json --topology=v6e-1 --json
    python run_train.py --config=configs/kaggle_tpu.py --dry_run --compile_for=v5e-8

libtpu's compile-only devices (`jax.experimental.topologies`) stand in for the slice's chips. The
model is built as training builds it on the JAX backend (`build_model`, the precision
`train.mixed_precision` gives on a TPU), its state and batches are laid out by
`keras.distribution.DataParallel` over those devices, and these programs are lowered and
compiled, each from the very function the run jits:
- train_step: the step Keras' JAX trainer jits in `make_train_function` (Keras >= 3.8 runs
  `train.steps_per_execution` steps as that many calls of this one program, not as a larger one);
- translate: the submission's translator at `submission.batch_size` images per chip;
- inception: the MiFID callback's InceptionV3 features at `eval.batch_size` images per chip
  (only when `eval.every` > 0; its weights are not needed to compile it).
Each reports its compile seconds, per-chip HBM (arguments, temporaries, outputs, aliased, code)
against the chip's, and XLA's FLOPs per call. Before it is compiled, a program is checked for
what a TPU cannot run well: float64 and host callbacks (found in its jaxpr, named with their
source line) and data-dependent shapes (which fail its tracing).

What this proves: the programs compile for that topology with XLA:TPU and fit its memory. What it
does not: their speed, whether the host's tf.data keeps the chips fed, numerics on the chip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
import warnings

from monet_tf.runtime import tpus
from monet_tf.config_check import ConfigError, check

PROGRAMS = ("train_step", "translate", "inception")
EFFORTS = ("default", "fast")
# XLA's lowest optimisation effort: about half the compile time, but a less optimised program
# whose memory figures are not those of a real run (tests; never the sizing).
_FAST = {"exec_time_optimization_effort": -1.0}
# What libtpu would otherwise ask a metadata server for, and warn about, on a machine that is
# not a TPU VM (a real TPU VM has its own values; these are only defaults).
_LIBTPU_QUIET = {"TPU_SKIP_MDS_QUERY": "1", "TPU_WORKER_HOSTNAMES": "localhost",
                 "ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}
_ACCELERATOR_TYPES = {"v5e": "v5litepod", "v6e": "v6e", "v4": "v4", "v5p": "v5p", "v3": "v3"}


class CompileError(RuntimeError):
    """A program does not compile for the topology, or does not fit it; the message names the
    program, the topology and what XLA (or the TPU-readiness check) said."""


class SetupError(RuntimeError):
    """This machine cannot compile for a TPU as asked (no libtpu, unknown topology)."""


@dataclasses.dataclass
class ProgramReport:
    """What XLA:TPU says of one compiled program, per chip."""

    program: str
    topology: str
    compile_seconds: float
    argument_bytes: int
    temp_bytes: int
    output_bytes: int
    alias_bytes: int
    code_bytes: int
    hbm_bytes: int
    flops: float  # XLA's count for one call, per chip (one SPMD partition)
    items_per_chip: int  # image pairs (train_step) or images per chip per call
    resident_bytes: int = 0  # the training state, on the chips while translate / inception run

    @property
    def peak_bytes(self) -> int:
        """HBM a chip needs while the program runs: its arguments, temporaries, the outputs not
        written over donated arguments, its code, and what stays resident beside it."""
        return (self.argument_bytes + self.temp_bytes + self.output_bytes - self.alias_bytes
                + self.code_bytes + self.resident_bytes)

    def fits(self, headroom: float = 0.0) -> bool:
        return self.peak_bytes <= (1.0 - headroom) * self.hbm_bytes

    @property
    def flops_per_item(self) -> float:
        return self.flops / max(1, self.items_per_chip)

    def describe(self) -> str:
        item = "pair" if self.program == "train_step" else "image"
        return (f"{self.program}: compiled in {self.compile_seconds:.1f} s; per chip: arguments "
                f"{_bytes(self.argument_bytes)}, temporaries {_bytes(self.temp_bytes)}, outputs "
                f"{_bytes(self.output_bytes)}, aliased {_bytes(self.alias_bytes)}, code "
                f"{_bytes(self.code_bytes)}"
                + (f", training state {_bytes(self.resident_bytes)}" if self.resident_bytes
                   else "") + f" -> peak {_bytes(self.peak_bytes)} of "
                f"{self.hbm_bytes / 2**30:g} GiB ({100 * self.peak_bytes / self.hbm_bytes:.1f}%); "
                f"{_flops(self.flops)} per call, {self.items_per_chip} {item}(s) per chip: "
                f"{_flops(self.flops_per_item)} per {item}")

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "peak_bytes": self.peak_bytes, "fits": self.fits(),
                "flops_per_item": self.flops_per_item}


def _bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _flops(n: float) -> str:
    return f"{n / 1e12:.2f} TFLOP" if n >= 1e12 else f"{n / 1e9:.2f} GFLOP"


def require_libtpu() -> None:
    """libtpu (the TPU compiler) must import; it comes with `pip install jax[tpu]`."""
    try:
        import jax
    except ImportError as err:
        raise SetupError(f"JAX is not installed ({err}): pip install 'jax[tpu]'") from None
    try:
        import libtpu  # noqa: F401
    except ImportError as err:
        raise SetupError(
            f"compiling for a TPU needs libtpu, the TPU compiler, which is not installed here "
            f"({err}): pip install 'jax[tpu]=={jax.__version__}' (the libtpu of this jax), or "
            "pip install -e '.[test]'") from None


def topology_devices(topology: tpus.Topology) -> list:
    """The slice's compile-only JAX devices (no TPU needed)."""
    require_libtpu()
    family = topology.libtpu_name.split(":")[0]
    for name, value in {**_LIBTPU_QUIET, "TPU_ACCELERATOR_TYPE":
                        f"{_ACCELERATOR_TYPES[family]}-{topology.name.split('-')[1]}"}.items():
        os.environ.setdefault(name, value)
    import jax
    from jax.experimental import topologies

    from monet_tf.runtime.jax_compat import skip_executable_layouts

    # A compile-only executable is never run again; caching it costs a serialisation per program.
    jax.config.update("jax_enable_compilation_cache", False)
    skip_executable_layouts()  # jax < 0.8 with its libtpus: see there.
    try:
        devices = topologies.get_topology_desc(platform="tpu", topology_name=topology.libtpu_name,
                                               **dict(topology.options)).devices
    except Exception as err:  # libtpu's own errors (an unknown shape, a locked libtpu).
        raise SetupError(f"libtpu cannot describe {topology.name} ({topology.libtpu_name}): "
                         f"{str(err).splitlines()[0]}") from None
    if len(devices) != topology.devices:
        raise SetupError(f"libtpu gives {len(devices)} devices for {topology.name}, the table "
                         f"in monet_tf/tpus.py says {topology.devices}")
    return list(devices)


# --- TPU readiness: what compiles but does not belong in a TPU program ---------------------

# Primitives that call back into Python on the host (jax.debug.print is its own primitive
# since jax 0.8; before, a debug_callback), and what they lower to on a TPU.
_CALLBACKS = ("debug_print", "outside_call")
_HOST_TRANSFER = "is_host_transfer = true"
_FLOAT64_WARNING = "Explicitly requested dtype float64"
_INTERNAL = (os.sep + "jax" + os.sep, os.sep + "jaxlib" + os.sep, os.sep + "keras" + os.sep,
             os.sep + "numpy" + os.sep, os.sep + "ml_dtypes" + os.sep, __file__)


def _where(frames) -> str:
    """The innermost frame outside JAX, Keras, NumPy and this module: the line to fix."""
    for filename, line, function in reversed(frames):
        if not any(part in filename for part in _INTERNAL):
            return f"{filename}:{line} ({function})"
    return "unknown location"


def _eqn_where(eqn) -> str:
    try:
        from jax._src import source_info_util

        frames = [(f.file_name, f.start_line, f.function_name)
                  for f in source_info_util.user_frames(eqn.source_info.traceback)]
        return _where(list(reversed(frames)))
    except Exception:  # A JAX without this private module: still name the primitive.
        return "unknown location"


def _subjaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            inner = getattr(item, "jaxpr", item)
            if hasattr(inner, "eqns"):
                yield inner


def tpu_hazards(jaxpr) -> list[str]:
    """Host callbacks and float64 values in a (closed) jaxpr and its sub-jaxprs, with where."""
    found, stack = [], [getattr(jaxpr, "jaxpr", jaxpr)]
    while stack:
        current = stack.pop()
        for eqn in current.eqns:
            name = eqn.primitive.name
            if name in _CALLBACKS or "callback" in name:
                found.append(f"a host callback ({name}) at {_eqn_where(eqn)}: the TPU stops and "
                             "waits for the host at every call; remove it from the step (log "
                             "from callbacks instead)")
            elif any(str(getattr(v.aval, "dtype", "")) in ("float64", "complex128")
                     for v in eqn.outvars):
                found.append(f"a float64 value ({name}) at {_eqn_where(eqn)}: TPUs have no "
                             "float64 units (XLA emulates it many times slower); use float32")
            stack.extend(_subjaxprs(eqn))
    return found


@contextlib.contextmanager
def _float64_is_an_error():
    """With jax_enable_x64 off, JAX truncates float64 to float32 with a warning: on a TPU run
    that would mean a program unlike the one written; here it stops the trace at that line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=_FLOAT64_WARNING, category=UserWarning)
        yield


def _traceback_frames(err) -> list:
    import traceback

    return [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(err.__traceback__)]


def trace(program: str, topology: str, jitted, *args):
    """jitted.trace(*args) with the TPU checks: a data-dependent shape, float64 or a host
    callback raises CompileError naming the program, the topology and the source line."""
    import jax

    where = f"{program} for {topology}"
    try:
        with _float64_is_an_error():
            traced = jitted.trace(*args)
    except UserWarning as err:
        raise CompileError(f"{where}: float64 at {_where(_traceback_frames(err))}: TPUs have no "
                           "float64 units (and JAX would silently compute it in float32); use "
                           "float32") from None
    except (jax.errors.ConcretizationTypeError, jax.errors.NonConcreteBooleanIndexError,
            jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError,
            jax.errors.TracerBoolConversionError) as err:
        message = str(err).strip().splitlines()[0]
        raise CompileError(f"{where}: a data-dependent shape or value at "
                           f"{_where(_traceback_frames(err))} ({type(err).__name__}: {message}): "
                           "a TPU program needs static shapes; use fixed sizes, masks or "
                           "jnp.where") from None
    hazards = tpu_hazards(traced.jaxpr)
    if hazards:
        raise CompileError(f"{where}: " + "; ".join(hazards))
    return traced


def _first_line_of_xla(err: Exception) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return " ".join(lines[:3])[:1500] if lines else type(err).__name__


def compile_traced(program: str, topology: tpus.Topology, traced, items_per_chip: int,
                   effort: str = "default", hlo_dir: str | None = None) -> ProgramReport:
    """Lowers and compiles a traced program for the topology and reads XLA's analyses; with
    hlo_dir, writes the optimized program there as PROGRAM.hlo.txt (bench/profile_step.py
    places its ops on the chip's roofline)."""
    if effort not in EFFORTS:
        raise SetupError(f"--effort={effort!r} is not one of {', '.join(EFFORTS)}")
    where = f"{program} for {topology.name}"
    started = time.monotonic()
    try:
        lowered = traced.lower()
        if _HOST_TRANSFER in lowered.as_text():  # What the jaxpr check may not have named.
            raise CompileError(f"{where}: a host transfer (send/recv to the host, as a host "
                               "callback lowers): the TPU stops and waits for the host at "
                               "every call; remove it")
        compiled = lowered.compile(_FAST if effort == "fast" else None)
    except CompileError:
        raise
    except Exception as err:  # XLA's errors come as JaxRuntimeError / XlaRuntimeError.
        raise CompileError(f"{where} does not compile: {_first_line_of_xla(err)}") from None
    seconds = time.monotonic() - started
    if hlo_dir:
        os.makedirs(hlo_dir, exist_ok=True)
        with open(os.path.join(hlo_dir, f"{program}.hlo.txt"), "w") as f:
            f.write(compiled.as_text())
    memory = compiled.memory_analysis()
    return ProgramReport(
        program=program, topology=topology.name, compile_seconds=seconds,
        argument_bytes=int(memory.argument_size_in_bytes),
        temp_bytes=int(memory.temp_size_in_bytes), output_bytes=int(memory.output_size_in_bytes),
        alias_bytes=int(memory.alias_size_in_bytes),
        code_bytes=int(memory.generated_code_size_in_bytes), hbm_bytes=topology.hbm_bytes,
        flops=xla_flops(compiled) or 0.0, items_per_chip=items_per_chip)


# --- The run's programs ------------------------------------------------------------------


def _abstract(values, sharding):
    import jax

    return [jax.ShapeDtypeStruct(tuple(v.shape), v.dtype, sharding=sharding(v)) for v in values]


def _replicated(distribution):
    import keras

    return keras.distribution.TensorLayout([], distribution.device_mesh).backend_layout


def _batch(shape, dtype, distribution):
    import jax

    layout = distribution.get_data_layout(shape).backend_layout
    return jax.ShapeDtypeStruct(tuple(shape), dtype, sharding=layout)


def keras_train_step(model, state_shardings):
    """The jitted step Keras' JAX trainer makes (make_train_function), with `state_shardings` as
    the out_shardings it reads from the variables (those of the TPU slice, not the host's)."""
    model._get_state_sharding_spec = lambda: state_shardings
    try:
        model.make_train_function(force=True)
    finally:
        del model._get_state_sharding_spec
    step = jitted_train_step(model)
    if step is None:
        import keras

        raise SetupError(f"Keras {keras.__version__}'s JAX train_function is not the one-step "
                         "jit of Keras >= 3.8 (iterator_step over step_function) that this "
                         "compiles; use Keras >= 3.8")
    return step


def jitted_train_step(model):
    """The jax.jit(train_step) inside Keras' train_function (its `step_function` free variable),
    or None for a Keras that builds it otherwise."""
    fn = model.train_function
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
    if "step_function" in cells and hasattr(cells["step_function"].cell_contents, "trace"):
        return cells["step_function"].cell_contents
    return None


def xla_flops(compiled) -> float | None:
    """XLA's FLOP count of a compiled program (one SPMD partition's: per device)."""
    costs = compiled.cost_analysis()
    if isinstance(costs, (list, tuple)):  # Older JAX: one dict per program.
        costs = costs[0] if costs else {}
    flops = (costs or {}).get("flops")
    return None if flops is None else float(flops)


def programs(cfg, topology: tpus.Topology, devices, which=PROGRAMS):
    """(name, traced program, items per chip) for each program of `which` the config runs."""
    import keras

    from monet_tf import data
    from monet_tf.training import plan
    from monet_tf.scoring.inception import build_inception, jax_features_step
    from monet_tf.models.families import build_model, translates_photos
    from monet_tf.runtime.devices import Runtime
    from monet_tf.inference.submission import SIZE, jax_translate_step, serving_generator

    unknown = sorted(set(which) - set(PROGRAMS))
    if unknown:
        raise SetupError(f"unknown program(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(PROGRAMS)}")
    distribution = keras.distribution.DataParallel(devices=devices)
    runtime = Runtime("jax", "tpu", [str(d) for d in devices], len(devices),
                      distribution=distribution, device_kind="tpu")
    runtime.precision(cfg.train.mixed_precision)  # As training sets it, before building.
    jit_compile, _ = runtime.xla(cfg.train.jit_compile)
    chips = len(devices)
    global_batch = cfg.train.batch_size * chips
    steps = plan.full_run(cfg, devices=chips)["steps_per_epoch"]
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg, steps_per_epoch=steps, global_batch_size=global_batch,
                        jit_compile=jit_compile, replicas=chips)
    replicated = _replicated(distribution)
    every = lambda v: replicated  # noqa: E731  DataParallel replicates every variable.
    name = topology.name

    if "train_step" in which:
        state = (_abstract(model.trainable_variables, every),
                 _abstract(model.non_trainable_variables, every),
                 _abstract(model.optimizer.variables, every),
                 _abstract(model.metrics_variables, every))
        shardings = tuple([s.sharding for s in part] for part in state)
        photo_shape, monet_shape = data.train_batch_shapes(
            cfg.data.image_size, global_batch, photos=translates_photos(cfg.model.kind))
        batch = (_batch(photo_shape, "float32", distribution),
                 _batch(monet_shape, "float32", distribution))
        # The slice's DataParallel while Keras builds and traces the step, as in training (the
        # model's own variables stay on the host CPU).
        with distribution.scope():
            step = keras_train_step(model, shardings)
            yield "train_step", trace("train_step", name, step, state, batch), cfg.train.batch_size

    generator = serving_generator(getattr(model, model.GENERATORS[0]))
    if "translate" in which:
        per_chip = int(cfg.submission.batch_size)
        if translates_photos(cfg.model.kind):
            inputs = _batch((per_chip * chips, SIZE, SIZE, 3), "uint8", distribution)
        else:
            inputs = _batch((per_chip * chips, int(generator.input_shape[-1])), "float32",
                            distribution)
        args = (_abstract(generator.trainable_variables, every),
                _abstract(generator.non_trainable_variables, every), inputs)
        with distribution.scope():
            yield ("translate", trace("translate", name, jax_translate_step(generator), *args),
                   per_chip)

    if "inception" in which and cfg.eval.every > 0:
        per_chip = int(cfg.eval.batch_size)
        inception = build_inception(None)  # The architecture; weights are not needed.
        size = int(cfg.data.image_size)  # MiFID scores the generator's uint8 output.
        args = (_abstract(inception.trainable_variables, every),
                _abstract(inception.non_trainable_variables, every),
                _batch((per_chip * chips, size, size, 3), "uint8", distribution))
        with distribution.scope():
            yield ("inception", trace("inception", name,
                                      jax_features_step(inception, distribution), *args),
                   per_chip)


def compile_config(cfg, topology_name: str, which=PROGRAMS, effort: str = "default",
                   on_report=None, hbm_gib: float | None = None,
                   hlo_dir: str | None = None) -> list[ProgramReport]:
    """Compiles the config's programs for the named topology; CompileError when one does not
    compile or does not fit (in hbm_gib per chip, default the chip's). on_report(report) is
    called as each one is done."""
    topology = tpus.topology(topology_name)
    if hbm_gib is not None:
        if hbm_gib <= 0:
            raise SetupError(f"--hbm_gib={hbm_gib:g} must be positive")
        topology = dataclasses.replace(topology, hbm_gib=hbm_gib)
    devices = topology_devices(topology)
    reports, resident = [], 0
    for program, traced, items in programs(cfg, topology, devices, which):
        report = compile_traced(program, topology, traced, items, effort, hlo_dir)
        if program == "train_step":  # Weights, slots, pools: on the chips from here on.
            resident = report.argument_bytes
        else:
            report.resident_bytes = resident
        reports.append(report)
        if on_report is not None:
            on_report(report)
        if not report.fits():
            raise CompileError(
                f"{program} for {topology.name} does not fit: it needs "
                f"{_bytes(report.peak_bytes)} per chip of {topology.hbm_gib:g} GiB HBM; lower "
                "train.batch_size (or this program's batch)")
    return reports


def compile_in_subprocess(cfg, topology: str, effort: str = "default",
                          echo=print) -> list[ProgramReport]:
    """The config's programs compiled for `topology` by `monet-tf compile-tpu` in a subprocess
    (it needs the JAX backend; this process may run TensorFlow's), each report echoed as it
    comes. Raises CompileError (or SetupError) with the command's error."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="monet_tf_compile_") as tmp:
        config_json = os.path.join(tmp, "config.json")
        with open(config_json, "w") as f:
            f.write(cfg.to_json())
        process = subprocess.Popen(
            [sys.executable, "-m", "monet_tf", "compile-tpu", f"--config_json={config_json}",
             f"--topology={topology}", f"--effort={effort}", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reports = []
        try:
            for line in process.stdout:
                if line.startswith("{"):
                    fields = {f.name for f in dataclasses.fields(ProgramReport)}
                    report = ProgramReport(
                        **{k: v for k, v in json.loads(line).items() if k in fields})
                    reports.append(report)
                    echo(report.describe())
            errors = process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    if process.returncode != 0:
        lines = [line[len("error: "):] for line in errors.splitlines() if line.startswith("error:")]
        message = lines[-1] if lines else errors.strip()[-2000:]
        raise (SetupError if process.returncode == 2 else CompileError)(message)
    return reports


def _config(flags_):
    """--config (a configs/*.py file, with --config.X overrides) or --config_json (a run's
    resolved config.json)."""
    import ml_collections

    if (flags_.config is None) == (flags_.config_json is None):
        raise SetupError("give one of --config=configs/NAME.py or --config_json=WORKDIR/config.json")
    if flags_.config is not None:
        cfg = flags_.config
    else:
        try:
            with open(flags_.config_json) as f:
                cfg = ml_collections.ConfigDict(json.load(f))
        except (OSError, ValueError) as err:
            raise SetupError(f"--config_json={flags_.config_json}: {err}") from None
    try:
        check(cfg, "jax")
    except ConfigError as err:
        raise SetupError(str(err)) from None
    return cfg


def main(argv) -> None:
    from absl import flags

    flags_ = flags.FLAGS
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        sys.exit(2)
    try:
        cfg = _config(flags_)
        topology = tpus.topology(flags_.topology)
        which = [p for p in flags_.programs.split(",") if p] or list(PROGRAMS)
        reports = compile_config(
            cfg, topology.name, which, flags_.effort,
            on_report=lambda r: print(json.dumps(r.as_dict()) if flags_.json else r.describe(),
                                      flush=True), hbm_gib=flags_.hbm_gib,
            hlo_dir=flags_.hlo_dir)
    except (SetupError, tpus.UnknownTopology) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except CompileError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    if not flags_.json:
        print(f"{len(reports)} program(s) compile for {topology.name} and fit its "
              f"{flags_.hbm_gib or topology.hbm_gib:g} GiB per chip")


def define_flags() -> None:
    from absl import flags

    from monet_tf.runtime import commandline

    commandline.define_config("config", None, "Experiment config file (configs/*.py).",
                              lock_config=True)
    flags.DEFINE_string("config_json", None, "A run's resolved config.json instead of --config.")
    flags.DEFINE_string("topology", "v5e-8", "TPU slice: " + ", ".join(tpus.TOPOLOGIES))
    flags.DEFINE_string("programs", ",".join(PROGRAMS), "Comma list of " + ", ".join(PROGRAMS))
    flags.DEFINE_enum("effort", "default", list(EFFORTS),
                      "XLA optimisation effort: default (the run's program) or fast (about half "
                      "the compile time; memory figures of a less optimised program)")
    flags.DEFINE_float("hbm_gib", None, "HBM per chip that the programs must fit in (default: "
                       "the chip's, monet_tf/tpus.py), e.g. what another job leaves free.")
    flags.DEFINE_bool("json", False, "One JSON object per program on stdout.")
    flags.DEFINE_string("hlo_dir", None, "Write each optimized program there as PROGRAM.hlo.txt "
                        "(bench/profile_step.py --tpu reads it).")

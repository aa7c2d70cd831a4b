"""What each op of a compiled XLA program costs, read from its optimized HLO text.

XLA's `cost_analysis()` gives one total per program, and on GPUs leaves out the convolutions
that run as cuDNN custom calls (most of a CycleGAN step). This reads the program's ops (the
entry computation and the loops and calls under it, each fusion as one op) and gives each its
FLOPs (convolutions and dots counted from their shapes: 2 x output elements x window x input
features per group; elementwise ops one per output element), the bytes it reads and writes,
and a category a person can act on. `roofline` places every op on a chip's roofline, so a
program's time and share of peak can be estimated without the chip.
"""

from __future__ import annotations

import dataclasses
import math
import re

DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
               "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
               "f8e4m3fn": 1, "f8e5m2": 1, "token": 0}
CATEGORIES = ("convolution forward", "convolution backward-data", "convolution backward-filter",
              "norm reductions", "pads, copies and transposes", "collectives", "other fusions")
# Ops that move data between chips (ICI, not HBM: their roofline time is a lower bound).
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
# Ops that move data without arithmetic; a fusion of only these is a copy.
DATA_MOVEMENT = {"pad", "copy", "transpose", "concatenate", "slice", "reverse", "reshape",
                 "bitcast", "broadcast", "dynamic-slice", "dynamic-update-slice", "gather",
                 "copy-start", "copy-done", "slice-start", "slice-done", "parameter", "constant",
                 "get-tuple-element",
                 "tuple", "iota", "convert", "select", "scatter"}
ASYNC_TRANSFERS = {"copy-start", "slice-start"}
FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all",
        "partition-id", "replica-id", "opt-barrier", "while", "call", "conditional",
        "copy-done", "all-reduce-done", "async-done"}
ELEMENTWISE = {"add", "subtract", "multiply", "divide", "maximum", "minimum", "exponential",
               "log", "rsqrt", "sqrt", "tanh", "logistic", "power", "negate", "abs", "compare",
               "select", "clamp", "exponential-minus-one", "log-plus-one", "sign", "floor",
               "ceil", "round-nearest-even", "and", "or", "xor", "not", "atan2", "sine",
               "cosine", "erf", "cbrt", "remainder", "convert", "shift-left",
               "shift-right-logical", "shift-right-arithmetic", "popcnt", "count-leading-zeros",
               "reduce-precision"}
CUDNN_CONV = {"__cudnn$convForward": "forward", "__cudnn$convBackwardInput": "backward-data",
              "__cudnn$convBackwardFilter": "backward-filter",
              "__cudnn$convBiasActivationForward": "forward"}

_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_ARRAY = re.compile(r"\b([a-z]+[0-9]*(?:e[0-9]m[0-9]fn)?)\[([0-9,]*)\]")


@dataclasses.dataclass
class Op:
    """One op of a program as it runs: a fusion, a convolution, a copy..."""

    name: str
    opcode: str
    category: str
    flops: float
    bytes: float
    shape: str
    op_name: str = ""  # The framework's name in the op's metadata (jit(...)/.../conv2d/...).
    # A transfer XLA scheduled asynchronously between memories (copy-start, slice-start, and
    # the ConcatBitcast-style custom calls of its memory-space assignment): it can run under
    # the compute around it.
    asynchronous: bool = False

    def seconds(self, peak_flops: float, bandwidth: float) -> float:
        return max(self.flops / peak_flops, self.bytes / bandwidth)

    def bound(self, peak_flops: float, bandwidth: float) -> str:
        return "compute" if self.flops / peak_flops >= self.bytes / bandwidth else "memory"


@dataclasses.dataclass
class _Instruction:
    name: str
    shape: str
    opcode: str
    operands: list[str]
    attributes: str
    arguments: str = ""  # The text between the opcode's parentheses (a parameter's index).


def _split_instruction(line: str) -> _Instruction | None:
    line = line.strip()
    if line.startswith("ROOT "):
        line = line[5:]
    if " = " not in line or not line.startswith("%"):
        return None
    name, rest = line.split(" = ", 1)
    if rest.startswith("("):  # A tuple shape: up to its matching parenthesis.
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                break
        shape, rest = rest[: i + 1], rest[i + 1:].lstrip()
    else:
        shape, _, rest = rest.partition(" ")
    opcode, _, rest = rest.partition("(")
    depth, i = 1, 0
    for i, ch in enumerate(rest):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            break
    operands = re.findall(r"%([\w.\-]+)", rest[:i])
    return _Instruction(name.lstrip("%"), shape, opcode.strip(), operands, rest[i + 1:], rest[:i])


def parse_module(text: str) -> tuple[dict[str, list[_Instruction]], str]:
    """({computation name: its instructions}, the entry computation's name)."""
    computations, entry, current = {}, "", None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(2)
            computations[current] = []
            if header.group(1):
                entry = current
            continue
        if line.startswith("}"):
            current = None
            continue
        if current is not None:
            instruction = _split_instruction(line)
            if instruction is not None:
                computations[current].append(instruction)
    return computations, entry


def shape_bytes(shape: str) -> int:
    return sum(DTYPE_BYTES.get(dtype, 4) * math.prod(int(d) for d in dims.split(",") if d)
               for dtype, dims in _ARRAY.findall(shape))


def _dims(shape: str) -> list[int]:
    """The first array's dimensions (a cuDNN call returns (result, scratch))."""
    found = _ARRAY.search(shape)
    return [int(d) for d in found.group(2).split(",") if d] if found else []


def _elements(shape: str) -> int:
    return math.prod(_dims(shape))


def conv_flops(instruction: _Instruction, shapes: dict[str, str]) -> float:
    """2 x multiply-adds that touch real input, as XLA's own cost analysis counts them: per
    spatial dimension only the (output, window) positions that land on the input, not on its
    padding or the holes of an lhs dilation (a stride-2 conv's data gradient)."""
    import numpy as np

    labels = re.search(r"dim_labels=(\w+)_(\w+)->(\w+)", instruction.attributes)
    if not labels or len(instruction.operands) < 2:
        return 0.0
    lhs_labels, rhs_labels, out_labels = labels.groups()
    lhs = _dims(shapes.get(instruction.operands[0], ""))
    rhs = _dims(shapes.get(instruction.operands[1], ""))
    out = _dims(instruction.shape)
    if len(lhs) != len(lhs_labels) or len(rhs) != len(rhs_labels) or len(out) != len(out_labels):
        return 0.0
    window = dict(re.findall(r"(size|stride|pad|lhs_dilate|rhs_dilate)=([0-9x_\-]+)",
                             re.search(r"window=\{([^}]*)\}", instruction.attributes).group(1)
                             if "window={" in instruction.attributes else ""))
    spatial = [c for c in out_labels if c.isdigit()]

    def field(key, k, default):
        return int(window[key].split("x")[k]) if key in window else default

    positions = 1
    for k, digit in enumerate(sorted(spatial)):
        size = rhs[rhs_labels.index(digit)]
        stride, lhs_dilate, rhs_dilate = (field("stride", k, 1), field("lhs_dilate", k, 1),
                                          field("rhs_dilate", k, 1))
        low = int(window["pad"].split("x")[k].split("_")[0]) if "pad" in window else 0
        extent = (lhs[lhs_labels.index(digit)] - 1) * lhs_dilate + 1
        at = (np.arange(out[out_labels.index(digit)])[:, None] * stride
              + np.arange(size)[None, :] * rhs_dilate - low)
        positions *= int(np.count_nonzero((at >= 0) & (at < extent) & (at % lhs_dilate == 0)))
    groups = re.search(r"feature_group_count=([0-9]+)", instruction.attributes)
    batch_groups = re.search(r"batch_group_count=([0-9]+)", instruction.attributes)
    per_output_feature = rhs[rhs_labels.index("i")]
    batch = lhs[lhs_labels.index("b")] // (int(batch_groups.group(1)) if batch_groups else 1)
    del groups  # The kernel's i dimension is already the input features of one group.
    return 2.0 * batch * out[out_labels.index("f")] * per_output_feature * positions


def dot_flops(instruction: _Instruction, shapes: dict[str, str]) -> float:
    contracting = re.search(r"lhs_contracting_dims=\{([0-9,]*)\}", instruction.attributes)
    lhs = _dims(shapes.get(instruction.operands[0], "")) if instruction.operands else []
    size = math.prod(lhs[int(d)] for d in contracting.group(1).split(",") if d) \
        if contracting and lhs else 1
    return 2.0 * _elements(instruction.shape) * size


def _conv_direction(instruction: _Instruction, kernel_elements: set[int]) -> str:
    """forward | backward-data | backward-filter: cuDNN's target says; elsewhere a filter
    gradient has as many elements as a kernel of the program, and JAX's metadata marks the
    rest of the backward pass with autodiff's transpose(...)."""
    target = re.search(r'custom_call_target="([^"]+)"', instruction.attributes)
    if target and target.group(1) in CUDNN_CONV:
        return CUDNN_CONV[target.group(1)]
    op_name = _op_name(instruction)
    if _elements(instruction.shape) in kernel_elements and (not op_name or "transpose(" in op_name):
        return "backward-filter"
    return "backward-data" if "transpose(" in op_name else "forward"


def _op_name(instruction: _Instruction) -> str:
    found = re.search(r'op_name="([^"]*)"', instruction.attributes)
    return found.group(1) if found else ""


def _called(instruction: _Instruction) -> list[str]:
    return re.findall(r"(?:calls|body|condition|to_apply|branch_computations)=\{?%?([\w.\-]+)",
                      instruction.attributes)


def _is_conv(instruction: _Instruction) -> bool:
    if instruction.opcode == "convolution":
        return True
    target = re.search(r'custom_call_target="([^"]+)"', instruction.attributes)
    return instruction.opcode == "custom-call" and bool(target) and target.group(1) in CUDNN_CONV


def program_ops(text: str) -> list[Op]:
    """Every op the program runs (fusions as one op), with FLOPs, bytes and category."""
    computations, entry = parse_module(text)
    shapes = {i.name: i.shape for body in computations.values() for i in body}
    kernel_elements = {
        _elements(i.shape) for i in computations.get(entry, ())
        if i.opcode == "parameter" and len(_dims(i.shape)) == 4 and max(_dims(i.shape)[:2]) <= 7}

    def inner_cost(computation: str) -> tuple[float, set[str], list[_Instruction]]:
        """(FLOPs, opcodes, convolutions) of a fused computation and what it calls."""
        flops, opcodes, convs = 0.0, set(), []
        for i in computations.get(computation, ()):
            opcodes.add(i.opcode)
            flops += _op_flops(i, shapes)
            convs += [i] if _is_conv(i) else []
            if i.opcode == "fusion":
                for called in _called(i):
                    sub = inner_cost(called)
                    flops += sub[0]
                    opcodes |= sub[1]
                    convs += sub[2]
        return flops, opcodes, convs

    ops: list[Op] = []
    fused = {c for body in computations.values() for i in body if i.opcode == "fusion"
             for c in _called(i)}
    applied = {c for body in computations.values() for i in body if i.opcode != "fusion"
               and i.opcode not in ("while", "call", "conditional") for c in _called(i)}
    for name, body in computations.items():
        if name in fused or name in applied:
            continue  # Inside a fusion, or a reduction's / sort's scalar function.
        for i in body:
            if i.opcode in FREE or i.opcode.endswith("-done"):  # An async op's wait.
                continue
            moved = _bytes_moved(i, shapes, computations)
            if i.opcode == "fusion":
                flops, opcodes, convs = 0.0, set(), []
                for called in _called(i):
                    f, o, c = inner_cost(called)
                    flops, opcodes, convs = flops + f, opcodes | o, convs + c
            else:
                flops, opcodes, convs = _op_flops(i, shapes), {i.opcode}, \
                    [i] if _is_conv(i) else []
            if convs:
                category = f"convolution {_conv_direction(convs[0], kernel_elements)}"
            elif i.opcode.startswith(COLLECTIVES):
                category = "collectives"
            elif i.opcode == "custom-call" and re.search(
                    r'custom_call_target="\w*(Concat|Bitcast|Copy|Slice)', i.attributes):
                category = "pads, copies and transposes"
            elif "reduce" in opcodes and any(len(_dims(shapes.get(o, ""))) >= 4
                                             for o in _reduce_inputs(i, computations)):
                category = "norm reductions"
            elif opcodes <= DATA_MOVEMENT:
                category = "pads, copies and transposes"
            else:
                category = "other fusions"
            asynchronous = i.opcode in ASYNC_TRANSFERS or (
                i.opcode == "custom-call" and category == "pads, copies and transposes")
            ops.append(Op(i.name, i.opcode, category, flops, float(moved), i.shape,
                          _op_name(i), asynchronous))
    return ops


SLICING = {"slice", "dynamic-slice", "gather", "bitcast", "get-tuple-element"}


def _bytes_moved(instruction: _Instruction, shapes: dict[str, str], computations) -> float:
    """HBM bytes an op reads and writes: its output and operands, where an operand only sliced
    (a slice / dynamic-slice / gather of a fusion parameter) counts the slices it reads, and an
    async op's start counts its transfer once in and out (its done is free)."""
    if instruction.opcode.endswith("-start"):
        arrays = [dims for dims in (_ARRAY.findall(instruction.shape)) if dims[1]]
        sizes = [shape_bytes(f"{dtype}[{dims}]") for dtype, dims in arrays]
        return 2.0 * min(sizes) if sizes else 0.0
    read = [shape_bytes(shapes.get(o, "")) for o in instruction.operands]
    if instruction.opcode in ("slice", "dynamic-slice", "gather"):
        read = [shape_bytes(instruction.shape)]
    elif instruction.opcode == "dynamic-update-slice" and len(instruction.operands) > 1:
        return 2.0 * shape_bytes(shapes.get(instruction.operands[1], ""))  # In place.
    elif instruction.opcode == "fusion":
        called = _called(instruction)
        body = computations.get(called[0], ()) if called else ()
        if body and body[-1].opcode == "dynamic-update-slice" and len(body[-1].operands) > 1:
            return 2.0 * shape_bytes(shapes.get(body[-1].operands[1], ""))  # In place.
        params = {inner.name: int(inner.arguments) for inner in body
                  if inner.opcode == "parameter" and inner.arguments.strip().isdigit()}
        users: dict[str, list] = {name: [] for name in params}
        for inner in body:
            for operand in inner.operands:
                if operand in users:
                    users[operand].append(inner)
        for name, index in params.items():
            uses = users[name]
            if index < len(read) and uses and all(u.opcode in ("slice", "dynamic-slice", "gather")
                                                  and u.operands[0] == name for u in uses):
                read[index] = min(read[index], sum(shape_bytes(u.shape) for u in uses))
    return float(shape_bytes(instruction.shape) + sum(read))


def _op_flops(instruction: _Instruction, shapes: dict[str, str]) -> float:
    """One instruction's own FLOPs (a fusion's are its computation's)."""
    if _is_conv(instruction):
        return conv_flops(instruction, shapes)
    if instruction.opcode == "dot":
        return dot_flops(instruction, shapes)
    if instruction.opcode in ELEMENTWISE:
        return float(_elements(instruction.shape))
    if instruction.opcode == "reduce" and instruction.operands:
        return float(_elements(shapes.get(instruction.operands[0], "")))
    return 0.0


def _reduce_inputs(instruction: _Instruction, computations) -> list[str]:
    """The operands of the reduces in an op (itself, or inside its fusion)."""
    if instruction.opcode == "reduce":
        return instruction.operands[:1]
    found = []
    for called in _called(instruction):
        for inner in computations.get(called, ()):
            found += _reduce_inputs(inner, computations)
    return found


def conv_program_flops(text: str) -> float:
    """The FLOPs of a program's convolutions (cuDNN custom calls included)."""
    return sum(op.flops for op in program_ops(text) if op.category.startswith("convolution"))


@dataclasses.dataclass
class Roofline:
    """A program's ops on a chip's roofline: each takes max(FLOPs / peak, bytes / bandwidth)."""

    peak_flops: float
    bandwidth: float
    ops: list[Op]

    @property
    def seconds(self) -> float:
        return sum(op.seconds(self.peak_flops, self.bandwidth) for op in self.ops)

    @property
    def seconds_overlapped(self) -> float:
        """The time with every asynchronous transfer hidden under compute: the other bound of
        the estimate (`seconds` runs them one after another)."""
        return sum(op.seconds(self.peak_flops, self.bandwidth) for op in self.ops
                   if not op.asynchronous)

    @property
    def flops(self) -> float:
        return sum(op.flops for op in self.ops)

    @property
    def share_of_peak(self) -> float:
        """FLOP/s the program reaches at its roofline time, over the chip's peak."""
        return self._share(self.seconds)

    @property
    def share_of_peak_overlapped(self) -> float:
        return self._share(self.seconds_overlapped)

    def _share(self, seconds: float) -> float:
        return self.flops / seconds / self.peak_flops if seconds else 0.0

    def by_category(self) -> dict[str, dict]:
        rows = {c: {"ops": 0, "flops": 0.0, "bytes": 0.0, "seconds": 0.0, "memory_bound": 0}
                for c in CATEGORIES}
        for op in self.ops:
            row = rows[op.category]
            row["ops"] += 1
            row["flops"] += op.flops
            row["bytes"] += op.bytes
            row["seconds"] += op.seconds(self.peak_flops, self.bandwidth)
            row["memory_bound"] += op.bound(self.peak_flops, self.bandwidth) == "memory"
        return rows

    def costliest(self, n: int = 15) -> list[Op]:
        return sorted(self.ops, key=lambda op: -op.seconds(self.peak_flops, self.bandwidth))[:n]

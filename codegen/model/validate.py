"""Checks of the graph's meaning that precede operator preparation.

The reader guarantees a well-formed file (indices of buffers, tensors and opcodes in range,
constant data of the size its shape implies); this module says whether the graph is one
the generator can take at all, before each operator module checks its own options:

- structure: graph inputs and outputs are distinct tensors; every operator writes real
  tensors that no other operator, graph input or constant claims; every tensor an
  operator reads is a graph input, a constant, a variable (state, see codegen/state.py)
  or written by an earlier operator (no cycle, file order is run order); every graph
  output is written; the same for each CALL_ONCE initializer, which must have no inputs
  or outputs (TFLM's CALL_ONCE requires it);
- tensors: shapes of positive dimensions and of a size a microcontroller can hold, of no
  more dimensions than TFLM's kernels take (6, RuntimeShape's capacity; 8 for SQUEEZE, any
  for RESHAPE, which only copy bytes; at most 31 anywhere, the numpy reference's limit);
  variable tensors of a numeric type;
- quantization: one zero point per scale, scales positive and finite; where a kernel reads
  them, per-channel arrays as long as their dimension and zero points representable in
  their type (0 for int32 and int64; the int16 kernels that require or ignore a zero point
  of 0 check it themselves). A tensor with one scale is per-tensor whatever its
  quantized_dimension says, and a bias's quantized dimension and zero point are not
  checked: TFLM reads neither (see _unread_quantization);
- the model is fully quantized, int8 or 16x8 (int16 activations with int8 weights; int32
  and bool tensors, such as indices and comparison results, are not quantized values and
  may appear anywhere; float32 only around QUANTIZE, DEQUANTIZE and DETECTION_POSTPROCESS,
  and in resource variables, which READ_VARIABLE and ASSIGN_VARIABLE copy as bytes), and
  its inputs and outputs are types the C API takes: int8/uint8/int16 with per-tensor
  quantization, float32, int32 and bool;
- the bias of FULLY_CONNECTED and the convolutions has the scale input x weights, within
  TFLM's tolerance, since the kernels add it as if it had.

Only tensors that an operator or the graph's I/O uses are checked: a stray unused tensor
changes nothing in the generated code.
"""

from __future__ import annotations

import math

from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Tensor

# Operators allowed to touch float tensors: the edges of a float-I/O model;
# DETECTION_POSTPROCESS, whose TFLM kernel takes float32 boxes and scores (dequantized int8
# ones, in an int8 model) and writes float32 detections; and the copies in and out of a
# resource variable (the converter keeps those in float32 unless it quantizes variables).
_FLOAT_EDGE_OPS = ("QUANTIZE", "DEQUANTIZE", "DETECTION_POSTPROCESS", "READ_VARIABLE",
                   "ASSIGN_VARIABLE")
_IO_TYPES = (DType.INT8, DType.UINT8, DType.INT16, DType.FLOAT32, DType.INT32, DType.BOOL)

FULL_INT8_HINT = (
    "convert it with full-integer post-training quantization (a representative dataset and "
    "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8])"
)
_CORRUPT = "the file is corrupt or was not written by the TFLite converter; re-export the model"

# One tensor may hold at most 2^24 elements (16 MiB of int8): more than the RAM of any
# microcontroller, and small enough that every generation-time table stays cheap.
MAX_TENSOR_ELEMENTS = 1 << 24
# The activations together must fit a 32-bit address space.
MAX_ACTIVATION_BYTES = (1 << 31) - 1

# TFLM's kernels see shapes through RuntimeShape, which holds at most kMaxSmallSize = 6
# dimensions (a longer shape overruns it, unchecked in release builds). The exceptions only
# copy bytes: RESHAPE looks at no shape, SQUEEZE ensures at most 8 dimensions. The numpy
# reference adds a batch axis in front, and numpy 1.x holds at most 32.
MAX_RANK = 6
_COPY_RANKS = {"RESHAPE": 31, "SQUEEZE": 8}
MAX_ANY_RANK = 31

# Operators whose inputs are (input, weights, bias) and whose kernels add the int32 bias to
# the accumulator of input x weights, i.e. as if its scale were input scale x weight scale.
_BIAS_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
# TFLM's tolerance (GetQuantizedConvolutionMultipler): |in*w - bias| / out <= 0.02.
BIAS_SCALE_TOLERANCE = 0.02


def validate_graph(graph: Graph, label: str = "model") -> None:
    """The main graph, then each CALL_ONCE initializer (which has no inputs or outputs)."""
    if not graph.operators:
        raise UnsupportedError(f"{label}: the model has no operators")
    _check_io_lists(graph, label)
    _check_subgraph(graph, label)
    for index, init in sorted(graph.init_graphs.items()):
        where = f"{label}: subgraph {index} (a CALL_ONCE initializer)"
        _check_initializer_io(init, where)
        _check_subgraph(init, where)


def _check_initializer_io(graph: Graph, label: str) -> None:
    """TFLM's CALL_ONCE requires an initializer without inputs or outputs (nothing could
    set the one or read the other)."""
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        if indices:
            raise UnsupportedError(
                f"{label} declares {len(indices)} graph {role}(s); TFLM's CALL_ONCE runs "
                f"only initializers without inputs or outputs; {_CORRUPT}")


def _check_subgraph(graph: Graph, label: str) -> None:
    used = _used_tensors(graph)
    for index in used:
        _check_shape(graph.tensors[index], label)
    _check_ranks(graph, used, label)
    _check_variable_types(graph, used, label)
    _check_dataflow(graph, label)
    _check_quantized(graph, label)
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            _check_io_tensor(graph.tensors[i], role, label)
    unread = _unread_quantization(graph)
    for index in used:
        _check_quantization(graph.tensors[index], label, read=index not in unread)
    _check_activation_bytes(graph, used, label)
    for op in graph.operators:
        if op.opcode in _BIAS_OPS:
            _check_bias_scale(op, graph, label)


# -- structure --------------------------------------------------------------------------------


def _used_tensors(graph: Graph) -> list[int]:
    used = {*graph.inputs, *graph.outputs}
    for op in graph.operators:
        used.update(i for i in (*op.inputs, *op.outputs) if i >= 0)
    return sorted(used)


def _name(graph: Graph, index: int) -> str:
    return f"'{graph.tensors[index].name}'"


def _where(op: Operator) -> str:
    return f"operator {op.index} ({op.opcode})"


def _check_io_lists(graph: Graph, label: str) -> None:
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        seen: set[int] = set()
        for i in indices:
            if i < 0:
                raise UnsupportedError(f"{label}: graph {role} refers to no tensor; {_CORRUPT}")
            if i in seen:
                raise UnsupportedError(
                    f"{label}: tensor {_name(graph, i)} is listed twice as a graph {role}; "
                    f"{_CORRUPT}"
                )
            seen.add(i)
    for i in set(graph.inputs) & set(graph.outputs):
        raise UnsupportedError(
            f"{label}: tensor {_name(graph, i)} is both a graph input and a graph output; "
            "a model whose output is its input needs no code"
        )
    for i in graph.inputs:
        if graph.tensors[i].is_constant:
            raise UnsupportedError(
                f"{label}: graph input {_name(graph, i)} is a constant tensor; {_CORRUPT}"
            )


def _check_dataflow(graph: Graph, label: str) -> None:
    """A variable tensor holds the previous invoke's value until an operator writes it: it
    may be read anywhere, and reading it before its producer is no cycle."""
    producer: dict[int, Operator] = {}
    inputs = set(graph.inputs)
    for op in graph.operators:
        for t in op.outputs:
            if t < 0:
                raise UnsupportedError(f"{label}: {_where(op)} has an output that refers to no "
                                       f"tensor; {_CORRUPT}")
            if t in producer:
                other = producer[t]
                by = "twice by it" if other is op else f"also by {_where(other)}"
                raise UnsupportedError(
                    f"{label}: tensor {_name(graph, t)} is written by {_where(op)} and {by}; "
                    f"every tensor needs a single producer; {_CORRUPT}"
                )
            if t in inputs:
                raise UnsupportedError(
                    f"{label}: {_where(op)} writes graph input {_name(graph, t)}; {_CORRUPT}"
                )
            if graph.tensors[t].is_constant:
                raise UnsupportedError(
                    f"{label}: {_where(op)} writes constant tensor {_name(graph, t)}; {_CORRUPT}"
                )
            producer[t] = op
    for op in graph.operators:
        for t in op.inputs:
            if (t < 0 or t in producer or t in inputs or graph.tensors[t].is_constant
                    or graph.tensors[t].is_variable):
                continue
            raise UnsupportedError(
                f"{label}: {_where(op)} reads tensor {_name(graph, t)}, which no operator "
                f"writes and which is neither a graph input nor a constant; {_CORRUPT}"
            )
    for t in graph.outputs:
        if t not in producer:
            raise UnsupportedError(
                f"{label}: graph output {_name(graph, t)} is not written by any operator; "
                f"{_CORRUPT}"
            )
    flowing = {t: op for t, op in producer.items() if not graph.tensors[t].is_variable}
    _check_acyclic(graph, flowing, label)
    _check_file_order(graph, flowing, label)


def _check_file_order(graph: Graph, producer: dict[int, Operator], label: str) -> None:
    """TFLite runs the operators in file order (TFLM too); an operator that reads a tensor
    before the operator that writes it would read garbage there."""
    position = {op.index: k for k, op in enumerate(graph.operators)}
    for k, op in enumerate(graph.operators):
        for t in op.inputs:
            if t >= 0 and t in producer and position[producer[t].index] > k:
                raise UnsupportedError(
                    f"{label}: {_where(op)} reads tensor {_name(graph, t)} before "
                    f"{_where(producer[t])} writes it; operators must be stored in the order "
                    f"they run; {_CORRUPT}"
                )


def _check_acyclic(graph: Graph, producer: dict[int, Operator], label: str) -> None:
    """The operators must not form a cycle (checked before the file order, to say so)."""
    deps = {
        op.index: {producer[t].index for t in op.inputs if t >= 0 and t in producer}
        for op in graph.operators
    }
    by_index = {op.index: op for op in graph.operators}
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for root in deps:
        if state.get(root):
            continue
        path = [root]
        stack = [iter(sorted(deps[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                cycle = [by_index[i] for i in path[path.index(nxt):]]
                if len(cycle) == 1:
                    what = f"{_where(cycle[0])} reads its own output"
                else:
                    ops = ", ".join(_where(op) for op in sorted(cycle, key=lambda o: o.index))
                    what = f"{ops} form a cycle: each needs the other's result first"
                raise UnsupportedError(f"{label}: {what}; {_CORRUPT}")
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(deps[nxt])))


# -- tensors ----------------------------------------------------------------------------------


def _check_shape(t: Tensor, label: str) -> None:
    shape = list(t.shape)
    if any(d < 0 for d in shape):
        raise UnsupportedError(
            f"{label}: tensor '{t.name}' has a negative dimension in its shape {shape}; "
            "export the model with fixed shapes"
        )
    if any(d == 0 for d in shape):
        raise UnsupportedError(
            f"{label}: tensor '{t.name}' has a zero dimension in its shape {shape}; "
            "tensors without elements are not supported"
        )
    if t.size > MAX_TENSOR_ELEMENTS:
        count = str(t.size) if t.size < 10**15 else f"about 10^{int(math.log10(t.size))}"
        if len(shape) > 8:
            shape_text = f"{str(shape[:8])[:-1]}, ... ({len(shape)} dimensions)]"
        else:
            shape_text = str(shape)
        raise UnsupportedError(
            f"{label}: tensor '{t.name}' has {count} elements (shape {shape_text}); codegen "
            f"takes at most {MAX_TENSOR_ELEMENTS} elements per tensor, more than a "
            "microcontroller can hold"
        )


def _check_variable_types(graph: Graph, used: list[int], label: str) -> None:
    """State is held as numbers: a variable tensor of another type (string, float16,
    complex, resource) has no size or reset value codegen could give it."""
    for index in used:
        t = graph.tensors[index]
        if t.is_variable and t.dtype is DType.OTHER:
            raise UnsupportedError(
                f"{label}: variable tensor '{t.name}' is {t.dtype_name}; codegen keeps state "
                "only in numeric tensors (int8, int16, int32, float32...); re-export the "
                "model with a numeric state")


def _check_ranks(graph: Graph, used: list[int], label: str) -> None:
    for index in used:
        t = graph.tensors[index]
        if len(t.shape) > MAX_ANY_RANK:
            raise UnsupportedError(
                f"{label}: tensor '{t.name}' has {len(t.shape)} dimensions; codegen takes at "
                f"most {MAX_ANY_RANK}"
            )
    for op in graph.operators:
        limit = _COPY_RANKS.get(op.opcode, MAX_RANK)
        for index in (*op.inputs, *op.outputs):
            if index < 0 or len(graph.tensors[index].shape) <= limit:
                continue
            t = graph.tensors[index]
            why = ("TFLM's kernels hold a shape in at most 6 (RuntimeShape)" if limit == MAX_RANK
                   else f"TFLM's {op.opcode} takes at most {limit}")
            raise UnsupportedError(
                f"{label}: tensor '{t.name}' of {_where(op)} has {len(t.shape)} dimensions; "
                f"{why}"
            )


def _check_activation_bytes(graph: Graph, used: list[int], label: str) -> None:
    total = sum(graph.tensors[i].nbytes for i in used if not graph.tensors[i].is_constant)
    if total > MAX_ACTIVATION_BYTES:
        raise UnsupportedError(
            f"{label}: the model's intermediate tensors total {total} bytes, more than a "
            "32-bit microcontroller can address"
        )


# Where operators read their biases: TFLM's kernels add them as raw int32/int64 values and
# never read their quantized dimension or zero point (the scale is checked against input x
# weights by _check_bias_scale).
_BIAS_INPUTS = {
    "FULLY_CONNECTED": (2,), "CONV_2D": (2,), "DEPTHWISE_CONV_2D": (2,), "TRANSPOSE_CONV": (3,),
    "SVDF": (3,), "UNIDIRECTIONAL_SEQUENCE_LSTM": (12, 13, 14, 15, 17),
}


def _unread_quantization(graph: Graph) -> set[int]:
    """Constant int32/int64 tensors that operators read only as biases. TFLM's person
    detector stores its depthwise biases (one scale per channel) with quantized_dimension
    3, copied from the weights, and TFLM runs it."""
    bias: set[int] = set()
    other: set[int] = set()
    for op in graph.operators:
        positions = _BIAS_INPUTS.get(op.opcode, ())
        for position, t in enumerate(op.inputs):
            if t >= 0:
                (bias if position in positions else other).add(t)
    return {t for t in bias - other
            if graph.tensors[t].is_constant and graph.tensors[t].dtype in (DType.INT32,
                                                                          DType.INT64)}


def _check_quantization(t: Tensor, label: str, read: bool = True) -> None:
    """`read`: whether a kernel reads the quantized dimension and the zero points (not for
    biases: see _unread_quantization). A tensor with one scale is quantized per tensor
    whatever its quantized_dimension says, as TFLM reads it."""
    q = t.quant
    if q is None or not t.dtype.is_integer:
        return  # a float tensor's quantization parameters are never read
    what = f"{label}: tensor '{t.name}'"
    if len(q.zero_points) != len(q.scales):
        raise UnsupportedError(
            f"{what} has {len(q.scales)} quantization scales but {len(q.zero_points)} zero "
            f"points; {_CORRUPT}"
        )
    if q.per_channel and read:
        if not 0 <= q.axis < len(t.shape):
            raise UnsupportedError(
                f"{what} is quantized along dimension {q.axis}, which its shape "
                f"{list(t.shape)} does not have; {_CORRUPT}"
            )
        if len(q.scales) != t.shape[q.axis]:
            raise UnsupportedError(
                f"{what} has {len(q.scales)} quantization scales for dimension {q.axis} of "
                f"size {t.shape[q.axis]} (shape {list(t.shape)}); {_CORRUPT}"
            )
    for c, scale in enumerate(q.scales):
        if not (math.isfinite(scale) and scale > 0):
            channel = f" (channel {c})" if q.per_channel else ""
            raise UnsupportedError(
                f"{what} has quantization scale {scale}{channel}; scales must be positive "
                f"and finite; {_CORRUPT}"
            )
    if not read:
        return
    if t.dtype in (DType.INT32, DType.INT64):
        low = high = 0
    else:
        low, high = t.dtype.qmin, t.dtype.qmax
    for c, zp in enumerate(q.zero_points):
        if not low <= zp <= high:
            channel = f" (channel {c})" if q.per_channel else ""
            allowed = "must be 0" if low == high else f"must lie in [{low}, {high}]"
            raise UnsupportedError(
                f"{what} is {t.dtype_name} with zero point {zp}{channel}; it {allowed}; "
                f"{_CORRUPT}"
            )


# -- quantization of the whole model ----------------------------------------------------------


def _check_quantized(graph: Graph, label: str) -> None:
    for op in graph.operators:
        if op.opcode in _FLOAT_EDGE_OPS:
            continue
        for t in (graph.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0):
            if t.dtype is DType.FLOAT32:
                kind = "float weights" if t.is_constant else "float activations"
                hybrid = any(
                    graph.tensors[i].is_constant and graph.tensors[i].dtype is DType.INT8
                    for i in op.inputs if i >= 0
                )
                what = "dynamic-range (hybrid) quantized" if hybrid else "not quantized"
                raise UnsupportedError(
                    f"{label}: operator {op.index} ({op.opcode}) has {kind} ('{t.name}'): "
                    f"the model is {what}; codegen needs a fully int8-quantized model: "
                    f"{FULL_INT8_HINT}"
                )


def _check_io_tensor(t: Tensor, role: str, label: str) -> None:
    if t.dtype not in _IO_TYPES:
        raise UnsupportedError(
            f"{label}: graph {role} '{t.name}' is {t.dtype_name}; supported I/O types are "
            "int8, uint8, int16, float32, int32 and bool"
        )


def _check_bias_scale(op: Operator, graph: Graph, label: str) -> None:
    """bias scale == input scale x weight scale, within TFLM's tolerance.

    TFLM checks this only for FULLY_CONNECTED with per-tensor weights (and for uint8
    convolutions): |in*w - bias| / out <= 0.02, in double, with the bias's first scale (0
    when it has none). The same tolerance is applied here per channel and to the int8
    convolutions, where TFLM does not look, when the bias carries scales: a bias scaled
    otherwise would be added as if it had the product's scale, a silently wrong answer.
    The operator modules check everything else (types, shapes, which inputs exist).
    """
    if len(op.inputs) < 3 or min(op.inputs[:3]) < 0 or not op.outputs:
        return
    x, w, b = (graph.tensors[i] for i in op.inputs[:3])
    y = graph.tensors[op.outputs[0]]
    if any(t.quant is None for t in (x, w, y)) or b.dtype not in (DType.INT32, DType.INT64):
        return
    in_scale, out_scale = float(x.quant.scale), float(y.quant.scale)
    w_scales = [float(s) for s in w.quant.scales]
    if b.quant is None:
        if w.quant.per_channel or op.opcode != "FULLY_CONNECTED":
            return  # nothing to compare; TFLM does not look either
        b_scales = [0.0]
    else:
        b_scales = [float(s) for s in b.quant.scales]
    for c, w_scale in enumerate(w_scales):
        product = in_scale * w_scale
        bias_scale = b_scales[c] if len(b_scales) == len(w_scales) else b_scales[0]
        if abs(product - bias_scale) / out_scale <= BIAS_SCALE_TOLERANCE:
            continue
        channel = f" (channel {c})" if len(w_scales) > 1 else ""
        raise UnsupportedError(
            f"{label}: {_where(op)}: bias '{b.name}' has scale {bias_scale:.9g}{channel}, but "
            f"input scale x weight scale is {product:.9g}; the kernel adds the bias as if "
            "it had the latter, and the difference exceeds TFLM's tolerance of "
            f"{BIAS_SCALE_TOLERANCE:g} x the output scale; re-export the model"
        )

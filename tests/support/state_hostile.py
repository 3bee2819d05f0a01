"""Hostile models around state (variable tensors, resource variables, CALL_ONCE
initializers), written with the builder: each is small and legal to the flatbuffer reader,
and each once made codegen fail in a way the CLI's contract forbids (an internal error,
unbounded time or memory, a silent acceptance). tests/test_fuzz_regressions.py and
tests/test_bounded_input.py check what codegen does with them now.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q

_Q = Q(0.05, 3)


def resource(b: ModelBuilder, name: str) -> int:
    tensor = schema.TensorT()
    tensor.name = name
    tensor.shape = []
    tensor.type = schema.TensorType.RESOURCE
    b._current.tensors.append(tensor)
    return len(b._current.tensors) - 1


def var_handle(b: ModelBuilder, name: str, shared_name: str) -> int:
    handle = resource(b, name)
    options = schema.VarHandleOptionsT()
    options.sharedName = shared_name
    b.add_op("VAR_HANDLE", [], [handle], options)
    return handle


def call_once(index: int) -> object:
    options = schema.CallOnceOptionsT()
    options.initSubgraphIndex = index
    return options


def _main_counter(b: ModelBuilder, width: int, shared_name: str = "counter") -> None:
    """state += x; output = the new state (a resource variable of `width` int8)."""
    b.add_op("CALL_ONCE", [], [], call_once(1))
    h = var_handle(b, "h", shared_name)
    x = b.add_tensor("x", (1, width), "int8", quant=_Q)
    old = b.add_tensor("old", (1, width), "int8", quant=_Q)
    b.add_op("READ_VARIABLE", [h], [old])
    y = b.add_tensor("y", (1, width), "int8", quant=_Q)
    add = schema.AddOptionsT()
    add.fusedActivationFunction = 0
    b.add_op("ADD", [old, x], [y], add)
    b.add_op("ASSIGN_VARIABLE", [h, y], [])
    b.set_io([x], [y])


def counter(shared_name: str = "counter") -> bytes:
    """The well-formed model the others bend: state += x from a CALL_ONCE initializer's
    nonzero start, in the resource variable `shared_name`."""
    b = ModelBuilder()
    _main_counter(b, 4, shared_name)
    b.new_subgraph("init")
    h = var_handle(b, "h", shared_name)
    start = b.add_tensor("start", (1, 4), "int8", quant=_Q, data=np.array([[7, -50, 100, 3]]))
    b.add_op("ASSIGN_VARIABLE", [h, start], [])
    b.set_io([], [])
    return b.build()


def initializer_with_input() -> bytes:
    """The CALL_ONCE subgraph declares an input (TFLM's CALL_ONCE requires none: nothing
    could set it) and assigns it to the variable."""
    b = ModelBuilder()
    _main_counter(b, 4)
    b.new_subgraph("init")
    h = var_handle(b, "h", "counter")
    u = b.add_tensor("u", (1, 4), "int8", quant=_Q)
    b.add_op("ASSIGN_VARIABLE", [h, u], [])
    b.set_io([u], [])
    return b.build()


def initializer_with_output() -> bytes:
    """The CALL_ONCE subgraph declares an output (TFLM's CALL_ONCE requires none)."""
    b = ModelBuilder()
    _main_counter(b, 4)
    b.new_subgraph("init")
    h = var_handle(b, "h", "counter")
    r = b.add_tensor("r", (1, 4), "int8", quant=_Q)
    b.add_op("READ_VARIABLE", [h], [r])
    v = b.add_tensor("v", (1, 4), "int8", quant=_Q)
    b.add_op("RELU", [r], [v])
    b.add_op("ASSIGN_VARIABLE", [h, v], [])
    b.set_io([], [v])
    return b.build()


def heavy_initializer(elements: int = 1 << 24, layers: int = 100) -> bytes:
    """A few kilobytes whose CALL_ONCE subgraph reads a resource variable of `elements`
    int8 values (sized by the main graph's ASSIGN_VARIABLE of its output) and runs `layers`
    RELUs over it at generation time (100 x 16M values: minutes and gigabytes)."""
    b = ModelBuilder()
    b.add_op("CALL_ONCE", [], [], call_once(1))
    h = var_handle(b, "h", "big")
    x = b.add_tensor("x", (1, elements), "int8", quant=_Q)
    y = b.add_tensor("y", (1, elements), "int8", quant=_Q)
    b.add_op("RELU", [x], [y])
    b.add_op("ASSIGN_VARIABLE", [h, y], [])
    b.set_io([x], [y])
    b.new_subgraph("init")
    h = var_handle(b, "h", "big")
    v = b.add_tensor("v0", (1, elements), "int8", quant=_Q)
    b.add_op("READ_VARIABLE", [h], [v])
    for k in range(layers):
        w = b.add_tensor(f"v{k + 1}", (1, elements), "int8", quant=_Q)
        b.add_op("RELU", [v], [w])
        v = w
    b.add_op("ASSIGN_VARIABLE", [h, v], [])
    b.set_io([], [])
    return b.build()


def variable_of_type(type_code: int, opcode: str = "RESHAPE") -> bytes:
    """A variable tensor of a non-numeric type (`schema.TensorType`: STRING, FLOAT16,
    COMPLEX64, RESOURCE...) read by `opcode` in the main graph."""
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=_Q)
    var = b.add_tensor("var", (1, 4), "int8", quant=_Q, variable=True)
    b._current.tensors[var].type = type_code
    copy = b.add_tensor("copy", (1, 4), "int8", quant=_Q)
    b._current.tensors[copy].type = type_code
    b.add_op(opcode, [var], [copy])
    y = b.add_tensor("y", (1, 4), "int8", quant=_Q)
    add = schema.AddOptionsT()
    add.fusedActivationFunction = 0
    b.add_op("ADD", [x, x], [y], add)
    b.set_io([x], [y])
    return b.build()


# -- the recurrent kernels at the extremes of their integer types -------------------------


def _extreme_constants(model: bytes, seed: int) -> bytes:
    """Every constant weight of the SVDF and LSTM operators at its type's extremes (a
    random mix of the minimum, the maximum and -1, 0, 1) and every int32 bias alternating
    INT32_MAX and INT32_MIN: the accumulators, the folded input offsets and the state at
    their limits."""
    from support.builder import pack, read_model

    parsed = read_model(model)
    rng = np.random.default_rng(seed)
    types = {schema.TensorType.INT8: np.int8, schema.TensorType.INT16: np.int16,
             schema.TensorType.INT32: np.int32}
    recurrent = (schema.BuiltinOperator.SVDF, schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM)
    graph = parsed.subgraphs[0]
    operands = {t for op in graph.operators
                if parsed.operatorCodes[op.opcodeIndex].builtinCode in recurrent
                for t in op.inputs if t >= 0}
    for tensor in (graph.tensors[t] for t in sorted(operands)):
        buffer = parsed.buffers[tensor.buffer]
        if tensor.isVariable or buffer.data is None or len(buffer.data) == 0 \
                or tensor.type not in types:
            continue
        dtype = np.dtype(types[tensor.type]).newbyteorder("<")
        count = len(buffer.data) // dtype.itemsize
        info = np.iinfo(dtype)
        if tensor.type == schema.TensorType.INT32:
            values = np.resize(np.array([info.max, info.min], dtype), count)
        else:
            # TFLM's int8 weights are symmetric (-127..127) where it checks; -128 elsewhere
            low = info.min if tensor.type == schema.TensorType.INT16 else -127
            values = rng.choice(np.array([low, info.max, -1, 0, 1, low, info.max], dtype),
                                count)
        buffer.data = np.frombuffer(values.astype(dtype).tobytes(), np.uint8)
    return pack(parsed)


def extreme_svdf(state: str, seed: int = 0) -> bytes:
    """An SVDF with its zero points at the ends of their ranges and its constants at the
    extremes (state int8 or int16: the time weights' type)."""
    from support import svdf_models as sm

    case = sm.SvdfCase(depth=9, units=3, rank=2, memory=5, batch=2, state=state,
                       state_zero_point=-128 if state == "int8" else -32768,
                       input_zero_point=127, output_zero_point=-128, spread=40.0)
    return _extreme_constants(sm.single(case, seed), seed)


def extreme_lstm(name: str, int16: bool = False, seed: int = 0) -> bytes:
    """A converted LSTM (support.lstm_models; 16x8 with `int16`) with its constants at the
    extremes."""
    from support import lstm_models as lm

    model = lm.lstm_model(lm.SPECS[name])
    return _extreme_constants(lm.to_16x8(model) if int16 else model, seed)


def with_options(model: bytes, **options: object) -> bytes:
    """The model with its first operator's builtin options changed (schema field names)."""
    from support.builder import pack, read_model

    parsed = read_model(model)
    for key, value in options.items():
        setattr(parsed.subgraphs[0].operators[0].builtinOptions, key, value)
    return pack(parsed)


def many_resources(count: int = 200, elements: int = 1 << 24, assign: bool = True,
                   initializer: bool = False) -> bytes:
    """A few kilobytes that ASSIGN_VARIABLE one activation of `elements` int8 values to
    `count` resource variables: a state block of count x elements bytes (without `assign`,
    only their VAR_HANDLEs). `initializer`: and a CALL_ONCE subgraph that sets one more,
    small, variable."""
    b = ModelBuilder()
    if initializer:
        b.add_op("CALL_ONCE", [], [], call_once(1))
        small = var_handle(b, "small", "small")
    x = b.add_tensor("x", (1, elements), "int8", quant=_Q)
    y = b.add_tensor("y", (1, elements), "int8", quant=_Q)
    b.add_op("RELU", [x], [y])
    for k in range(count):
        h = var_handle(b, f"h{k}", f"v{k}")
        if assign:
            b.add_op("ASSIGN_VARIABLE", [h, y], [])
    if initializer:
        r = b.add_tensor("r", (1, 4), "int8", quant=_Q)
        b.add_op("READ_VARIABLE", [small], [r])
    b.set_io([x], [y])
    if initializer:
        b.new_subgraph("init")
        h = var_handle(b, "h", "small")
        start = b.add_tensor("start", (1, 4), "int8", quant=_Q, data=np.array([[1, 2, 3, 4]]))
        b.add_op("ASSIGN_VARIABLE", [h, start], [])
        b.set_io([], [])
    return b.build()

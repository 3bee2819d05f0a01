"""Model validation beyond the flatbuffer schema: every defect ends in one CodegenError line
that names the tensor or operator; sound models that merely look unusual are accepted."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from support.builder import (
    ModelBuilder,
    Q,
    bias_scales,
    fc_model,
    fc_options,
    pack,
    read_model,
    reshape_options,
)
from support.conv_models import conv_options, depthwise_options
from support.verify import random_inputs, reference_matches_tflm

from codegen.emit import emit_model
from codegen.errors import CodegenError
from codegen.model.validate import MAX_TENSOR_ELEMENTS
from codegen.program import load_program

W = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)


def _fc(**changes: object) -> bytes:
    """One FULLY_CONNECTED (input 0, weights 1, bias 2, output 3), tensors then edited."""
    model = read_model(fc_model(W, input_q=Q(0.05, -3), weight_q=Q(0.01), output_q=Q(0.1, 5),
                                bias=np.array([10, -20, 30])))
    tensors = model.subgraphs[0].tensors
    for key, value in changes.items():
        index, field = key.split("_", 1)
        tensor = tensors[int(index[1:])]
        if field in ("scale", "zeroPoint", "quantizedDimension"):
            setattr(tensor.quantization, field, value)
        else:
            setattr(tensor, field, value)
    return pack(model)


def _chain(shapes: list[tuple[int, ...]], dtype: str = "int8") -> bytes:
    """RESHAPEs through tensors of the given shapes (no constant data needed)."""
    b = ModelBuilder()
    ids = [b.add_tensor(f"t{i}", s, dtype, quant=Q(0.1)) for i, s in enumerate(shapes)]
    for a, c in itertools.pairwise(ids):
        b.add_op("RESHAPE", [a], [c])
    b.set_io([ids[0]], [ids[-1]])
    return b.build()


def _graph(ops: list[tuple[list[int], list[int]]], inputs: list[int],
           outputs: list[int]) -> bytes:
    """FULLY_CONNECTED operators over tensors 0..3 (activations (1, 4)) and a constant
    weight tensor 4, wired as given."""
    b = ModelBuilder()
    for i in range(4):
        b.add_tensor(f"t{i}", (1, 4), "int8", quant=Q(0.1, i))
    w = b.add_tensor("w", (4, 4), "int8", quant=Q(0.01), data=np.eye(4) * 50)
    for ins, outs in ops:
        b.add_op("FULLY_CONNECTED", [ins[0], w, -1, *ins[1:]], outs, fc_options())
    b.set_io(inputs, outputs)
    return b.build()


def _edit_model(make: Callable[[schema.ModelT], None]) -> bytes:
    model = read_model(_fc())
    make(model)
    return pack(model)


def _sparse(model: schema.ModelT) -> None:
    model.subgraphs[0].tensors[1].sparsity = schema.SparsityParametersT()


def _custom_quant(model: schema.ModelT) -> None:
    q = model.subgraphs[0].tensors[3].quantization
    q.detailsType = schema.QuantizationDetails.CustomQuantization
    q.details = schema.CustomQuantizationT()
    q.details.custom = [1, 2]


def _wrong_options(model: schema.ModelT) -> None:
    op = model.subgraphs[0].operators[0]
    op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    op.builtinOptions = schema.SoftmaxOptionsT()


def _bias_scale(scale: float) -> bytes:
    return _fc(t2_scale=[scale])


_PRODUCT = 0.05 * 0.01  # input scale x weight scale of _fc()

BAD: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "zero_dim": (lambda: _chain([(1, 4), (1, 0)]), ("'t1'", "zero dimension", "[1, 0]")),
    "huge": (lambda: _chain([(1, 4), (4, 1 << 23)]),
             ("'t1'", "33554432 elements", str(MAX_TENSOR_ELEMENTS))),
    "activations_beyond_32_bits": (
        lambda: _chain([(1, 1 << 24)] * 130), ("intermediate tensors total", "32-bit")),
    "negative_dim": (lambda: _fc(t3_shape=[1, -3]), ("'output'", "dynamic shape")),
    "scale_zero": (lambda: _fc(t3_scale=[0.0]), ("'output'", "scale 0.0", "positive")),
    "scale_negative": (lambda: _fc(t0_scale=[-0.05]), ("'input'", "scale -0.05")),
    "scale_nan": (lambda: _fc(t1_scale=[float("nan")]), ("'weights'", "scale nan")),
    "scale_inf": (lambda: _fc(t3_scale=[float("inf")]), ("'output'", "scale inf")),
    "zero_point_int8": (lambda: _fc(t3_zeroPoint=[200]),
                        ("'output'", "zero point 200", "[-128, 127]")),
    "zero_points_length": (lambda: _fc(t1_zeroPoint=[0, 0]),
                           ("'weights'", "1 quantization scales but 2 zero points")),
    "per_channel_length": (lambda: _fc(t1_scale=[0.01, 0.02], t1_zeroPoint=[0, 0]),
                           ("'weights'", "2 quantization scales", "dimension 0 of size 3")),
    "per_channel_axis": (
        lambda: _fc(t1_scale=[0.01] * 3, t1_zeroPoint=[0] * 3, t1_quantizedDimension=2),
        ("'weights'", "dimension 2")),
    "bias_scale": (lambda: _bias_scale(_PRODUCT + 0.003),
                   ("operator 0 (FULLY_CONNECTED)", "'bias'", "scale 0.0035", "tolerance")),
    "bias_scale_missing": (lambda: _fc(t2_quantization=None, t3_scale=[0.01]),
                           ("'bias'", "scale 0,")),
    "bias_scale_per_channel": (
        lambda: _fc(t1_scale=[0.01, 0.02, 0.03], t1_zeroPoint=[0] * 3,
                    t2_scale=[*bias_scales(0.05, [0.01, 0.02]), 1.0], t2_zeroPoint=[0] * 3),
        ("'bias'", "channel 2")),
    "sparse": (lambda: _edit_model(_sparse), ("'weights'", "sparse")),
    "custom_quantization": (lambda: _edit_model(_custom_quant),
                            ("'output'", "custom quantization")),
    "options_type": (lambda: _edit_model(_wrong_options),
                     ("operator 0 (FULLY_CONNECTED)", "SoftmaxOptions",
                      "FullyConnectedOptions")),
    "unproduced": (lambda: _graph([([1], [2])], [0], [2]),
                   ("operator 0 (FULLY_CONNECTED)", "'t1'", "no operator writes")),
    "self_loop": (lambda: _graph([([0], [1]), ([2], [2])], [0], [1, 2]),
                  ("operator 1", "reads its own output")),
    "cycle": (lambda: _graph([([0], [1]), ([3], [2]), ([2], [3])], [0], [1]),
              ("operator 1 (FULLY_CONNECTED), operator 2 (FULLY_CONNECTED) form a cycle",)),
    "two_producers": (lambda: _graph([([0], [1]), ([0], [1])], [0], [1]),
                      ("'t1'", "operator 1", "also by operator 0")),
    "writes_input": (lambda: _graph([([0], [1]), ([1], [0])], [0], [1]),
                     ("operator 1", "writes graph input 't0'")),
    "writes_constant": (lambda: _graph([([0], [4])], [0], [4]),
                        ("operator 0", "writes constant tensor 'w'")),
    "output_unwritten": (lambda: _graph([([0], [1])], [0], [1, 2]),
                         ("graph output 't2'", "not written")),
    "output_twice": (lambda: _graph([([0], [1])], [0], [1, 1]), ("'t1'", "twice")),
    "input_is_output": (lambda: _graph([([0], [1])], [0], [1, 0]),
                        ("'t0'", "both a graph input and a graph output")),
    "output_index_minus_one": (lambda: _graph([([0], [-1]), ([0], [1])], [0], [1]),
                               ("operator 0", "refers to no tensor")),
    "int64_output": (lambda: _arg_max("int64"), ("graph output 'y' is int64", "int32 and bool")),
}


def _arg_max(output_dtype: str, output_q: Q | None = None) -> bytes:
    """ARG_MAX of an int8 (3, 5) input over axis 1: an index output of the given type."""
    b = ModelBuilder()
    x = b.add_tensor("x", (3, 5), "int8", quant=Q(0.1))
    axis = b.add_tensor("axis", (1,), "int32", data=[1])
    y = b.add_tensor("y", (3,), output_dtype, quant=output_q)
    b.add_op("ARG_MAX", [x, axis], [y])
    b.set_io([x], [y])
    return b.build()


def test_int32_and_bool_io_are_accepted() -> None:
    """Index and mask tensors at the model's edges: no quantization needed."""
    program = load_program(_arg_max("int32"))
    assert program.graph.tensors[program.graph.outputs[0]].dtype.c_type == "int32_t"
    b = ModelBuilder()
    x = b.add_tensor("x", (3, 5), "bool")
    y = b.add_tensor("y", (3, 5), "bool")
    b.add_op("LOGICAL_NOT", [x], [y])
    b.set_io([x], [y])
    program = load_program(b.build())
    assert program.graph.tensors[program.graph.inputs[0]].dtype.c_type == "uint8_t"


@pytest.mark.parametrize("case", sorted(BAD))
def test_defect_is_refused_in_one_line(case: str) -> None:
    make, fragments = BAD[case]
    with pytest.raises(CodegenError) as info:
        load_program(make())
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def _conv(bias_q: Q, weights_axis: int = 3, depthwise: bool = True) -> bytes:
    """A 3x3 DEPTHWISE_CONV_2D (or CONV_2D) of 4 channels with per-channel weights quantized
    along `weights_axis` (the right one: 3, or 0) and the given bias quantization."""
    rng = np.random.default_rng(3)
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 5, 5, 4), "int8", quant=Q(0.05, -7))
    w_scales = [0.01, 0.02, 0.015, 0.03]
    w_shape = (1, 3, 3, 4) if depthwise else (4, 3, 3, 4)
    w = b.add_tensor("w", w_shape, "int8", quant=Q(w_scales, 0, axis=weights_axis),
                     data=rng.integers(-127, 128, w_shape))
    bias = b.add_tensor("bias", (4,), "int32", quant=bias_q, data=[100, -2000, 3000, -40])
    y = b.add_tensor("y", (1, 5, 5, 4), "int8", quant=Q(0.2, 3))
    if depthwise:
        b.add_op("DEPTHWISE_CONV_2D", [x, w, bias], [y], depthwise_options())
    else:
        b.add_op("CONV_2D", [x, w, bias], [y], conv_options())
    b.set_io([x], [y])
    return b.build()


_DW_BIAS_SCALES = bias_scales(0.05, [0.01, 0.02, 0.015, 0.03])

# Models TFLM runs whose quantization metadata looks wrong but is never read: codegen takes
# them too, and gives TFLM's answer.
TFLM_ACCEPTS: dict[str, Callable[[], bytes]] = {
    # TFLM's person detector: per-channel biases with the weights' quantized dimension (3)
    "bias_axis_beyond_rank": lambda: _conv(Q(_DW_BIAS_SCALES, 0, axis=3)),
    # TFLM wants one scale per output channel, along any dimension of that size
    "conv_weights_axis_3": lambda: _conv(Q(_DW_BIAS_SCALES), weights_axis=3, depthwise=False),
    # ... and its per-tensor form (one scale, quantized_dimension 3)
    "per_tensor_bias_axis_3": lambda: _fc(t2_quantizedDimension=3),
    "per_tensor_weights_axis_5": lambda: _fc(t1_quantizedDimension=5),
    "bias_zero_point": lambda: _fc(t2_zeroPoint=[5]),
    "int32_output_per_channel": lambda: _arg_max("int32", Q([0.5, 0.25, 0.125], 0, axis=0)),
}


@pytest.mark.tflm
@pytest.mark.parametrize("case", sorted(TFLM_ACCEPTS))
def test_what_tflm_accepts_is_accepted(case: str) -> None:
    model = TFLM_ACCEPTS[case]()
    program = load_program(model)
    reference_matches_tflm(model, random_inputs(program, 20, seed=4))


def test_unquantized_int8_io_has_no_scale_macros() -> None:
    """TFLM takes an int8 graph input without quantization parameters (an operator that
    needs them refuses); the header then has no _SCALE or _ZERO_POINT for it."""
    b = ModelBuilder()
    x = b.add_tensor("x", (2, 3), "int8")
    y = b.add_tensor("y", (3, 2), "int8")
    b.add_op("RESHAPE", [x], [y], reshape_options((3, 2)))
    b.set_io([x], [y])
    header = emit_model(load_program(b.build()), "m")["m.h"]
    assert "M_INPUT0_SIZE 6" in header and "_SCALE" not in header


def test_bias_scale_within_tflm_tolerance_is_accepted() -> None:
    # |in*w - bias| / out = 0.019 <= 0.02 (output scale 0.1): TFLM accepts it, and so do we.
    load_program(_bias_scale(_PRODUCT + 0.019 * 0.1))
    with pytest.raises(CodegenError, match="tolerance"):
        load_program(_bias_scale(_PRODUCT + 0.021 * 0.1))


def test_unused_tensors_are_not_checked() -> None:
    model = read_model(_fc())
    junk = schema.TensorT()
    junk.name, junk.shape, junk.type = "unused", [0, 7], schema.TensorType.INT8
    junk.quantization = Q(float("nan"), 999).to_schema()
    model.subgraphs[0].tensors.append(junk)
    load_program(pack(model))


def test_operators_out_of_run_order_are_refused() -> None:
    # TFLite and TFLM run operators in file order: operator 0 would read garbage.
    with pytest.raises(CodegenError, match=r"operator 0 .* reads tensor 't2' before "
                                           r"operator 2 \(FULLY_CONNECTED\) writes it"):
        load_program(_graph([([2], [3]), ([0], [1]), ([1], [2])], [0], [3]))


# -- ranks TFLM can run ---------------------------------------------------------------------


def _unary(opcode: str, rank: int) -> bytes:
    b = ModelBuilder()
    shape = (1,) * (rank - 1) + (4,)
    x = b.add_tensor("x", shape, "int8", quant=Q(0.1))
    y = b.add_tensor("y", shape if opcode != "SQUEEZE" else (4,), "int8", quant=Q(0.1))
    b.add_op(opcode, [x], [y])
    b.set_io([x], [y])
    return b.build()


@pytest.mark.parametrize(("opcode", "rank", "limit"), [
    ("RELU", 7, "at most 6 (RuntimeShape)"), ("TANH", 8, "at most 6 (RuntimeShape)"),
    ("SQUEEZE", 9, "SQUEEZE takes at most 8"), ("RESHAPE", 32, "codegen takes at most 31"),
    ("RELU", 64, "codegen takes at most 31"), ("RESHAPE", 65, "codegen takes at most 31"),
])
def test_ranks_beyond_tflms_are_refused(opcode: str, rank: int, limit: str) -> None:
    with pytest.raises(CodegenError) as error:
        load_program(_unary(opcode, rank))
    message = str(error.value)
    assert "tensor 'x'" in message and f"{rank} dimensions" in message and limit in message
    assert "\n" not in message


@pytest.mark.parametrize(("opcode", "rank"), [("RELU", 6), ("SQUEEZE", 8), ("RESHAPE", 31)])
def test_ranks_tflm_takes_are_accepted(opcode: str, rank: int) -> None:
    load_program(_unary(opcode, rank))


def test_bench_refuses_a_rank_64_model_in_one_line(tmp_path: Path) -> None:
    model = tmp_path / "deep.tflite"
    model.write_bytes(_unary("RELU", 64))
    result = subprocess.run([sys.executable, "-m", "codegen", "bench", str(model), "--target",
                             "host"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "64 dimensions" in result.stderr

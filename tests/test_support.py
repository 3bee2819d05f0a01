"""The test helpers do what they claim: built models run, factories make what they say.

Also pins down the TFLM behaviour other tests rely on (QUANTIZE and DEQUANTIZE arithmetic).
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from support import models
from support.builder import (
    ModelBuilder,
    Q,
    fc_model,
    fc_options,
    op_names,
    pack,
    read_model,
    reshape_options,
    scale_count,
)
from support.tflm import io_counts, run_tflm

from codegen.quant import round_half_away

RNG_SEED = 20240601


def litert_run(model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """One sample through the LiteRT (TFLite) interpreter, to show the model is loadable."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    for detail, value in zip(interp.get_input_details(), inputs, strict=True):
        interp.set_tensor(detail["index"], value)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def io_model() -> bytes:
    """float in -> QUANTIZE -> RESHAPE (shape tensor) -> RESHAPE (option only) -> two outputs."""
    b = ModelBuilder()
    xf = b.add_tensor("x", (1, 6), "float32")
    xq = b.add_tensor("xq", (1, 6), "int8", quant=Q(0.05, 3))
    shape = b.add_tensor("shape", (2,), "int32", data=[2, 3])
    r = b.add_tensor("r", (2, 3), "int8", quant=Q(0.05, 3))
    flat = b.add_tensor("flat", (1, 6), "int8", quant=Q(0.05, 3))
    y = b.add_tensor("y", (1, 6), "float32")
    b.add_op("QUANTIZE", [xf], [xq])
    b.add_op("RESHAPE", [xq, shape], [r], reshape_options([2, 3]))
    b.add_op("RESHAPE", [r], [flat], reshape_options([1, 6]))
    b.add_op("DEQUANTIZE", [flat], [y])
    b.set_io([xf], [y, r])
    return b.build()


# -- builder -------------------------------------------------------------------------------


@pytest.mark.tflm
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_fc_model_runs_in_tflm_and_litert(per_channel: bool, activation: str) -> None:
    rng = np.random.default_rng(RNG_SEED)
    weights = rng.integers(-127, 128, (5, 7)).astype(np.int8)
    weight_q = Q(list(rng.uniform(0.001, 0.01, 5)), 0) if per_channel else Q(0.004, 0)
    model = fc_model(weights, input_q=Q(0.05, -3), weight_q=weight_q, output_q=Q(0.08, 4),
                     bias=rng.integers(-500, 500, 5), activation=activation)
    x = rng.integers(-128, 128, (20, 1, 7)).astype(np.int8)
    (out,) = run_tflm(model, [x])
    assert out.shape == (20, 1, 5) and out.dtype == np.int8
    assert len(np.unique(out)) > 3
    (first,) = litert_run(model, [x[0]])
    # LiteRT rounds differently (single rounding), so only the shape and type must agree.
    assert first.shape == out[0].shape and first.dtype == out.dtype


@pytest.mark.tflm
def test_keep_num_dims() -> None:
    weights = np.eye(4, dtype=np.int8)[:3]
    model = fc_model(weights, input_q=Q(0.5, 0), weight_q=Q(1.0, 0), output_q=Q(0.5, 0),
                     input_shape=(1, 2, 4), keep_num_dims=True)
    x = np.arange(-8, 8, dtype=np.int8).reshape(2, 1, 2, 4)
    (out,) = run_tflm(model, [x])
    assert out.shape == (2, 1, 2, 3)
    np.testing.assert_array_equal(out, x[..., :3])


@pytest.mark.tflm
def test_quantize_reshape_dequantize_multi_output() -> None:
    model = io_model()
    assert io_counts(model) == (1, 2)
    x = np.random.default_rng(RNG_SEED).normal(size=(8, 1, 6)).astype(np.float32)
    y, r = run_tflm(model, [x])
    assert y.dtype == np.float32 and y.shape == (8, 1, 6)
    assert r.dtype == np.int8 and r.shape == (8, 2, 3)
    np.testing.assert_array_equal(y.reshape(8, 6), (r.reshape(8, 6).astype(np.float32) - 3)
                                  * np.float32(0.05))
    _, litert_r = litert_run(model, [x[0]])
    np.testing.assert_array_equal(litert_r, r[0])


@pytest.mark.tflm
def test_two_inputs_keep_their_order() -> None:
    b = ModelBuilder()
    a = b.add_tensor("a", (1, 3), "float32")
    q = b.add_tensor("b", (1, 2), "int8", quant=Q(0.5, 1))
    qa = b.add_tensor("qa", (1, 3), "int8", quant=Q(0.25, 0))
    fb = b.add_tensor("fb", (1, 2), "float32")
    b.add_op("QUANTIZE", [a], [qa])
    b.add_op("DEQUANTIZE", [q], [fb])
    b.set_io([a, q], [fb, qa])
    x_a = np.array([[[0.25, -0.5, 1.0]], [[2.0, 0.0, -1.25]]], np.float32)
    x_b = np.array([[[3, -3]], [[1, 9]]], np.int8)
    out_fb, out_qa = run_tflm(b.build(), [x_a, x_b])
    np.testing.assert_array_equal(out_qa, (x_a * 4).astype(np.int8))
    np.testing.assert_array_equal(out_fb, (x_b.astype(np.float32) - 1) * 0.5)


@pytest.mark.tflm
def test_tflm_quantize_divides_in_float_and_rounds_half_away() -> None:
    """TFLM's QUANTIZE: q = zp + round(x / scale) with a float32 division, ties away from 0.

    The inputs are chosen where float32 and double division round to different integers.
    """
    rng = np.random.default_rng(RNG_SEED)
    scale, zero_point = np.float32(0.0371), 2
    xs = [np.float32(v * float(scale)) for v in (2.5, -2.5, 0.5, -0.5, 41.5, -77.5)]
    while len(xs) < 40:
        base = np.float32((int(rng.integers(-120, 120)) + 0.5) * float(scale))
        for step in range(-3, 4):
            x = (np.array([base]).view(np.int32) + step).view(np.float32)[0]
            by_float = round_half_away(float(x / scale))
            if by_float != round_half_away(float(x) / float(scale)):
                xs.append(x)
    b = ModelBuilder()
    xf = b.add_tensor("x", (1, 1), "float32")
    xq = b.add_tensor("q", (1, 1), "int8", quant=Q(float(scale), zero_point))
    b.add_op("QUANTIZE", [xf], [xq])
    b.set_io([xf], [xq])
    inputs = np.array(xs, dtype=np.float32).reshape(-1, 1, 1)
    (out,) = run_tflm(b.build(), [inputs])
    expected = [np.clip(zero_point + round_half_away(float(x / scale)), -128, 127) for x in xs]
    np.testing.assert_array_equal(out.ravel(), expected)


@pytest.mark.tflm
def test_tflm_dequantize_is_scale_times_difference() -> None:
    scale, zero_point = 0.0123, -7
    b = ModelBuilder()
    q = b.add_tensor("q", (1, 256), "int8", quant=Q(scale, zero_point))
    y = b.add_tensor("y", (1, 256), "float32")
    b.add_op("DEQUANTIZE", [q], [y])
    b.set_io([q], [y])
    values = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)
    (out,) = run_tflm(b.build(), [values])
    expected = np.float32(scale) * (values.astype(np.float32) - zero_point)
    np.testing.assert_array_equal(out, expected)


def test_builder_writes_broken_models_as_asked() -> None:
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "float32", shape_signature=(-1, 4))
    w = b.add_tensor("w", (2, 4), "float32", data=np.ones((2, 4)))
    y = b.add_tensor("y", (1, 2), "float32")
    b.add_op("FULLY_CONNECTED", [x, w, -1], [y], fc_options())
    z = b.add_tensor("z", (1, 2), "float32")
    b.add_op("CUSTOM", [y], [z], custom_code="MyOp", custom_options=b"\x01\x02")
    b.set_io([x], [z])
    b.new_subgraph("second")
    s = b.add_tensor("s", (1,), "uint8", quant=Q(0.1, 128))
    b.add_op("TANH", [s], [s])
    b.set_io([s], [s])
    model = read_model(b.build())
    assert len(model.subgraphs) == 2
    main = model.subgraphs[0]
    assert list(main.tensors[0].shapeSignature) == [-1, 4]
    assert main.tensors[1].type == schema.TensorType.FLOAT32
    assert np.frombuffer(bytes(model.buffers[main.tensors[1].buffer].data), "<f4").tolist() == [
        1.0] * 8
    assert op_names(model) == ["FULLY_CONNECTED", "CUSTOM"]
    assert model.operatorCodes[main.operators[1].opcodeIndex].customCode == b"MyOp"
    assert op_names(model, 1) == ["TANH"]
    assert model.subgraphs[1].tensors[0].type == schema.TensorType.UINT8


def test_pack_round_trips() -> None:
    model = io_model()
    assert pack(read_model(model)) == model


@pytest.mark.tflm
def test_buffers_are_aligned() -> None:
    weights = np.arange(12, dtype=np.int8).reshape(3, 4)
    model = fc_model(weights, input_q=Q(0.5, 0), weight_q=Q(0.5, 0), output_q=Q(0.5, 0),
                     bias=np.array([1, 2, 3]))
    data = bytes(model)
    for pattern in (weights.tobytes(), np.array([1, 2, 3], "<i4").tobytes()):
        assert data.find(pattern) % 16 == 0


# -- the TFLM runner -----------------------------------------------------------------------


@pytest.mark.tflm
def test_run_tflm_has_no_state_between_samples() -> None:
    rng = np.random.default_rng(RNG_SEED)
    model = fc_model(rng.integers(-127, 128, (6, 9)).astype(np.int8), input_q=Q(0.1, 1),
                     weight_q=Q(0.01, 0), output_q=Q(0.2, -1), bias=rng.integers(-99, 99, 6))
    x = rng.integers(-128, 128, (30, 1, 9)).astype(np.int8)
    (together,) = run_tflm(model, [x])
    (reversed_,) = run_tflm(model, [x[::-1]])
    one_by_one = np.concatenate([run_tflm(model, [x[i:i + 1]])[0] for i in range(len(x))])
    np.testing.assert_array_equal(together, reversed_[::-1])
    np.testing.assert_array_equal(together, one_by_one)


@pytest.mark.tflm
def test_run_tflm_checks_inputs() -> None:
    model = fc_model(np.ones((2, 3), np.int8), input_q=Q(0.1, 0), weight_q=Q(0.1, 0),
                     output_q=Q(0.1, 0))
    with pytest.raises(ValueError, match="per sample"):
        run_tflm(model, [np.zeros((4, 3), np.int8)])
    with pytest.raises(ValueError, match="per sample"):
        run_tflm(model, [np.zeros((4, 1, 3), np.uint8)])
    with pytest.raises(ValueError, match="inputs"):
        run_tflm(model, [])
    (empty,) = run_tflm(model, [np.zeros((0, 1, 3), np.int8)])
    assert empty.shape == (0, 1, 2)


# -- TensorFlow factories ------------------------------------------------------------------


def fc_weights(model: schema.ModelT) -> list[schema.TensorT]:
    graph = model.subgraphs[0]
    return [graph.tensors[op.inputs[1]] for op, name in zip(graph.operators, op_names(model),
                                                            strict=True)
            if name == "FULLY_CONNECTED"]


def activations(model: schema.ModelT) -> list[int]:
    return [op.builtinOptions.fusedActivationFunction
            for op, name in zip(model.subgraphs[0].operators, op_names(model), strict=True)
            if name == "FULLY_CONNECTED"]


@pytest.mark.tf
@pytest.mark.parametrize("per_channel", [True, False])
def test_fc_stack_scales_and_activations(per_channel: bool, model_cache) -> None:
    sizes, acts = (3, 17, 640, 1, 17), ("relu", "relu6", "none", "relu_n1_to_1")
    model = read_model(models.fc_stack(sizes, acts, per_channel=per_channel,
                                       cache=model_cache))
    assert op_names(model) == ["FULLY_CONNECTED"] * 4
    weights = fc_weights(model)
    assert [scale_count(w) for w in weights] == (list(sizes[1:]) if per_channel else [1] * 4)
    assert all(w.type == schema.TensorType.INT8 for w in weights)
    kinds = schema.ActivationFunctionType
    assert activations(model) == [kinds.RELU, kinds.RELU6, kinds.NONE, kinds.RELU_N1_TO_1]
    graph = model.subgraphs[0]
    # The converter folds away the bias of the linear 640 -> 1 layer; the others keep theirs.
    assert [graph.operators[i].inputs[2] >= 0 for i in range(4)] == [True, True, False, True]
    io_types = [graph.tensors[i].type for i in (*graph.inputs, *graph.outputs)]
    assert io_types == [schema.TensorType.INT8] * 2


@pytest.mark.tf
@pytest.mark.tflm
def test_fc_stack_int8_tracks_keras(model_cache) -> None:
    sizes, acts = (17, 640, 3), ("relu", "none")
    model = models.fc_stack(sizes, acts, cache=model_cache)
    keras_model = models.keras_fc_stack(sizes, acts)
    parsed = read_model(model)
    graph = parsed.subgraphs[0]
    in_q = graph.tensors[graph.inputs[0]].quantization
    out_q = graph.tensors[graph.outputs[0]].quantization
    x = models.representative_inputs(17, seed=5)[:32]
    xq = np.clip(np.round(x / in_q.scale[0]) + in_q.zeroPoint[0], -128, 127).astype(np.int8)
    (yq,) = run_tflm(model, [xq.reshape(-1, 1, 17)])
    y = (yq.reshape(-1, 3).astype(np.float32) - out_q.zeroPoint[0]) * out_q.scale[0]
    expected = keras_model.predict(x, verbose=0)
    assert np.max(np.abs(y - expected)) < 8 * out_q.scale[0] + 0.05 * np.abs(expected).max()


@pytest.mark.tf
@pytest.mark.tflm
def test_float_io_model(model_cache) -> None:
    model = models.float_io_model(cache=model_cache)
    parsed = read_model(model)
    names = op_names(parsed)
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE"
    assert set(names[1:-1]) == {"FULLY_CONNECTED"}
    graph = parsed.subgraphs[0]
    assert [graph.tensors[i].type for i in (*graph.inputs, *graph.outputs)] == [
        schema.TensorType.FLOAT32] * 2
    (out,) = run_tflm(model, [np.zeros((2, 1, 3), np.float32)])
    assert out.dtype == np.float32 and out.shape == (2, 1, 5)


def test_cache_reuses_files(tmp_path) -> None:
    calls: list[int] = []

    def make() -> bytes:
        calls.append(1)
        return b"model"

    assert models.cached("demo", {"a": 1}, make, tmp_path) == b"model"
    assert models.cached("demo", {"a": 1}, make, tmp_path) == b"model"
    assert models.cached("demo", {"a": 2}, make, tmp_path) == b"model"
    assert len(calls) == 2
    assert len(list(tmp_path.glob("demo-*.tflite"))) == 2


def test_random_fc_stack_params_are_deterministic() -> None:
    first = models.random_fc_stack_params(3)
    assert first == models.random_fc_stack_params(3)
    assert set(first["sizes"]) <= set(models.FC_SIZES)
    assert len(first["activations"]) == len(first["sizes"]) - 1


# -- the demo MLP --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "per_channel"), [("demo_mlp.tflite", True),
                                                  ("demo_mlp_per_tensor.tflite", False)])
def test_demo_models_are_what_they_claim(name: str, per_channel: bool, require) -> None:
    path = models.DEMO_DIR / name
    require(path.is_file(), f"missing {path}; run examples/demo_mlp/train.py")
    model = read_model(path.read_bytes())
    assert op_names(model) == ["FULLY_CONNECTED"] * 3
    assert [scale_count(w) for w in fc_weights(model)] == ([16, 16, 1] if per_channel
                                                           else [1, 1, 1])
    graph = model.subgraphs[0]
    assert [list(graph.tensors[i].shape) for i in (*graph.inputs, *graph.outputs)] == [
        [1, 2], [1, 1]]
    assert [graph.tensors[i].type for i in (*graph.inputs, *graph.outputs)] == [
        schema.TensorType.INT8] * 2


@pytest.mark.tflm
def test_demo_model_fits_its_function(require) -> None:
    path = models.DEMO_DIR / "demo_mlp.tflite"
    require(path.is_file(), f"missing {path}; run examples/demo_mlp/train.py")
    model = path.read_bytes()
    graph = read_model(model).subgraphs[0]
    in_q = graph.tensors[graph.inputs[0]].quantization
    out_q = graph.tensors[graph.outputs[0]].quantization
    xy = np.random.default_rng(RNG_SEED).uniform(0, 1, (200, 2)).astype(np.float32)
    q = np.clip(np.round(xy / in_q.scale[0]) + in_q.zeroPoint[0], -128, 127).astype(np.int8)
    (zq,) = run_tflm(model, [q.reshape(-1, 1, 2)])
    z = (zq.reshape(-1).astype(np.float32) - out_q.zeroPoint[0]) * out_q.scale[0]
    expected = np.minimum(1.0, 4 * xy[:, 0] * xy[:, 1])
    assert np.sqrt(np.mean((z - expected) ** 2)) < 0.03


@pytest.mark.tf
def test_demo_factory_reproduces_committed_model(model_cache, require) -> None:
    path = models.DEMO_DIR / "demo_mlp.tflite"
    require(path.is_file(), f"missing {path}; run examples/demo_mlp/train.py")
    regenerated = read_model(models.demo_mlp(cache=model_cache))
    committed = read_model(path.read_bytes())
    for ours, theirs in zip(fc_weights(regenerated), fc_weights(committed), strict=True):
        assert list(ours.quantization.scale) == list(theirs.quantization.scale)
    buffers = [bytes(b.data) for b in committed.buffers if b.data is not None]
    assert buffers == [bytes(b.data) for b in regenerated.buffers if b.data is not None]

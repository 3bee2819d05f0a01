"""Numerics modes (issue 17): each mode's numpy reference against its oracle and the generated
C against that reference, bit for bit, on the shared models and the operator test models;
the default mode unchanged.

  - `litert-ref`: LiteRT's reference kernels (OpResolverType.BUILTIN_REF);
  - `litert`: LiteRT's default interpreter (XNNPACK delegate + optimized builtin kernels).
The oracles are in tests/support/litert.py; the pinned ai-edge-litert defines them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support.litert import run_oracle
from support.policy import require_file
from support.verify import (
    c_matches_reference,
    edge_inputs,
    inputs_with_edges,
    reference_matches_oracle,
)

from codegen.emit import emit_model
from codegen.errors import UnsupportedError
from codegen.program import load_program

SHARED = ("hello_world_int8", "ad01_int8", "kws_ref_model", "pretrainedResnet_quant",
          "vww_96_int8")
# Samples per model: (oracle, host, cortex-m4); the large convolutional models run few
# under QEMU.
SAMPLES = {
    "hello_world_int8": (300, 300, 50),
    "ad01_int8": (300, 300, 30),
    "kws_ref_model": (100, 100, 8),
    "pretrainedResnet_quant": (100, 100, 8),
    "vww_96_int8": (60, 60, 4),
}
C_TARGETS = ("host", pytest.param("cortex-m4", marks=pytest.mark.qemu))


def _read(shared_models: Path, name: str) -> bytes:
    return require_file(shared_models / f"{name}.tflite").read_bytes()


MODES = ("litert-ref", "litert")


@pytest.mark.parametrize("numerics", MODES)
@pytest.mark.parametrize("name", SHARED)
def test_shared_model_reference_matches_its_oracle(name: str, numerics: str,
                                                   shared_models: Path) -> None:
    model = _read(shared_models, name)
    reference_matches_oracle(model, inputs_with_edges(model, SAMPLES[name][0], seed=11),
                             numerics)


@pytest.mark.parametrize("target", C_TARGETS)
@pytest.mark.parametrize("numerics", MODES)
@pytest.mark.parametrize("name", SHARED)
def test_shared_model_c_matches_mode_reference(name: str, numerics: str, target: str,
                                               shared_models: Path, tmp_path: Path) -> None:
    model = _read(shared_models, name)
    samples = SAMPLES[name][1 if target == "host" else 2]
    c_matches_reference(model, target, tmp_path, seed=12, samples=samples, numerics=numerics,
                        extra=edge_inputs(load_program(model)))


def test_litert_ref_differs_from_tflm_where_the_table_says(shared_models: Path) -> None:
    """ad01_int8 (ten FULLY_CONNECTED) differs between TFLM and LiteRT's reference kernels on
    most samples: the mode is not the default under another name."""
    model = _read(shared_models, "ad01_int8")
    inputs = inputs_with_edges(model, 30, seed=13)
    tflm = reference_matches_oracle(model, inputs, "tflm")
    ref = reference_matches_oracle(model, inputs, "litert-ref")
    assert not np.array_equal(tflm[0], ref[0])


@pytest.mark.parametrize("name", SHARED)
def test_default_mode_is_tflm_and_integer_only(name: str, shared_models: Path) -> None:
    """`tflm` is the default and its C carries no float type (comments aside)."""
    model = _read(shared_models, name)
    default = emit_model(load_program(model), "m")
    assert default == emit_model(load_program(model, numerics="tflm"), "m")
    code = re.sub(r"/\*.*?\*/", "", default["m.c"], flags=re.DOTALL)
    assert re.search(r"\b(double|float)\b", code) is None


def test_cli_run_takes_the_mode(shared_models: Path, tmp_path: Path) -> None:
    """`codegen run --numerics litert-ref` on the host gives LiteRT's reference outputs; an
    unknown mode is one line and exit 1."""
    model_path = require_file(shared_models / "ad01_int8.tflite")
    model = model_path.read_bytes()
    inputs = inputs_with_edges(model, 20, seed=14)
    np.save(tmp_path / "x.npy", inputs[0])
    done = subprocess.run(["codegen", "run", str(model_path), "--target", "host", "--numerics",
                           "litert-ref", "--input", str(tmp_path / "x.npy"), "--output",
                           str(tmp_path / "y.npy")], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    expected = run_oracle(model, inputs, "litert-ref")[0]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    bad = subprocess.run(["codegen", "generate", str(model_path), "-o", str(tmp_path / "g"),
                          "--numerics", "tflite"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    assert "codegen: error:" in bad.stderr and "litert-ref" in bad.stderr
    assert not (tmp_path / "g").exists()


# -- the operator test models ---------------------------------------------------------------

def _op_models() -> dict[str, Callable[[], bytes]]:
    """The operator test models of the per-operator suites, by suite (`i16`: the 16x8 suite)."""
    import test_ops_activations
    import test_ops_conv
    import test_ops_data
    import test_ops_elementwise
    import test_ops_int16
    import test_pipeline_models

    suites = {"conv": test_ops_conv, "act": test_ops_activations, "data": test_ops_data,
              "elem": test_ops_elementwise, "fc": test_pipeline_models,
              "i16": test_ops_int16}
    # softmax_wide's rows make TFLM and LiteRT's reference SOFTMAX abort on random inputs
    # (test_ops_activations gives it inputs that avoid the abort).
    return {f"{suite}:{name}": factory for suite, module in suites.items()
            for name, factory in module.MODELS.items() if name != "softmax_wide"}


OP_MODELS = _op_models()
OP_SAMPLES = 200
# Models each mode must take (not refuse): the window operators, FULLY_CONNECTED, ADD,
# SOFTMAX and friends the modes claim to reproduce.
MUST_TAKE = {
    "litert-ref": {"conv:b_edge", "conv:mlperf_kws", "fc:ad01", "fc:demo_per_tensor",
                   "elem:add_sub", "elem:mul", "act:leaky_relu", "act:hard_swish_relu",
                   "act:chain_in_place", "data:bundle_quantize", "elem:mean",
                   "elem:concatenation", "i16:window_rgb", "i16:window_deep",
                   "i16:transpose_conv_int8", "i16:transpose_conv_16x8", "i16:dense",
                   "i16:misc", "i16:activations", "i16:mixed"},
    "litert": {"conv:mlperf_kws", "conv:mlperf_resnet", "conv:mlperf_vww", "fc:ad01",
               "fc:demo_per_channel", "fc:demo_per_tensor", "act:leaky_relu",
               "act:logistic_tanh", "act:hard_swish_relu", "act:chain_in_place",
               "elem:concatenation", "elem:maximum_minimum", "data:bundle_shape",
               "elem:add_sub", "elem:mul", "fc:float_io", "elem:mean",
               "elem:keras_spatial", "i16:window_rgb", "i16:window_deep",
               "data:bundle_quantize", "fc:fc_weight_zero_point", "i16:transpose_conv_16x8",
               "i16:dense", "i16:misc", "i16:activations", "i16:mixed",
               "i16:transpose_conv_int8"},
}
# How many operator test models each mode takes, of the int8 suites and of the 16x8 suite;
# every other is refused in one line, for a reason the oracle gives: LiteRT fails to
# prepare the model (a convolution without bias, LOGISTIC with TFLM's unread output scale,
# PRELU with a broadcast input; 16x8 `builder`).
TAKEN = {"litert-ref": (54, 11), "litert": (55, 11)}


def _op_case(numerics: str, name: str) -> tuple[bytes, object] | None:
    """The model and its program in `numerics`, or None when the mode refuses it, with the
    one-line refusal naming the mode and the way out (never a silent TFLM computation)."""
    model = OP_MODELS[name]()
    try:
        load_program(model)
    except UnsupportedError:
        return None  # not a model of ours in any mode (TFLM refusals are tested elsewhere)
    try:
        return model, load_program(model, numerics=numerics)
    except UnsupportedError as exc:
        message = str(exc)
        assert "\n" not in message and f"--numerics {numerics}" in message, message
        assert "use --numerics tflm" in message, message
        assert name not in MUST_TAKE[numerics], f"{name} is refused: {message}"
        return None


def _needs_tf(name: str) -> bool:
    from test_ops_int16 import _BUILDER

    if name.startswith("i16:"):
        return name[4:] not in _BUILDER
    return any(part in name for part in ("keras", "stack", "converter", "float_io", "tf_"))


def _op_params() -> list[object]:
    return [pytest.param(m, n, marks=[pytest.mark.tf] if _needs_tf(n) else [])
            for m in MODES for n in OP_MODELS]


@pytest.mark.parametrize(("numerics", "name"), _op_params())
def test_op_model_reference_and_host_c_match_the_mode_oracle(numerics: str, name: str,
                                                             tmp_path: Path) -> None:
    """Each operator test model a mode takes: the reference equals the mode's oracle (litert-ref:
    LiteRT's reference kernels, OpResolverType.BUILTIN_REF; litert: LiteRT's default
    interpreter, XNNPACK and the optimized builtin kernels) on full-range random batches with
    the edges, and the C on the host equals the reference; a model it does not take is
    refused in one line."""
    case = _op_case(numerics, name)
    if case is None:
        return
    model, _ = case
    reference_matches_oracle(model, inputs_with_edges(model, OP_SAMPLES, seed=21), numerics)
    c_matches_reference(model, "host", tmp_path, seed=22, samples=OP_SAMPLES,
                        numerics=numerics)


@pytest.mark.tf
@pytest.mark.parametrize("numerics", MODES)
def test_each_mode_takes_the_operator_test_models_it_counts(numerics: str) -> None:
    """The coverage README states: of the operator test models TFLM's mode takes, how many
    this mode takes (checked against its oracle by the test above); the rest are refused."""
    for suite, expected in zip(("int8", "16x8"), TAKEN[numerics], strict=True):
        ours = [name for name in OP_MODELS
                if name.startswith("i16:") == (suite == "16x8") and _takes_in_tflm(name)]
        taken = [name for name in ours if _op_case(numerics, name) is not None]
        print(f"--numerics {numerics}: {len(taken)}/{len(ours)} {suite} operator test models")
        assert len(taken) == expected, (suite, sorted(set(ours) - set(taken)))


def _takes_in_tflm(name: str) -> bool:
    try:
        load_program(OP_MODELS[name]())
    except UnsupportedError:
        return False
    return True


# Random samples per model under QEMU (after the all-minimum and all-maximum ones): 30, or
# as many as M4_MACS multiply-accumulates allow (the MLPerf-sized convolutions; at least 4).
M4_SAMPLES = 30
M4_MACS = 80_000_000
# The operator test models each mode takes, by firmware: the builder's models, and the ones
# TensorFlow converts (a firmware of their own, so that the builder's run without it);
# together the counts of TAKEN.
M4_TAKEN = {"litert-ref": {"builder": 31, "tf": 34}, "litert": {"builder": 32, "tf": 34}}


def _m4_params() -> list[object]:
    return [pytest.param(m, group, marks=[pytest.mark.tf] if group == "tf" else [])
            for m in MODES for group in ("builder", "tf")]


@pytest.mark.qemu
@pytest.mark.parametrize(("numerics", "group"), _m4_params())
def test_op_models_c_match_the_mode_reference_on_cortex_m4(numerics: str, group: str,
                                                           tmp_path: Path) -> None:
    """Every operator test model the mode takes, each generated under its own name into one
    firmware, run in one QEMU boot: the C equals the mode's reference (which the test above
    checks against the mode's LiteRT oracle) on full-range samples with the edges; the
    float requantization and the tables on the target. (Mode tflm: each operator suite runs
    its models on every target.)"""
    from support.many_models import c_matches_reference_in_one_firmware, case_with_edges

    cases = []
    for name in OP_MODELS:
        if _needs_tf(name) == (group == "tf"):
            case = _op_case(numerics, name)
            if case is not None:
                samples = min(M4_SAMPLES, max(4, M4_MACS // max(1, case[1].macs)))
                cases.append(case_with_edges(name, case[1], samples, seed=23))
    assert len(cases) == M4_TAKEN[numerics][group]
    assert sum(M4_TAKEN[numerics].values()) == sum(TAKEN[numerics])
    c_matches_reference_in_one_firmware(cases, "cortex-m4", tmp_path,
                                        label=f"--numerics {numerics}")


def _16x8_layer_models() -> list[object]:
    from support import int16_models as im

    return [pytest.param(name, make, id=name)
            for name, make in (("builder", im.builder_16x8), ("activations", im.activations_16x8))]


@pytest.mark.parametrize("numerics", MODES)
@pytest.mark.parametrize(("name", "make"), _16x8_layer_models())
def test_16x8_layers_one_by_one_match_the_oracle_or_are_refused_for_its_reason(
        name: str, make: Callable[[], bytes], numerics: str) -> None:
    """Each layer of the 16x8 builder models (int32 and int16 biases, options asking for
    int32 accumulation, power-of-two scales, PRELU, pools, binary operators) as a model of
    its own: a layer the mode takes gives the oracle's values; a layer it refuses (one line)
    is one LiteRT fails to prepare or computes otherwise than TFLM on these samples (an int32
    bias read as int64, the power-of-two SUB)."""
    from support.conv_models import submodel

    from codegen.model.tflite import load_model

    model = make()
    taken = 0
    for op in load_model(model).operators:
        if op.opcode == "RESHAPE":
            continue  # alone, its shape is not in the cut model (LiteRT refuses it)
        single = submodel(model, [op.index])
        inputs = inputs_with_edges(single, 60, seed=24)
        try:
            load_program(single, numerics=numerics)
        except UnsupportedError as exc:
            message = str(exc)
            assert "\n" not in message and "use --numerics tflm" in message, message
            try:
                litert = run_oracle(single, inputs, numerics)
            except RuntimeError:
                continue  # LiteRT fails to prepare it
            tflm = run_oracle(single, inputs, "tflm")
            assert any(not np.array_equal(a, b) for a, b in zip(tflm, litert, strict=True)), (
                op.index, message)
            continue
        reference_matches_oracle(single, inputs, numerics)
        taken += 1
    assert taken == _16X8_LAYERS_TAKEN[name][numerics]


# Layers of each model taken per mode (of 27 in builder without its RESHAPE, 14 in
# activations): litert takes the FULLY_CONNECTED with an int32 bias the options do not name
# (its optimized kernel reads it as int32), which litert-ref refuses.
_16X8_LAYERS_TAKEN = {"builder": {"litert-ref": 20, "litert": 21},
                      "activations": {"litert-ref": 14, "litert": 14}}


@pytest.mark.parametrize("opcode", ["RELU6", "LEAKY_RELU", "MEAN"])
def test_16x8_zero_points_litert_refuses_are_refused(opcode: str) -> None:
    """int16 RELU6, LEAKY_RELU and MEAN with zero points of 3: TFLM takes them, LiteRT fails
    to prepare them (both interpreters), and each mode refuses them in one line saying so."""
    from support.builder import ModelBuilder, Q
    from support.elementwise_models import reducer_options

    b = ModelBuilder("16x8 zero point")
    x = b.add_tensor("x", (1, 4, 4, 3), "int16", quant=Q(0.01, 3))
    out_shape = (1, 1, 1, 3) if opcode == "MEAN" else (1, 4, 4, 3)
    y = b.add_tensor("y", out_shape, "int16", quant=Q(0.02, 3))
    if opcode == "MEAN":
        axes = b.add_tensor("axes", (2,), "int32", data=np.array([1, 2]))
        b.add_op(opcode, [x, axes], [y], reducer_options(True))
    else:
        b.add_op(opcode, [x], [y])
    b.set_io([x], [y])
    model = b.build()
    load_program(model)
    sample = [np.zeros((1, 1, 4, 4, 3), np.int16)]
    for mode in MODES:
        with pytest.raises(RuntimeError, match="zero_point != 0"):
            run_oracle(model, sample, mode)
        with pytest.raises(UnsupportedError, match="LiteRT fails to prepare an int16") as info:
            load_program(model, numerics=mode)
        assert "\n" not in str(info.value)


# (zero point, count, scale, whether TFLM differs on these samples: exact ties on the
# vector loop, which TFLM rounds away from zero; 7 values are all tail)
@pytest.mark.parametrize(("zero_point", "count", "scale", "differs"),
                         [(0, 10, 1.0, True), (5, 13, 0.37, False),
                          (-5, 24, 2.0 ** -11, True), (0, 7, 3e-5, False)])
def test_litert_float_to_int16_quantize_is_litert_optimized(zero_point: int, count: int,
                                                            scale: float, differs: bool,
                                                            tmp_path: Path) -> None:
    """Mode litert, float -> int16 QUANTIZE: LiteRT's vector loop (multiply by the float
    reciprocal, ties to even) over the first 8 * floor(count / 8) values and its double
    division (ties away) on the tail, INT32_MIN for NaN and out-of-range values before the
    zero point: the oracle's values on ties, huge values, infinities and NaN; the C the
    reference's (under sanitizers too)."""
    from support.builder import ModelBuilder, Q

    b = ModelBuilder("float to int16")
    x = b.add_tensor("x", (1, count), "float32")
    y = b.add_tensor("y", (1, count), "int16", quant=Q(scale, zero_point))
    b.add_op("QUANTIZE", [x], [y])
    b.set_io([x], [y])
    model = b.build()
    rng = np.random.default_rng(26)
    magnitude = rng.choice([0.1, 1, 100, 1e4, 1e6, 1e10], (200, 1, count))
    v = (rng.standard_normal((200, 1, count)) * magnitude).astype(np.float32)
    v[0], v[1], v[2] = np.nan, np.inf, -np.inf
    v[3, 0] = (np.arange(count) - count / 2 + 0.5) * np.float32(scale)  # ties
    ours = reference_matches_oracle(model, [v], "litert")
    assert differs != np.array_equal(ours[0], run_oracle(model, [v], "tflm")[0])
    for sanitize in (False, True):
        c_matches_reference(model, "host", tmp_path / str(sanitize), samples=5,
                            sanitize=sanitize, numerics="litert", extra=[v])


def _gemmlowp_16x8_model() -> bytes:
    """LOGISTIC of input scale 2^-12 and TANH of 2^-12 and 2^-11 on every int16 value: the
    power-of-two scales LiteRT's optimized kernels compute with gemmlowp's fixed point."""
    from support.builder import ModelBuilder, Q

    b = ModelBuilder("gemmlowp 16x8")
    shape = (1, 65536)
    x = b.add_tensor("x", shape, "int16", quant=Q(2.0 ** -12))
    x2 = b.add_tensor("x2", shape, "int16", quant=Q(2.0 ** -11))
    b.add_op("QUANTIZE", [x], [x2])
    outs = []
    for i, (opcode, src) in enumerate((("LOGISTIC", x), ("TANH", x), ("TANH", x2))):
        y = b.add_tensor(f"y{i}", shape, "int16", quant=Q(2.0 ** -15))
        b.add_op(opcode, [src], [y])
        outs.append(y)
    b.set_io([x], outs)
    return b.build()


@pytest.mark.parametrize("sanitize", [False, True])
def test_litert_int16_logistic_tanh_are_gemmlowps_on_every_input(sanitize: bool,
                                                                 tmp_path: Path) -> None:
    """Mode litert: LiteRT's optimized int16 LOGISTIC and TANH of a power-of-two input scale
    (gemmlowp's 16-bit fixed point, not TFLM's table): the reference equals the oracle on
    every int16 input and the C the reference (under sanitizers too)."""
    model = _gemmlowp_16x8_model()
    every = [np.arange(-32768, 32768, dtype=np.int64).astype(np.int16).reshape(1, 1, 65536)]
    if not sanitize:
        ours = reference_matches_oracle(model, every, "litert")
        assert not np.array_equal(ours[0], run_oracle(model, every, "tflm")[0])
    c_matches_reference(model, "host", tmp_path, seed=25, samples=2, sanitize=sanitize,
                        numerics="litert", extra=every)


# -- codegen compare ----------------------------------------------------------------------------

def _compare(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["codegen", "compare", *args], capture_output=True, text=True,
                          timeout=900, check=False)


def _first_divergence(text: str, pair: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"  {pair}: ")]
    return line.split(": ", 1)[1]


def _prefix_diverges(model: bytes, last: int, inputs: list[np.ndarray], oracle: str) -> bool:
    """Whether TFLM and the LiteRT configuration `oracle` differ on the output of the model
    cut after operator `last` (tests/support oracles, not codegen's)."""
    from support.conv_models import submodel
    from support.litert import run_litert
    from support.tflm import run_tflm

    part = submodel(model, list(range(last + 1)))
    a, b = run_tflm(part, inputs), run_litert(part, inputs, oracle)
    return any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_compare_names_the_first_divergent_layer(shared_models: Path, tmp_path: Path) -> None:
    """pretrainedResnet_quant: TFLM and LiteRT's reference kernels first part at the
    FULLY_CONNECTED (operator 14), TFLM and the default interpreter at the first CONV_2D;
    the cut models, run by the oracles themselves, agree before those layers and not after.
    Our references equal their oracles everywhere."""
    path = require_file(shared_models / "pretrainedResnet_quant.tflite")
    model = path.read_bytes()
    inputs = inputs_with_edges(model, 20, seed=31)
    np.save(tmp_path / "x.npy", inputs[0])
    done = _compare([str(path), "--data", str(tmp_path / "x.npy")])
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert _first_divergence(text, "TFLM vs LiteRT ref") == (
        "layer 14 (FULLY_CONNECTED): LiteRT reference requantizes in floating point (double "
        "scale, round half away from zero)")
    assert _first_divergence(text, "TFLM vs LiteRT").startswith(
        "layer 0 (CONV_2D): XNNPACK's fp32 requantization")
    for mode, who in (("tflm", "TFLM"), ("litert-ref", "LiteRT ref"), ("litert", "LiteRT")):
        assert _first_divergence(text, f"ours ({mode}) vs {who}") == "none"
    assert not _prefix_diverges(model, 13, inputs, "reference")
    assert _prefix_diverges(model, 14, inputs, "reference")
    assert _prefix_diverges(model, 0, inputs, "default")


def test_compare_explains_fully_connected_models(shared_models: Path) -> None:
    """ad01_int8 (the table's 30/30): every pair with LiteRT parts at its first layer, a
    FULLY_CONNECTED, for the reason the mode reproduces."""
    done = _compare([str(require_file(shared_models / "ad01_int8.tflite")), "--samples", "10"])
    assert done.returncode == 0, done.stderr
    assert _first_divergence(done.stdout, "TFLM vs LiteRT ref").startswith(
        "layer 0 (FULLY_CONNECTED): LiteRT reference requantizes in floating point")
    assert _first_divergence(done.stdout, "TFLM vs LiteRT").startswith(
        "layer 0 (FULLY_CONNECTED): XNNPACK's fp32 requantization")
    assert "10 samples" in done.stdout


def test_compare_explains_the_16x8_divergences(tmp_path: Path) -> None:
    """The 16x8 activations model: TFLM and LiteRT's reference kernels first part at its
    SOFTMAX (LiteRT's double tables), the default interpreter at the first LOGISTIC of a
    power-of-two input scale (gemmlowp's), each named."""
    from support.int16_models import activations_16x8

    path = tmp_path / "activations.tflite"
    path.write_bytes(activations_16x8())
    done = _compare([str(path), "--samples", "20"])
    assert done.returncode == 0, done.stderr
    assert _first_divergence(done.stdout, "TFLM vs LiteRT ref") == (
        "layer 13 (SOFTMAX): LiteRT's int16 SOFTMAX builds its exp and reciprocal tables in "
        "double (TFLM's in float32)")
    assert _first_divergence(done.stdout, "TFLM vs LiteRT").startswith(
        "layer 4 (LOGISTIC): XNNPACK's LOGISTIC table of its float formula; int16 of a "
        "power-of-two input scale: LiteRT's optimized kernel, gemmlowp's fixed point")
    assert _first_divergence(done.stdout, "ours (litert-ref) vs LiteRT ref") == "none"


def test_compare_refuses_bad_samples_in_one_line(shared_models: Path, tmp_path: Path) -> None:
    path = str(require_file(shared_models / "hello_world_int8.tflite"))
    np.save(tmp_path / "bad.npy", np.zeros((3, 2), np.int8))
    for args in ([path, "--data", str(tmp_path / "bad.npy")],
                 [path, "--samples", "0"],
                 [path, "--samples", "5", "--data", str(tmp_path / "bad.npy")],
                 [path, "--samples", "100000000"]):
        done = _compare(args)
        assert done.returncode == 1, (args, done.stderr)
        lines = [ln for ln in done.stderr.splitlines() if not ln.startswith("INFO:")]
        assert len(lines) == 1 and lines[0].startswith("codegen: error:"), done.stderr


def test_litert_mode_refuses_a_scale_xnnpack_refuses() -> None:
    """An output scale of 1.4e-45 (a float32 denormal): TFLM and LiteRT's reference
    kernels run the model, XNNPACK refuses the tensor and LiteRT's default interpreter
    fails to prepare it ('unsupported scale value'), where --numerics litert generated
    code for it."""
    from support.builder import Q, fc_model

    from codegen.errors import CodegenError
    from codegen.program import load_program

    model = fc_model(np.arange(-6, 6, dtype=np.int8).reshape(3, 4), input_q=Q(1e-30),
                     weight_q=Q(1e-30), output_q=Q(1e-45))
    for mode in ("tflm", "litert-ref"):
        load_program(model, numerics=mode)
    with pytest.raises(CodegenError) as info:
        load_program(model, numerics="litert")
    assert "output 'output' has scale 1.4013e-45, not a normal float32: XNNPACK refuses " \
        "it" in str(info.value)
    assert "\n" not in str(info.value)


def test_compare_model_bounds_its_samples_itself(tmp_path: Path) -> None:
    """compare_model (codegen report calls it too) refuses more samples than it may keep,
    before any interpreter runs; the report asks for at most that many."""
    from support import state_hostile

    from codegen.compare import MAX_SAMPLES, compare_inputs, compare_model, sample_limit
    from codegen.errors import CodegenError
    from codegen.program import load_program

    model = state_hostile.counter()
    program = load_program(model)
    assert sample_limit(program) == MAX_SAMPLES
    inputs = compare_inputs(program, MAX_SAMPLES + 1)
    with pytest.raises(CodegenError, match=f"codegen compare runs at most {MAX_SAMPLES}"):
        compare_model(model, "counter.tflite", inputs)


@pytest.mark.parametrize("name", ["svdf", "counter"])
def test_compare_runs_a_stateful_model_as_one_stream(name: str, tmp_path: Path) -> None:
    """TFLM ran each sample after reset(), our reference and LiteRT as one stream: on a
    model keeping state (an SVDF's memory; a resource variable a CALL_ONCE initializer
    starts, which reset() clears) compare reported 'ours (tflm) vs TFLM' diverging, 'a bug,
    please report it'. Every interpreter now runs one stream from a fresh start."""
    from support import state_hostile, svdf_models

    model = (svdf_models.single(svdf_models.CASES["rank1_memory10"]) if name == "svdf"
             else state_hostile.counter())
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model)
    done = _compare([str(path), "--samples", "12"])
    assert done.returncode == 0, done.stderr
    assert _first_divergence(done.stdout, "ours (tflm) vs TFLM") == "none", done.stdout
    if name == "counter":  # LiteRT runs it too (not an SVDF without activation)
        # LiteRT's default interpreter ran two invokes (to find the tensors it writes)
        # before the stream, moving the state on: a false divergence at READ_VARIABLE.
        for pair in ("TFLM vs LiteRT ref", "TFLM vs LiteRT", "LiteRT ref vs LiteRT"):
            assert _first_divergence(done.stdout, pair) == "none", done.stdout


def test_generate_imports_no_interpreter(shared_models: Path, tmp_path: Path) -> None:
    """TensorFlow, LiteRT's interpreter and TFLM are for compare (and the tests) only:
    generating C in any mode imports none of them."""
    import sys

    path = require_file(shared_models / "kws_ref_model.tflite")
    code = (
        "import sys\n"
        "from codegen import api\n"
        f"api.generate({str(path)!r}, {str(tmp_path / 'out')!r}, numerics='litert')\n"
        "bad = [m for m in ('tensorflow', 'ai_edge_litert.interpreter', 'tflite_micro')\n"
        "       if m in sys.modules]\n"
        "print(bad)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_report_has_the_compare_table(shared_models: Path, tmp_path: Path) -> None:
    path = require_file(shared_models / "hello_world_int8.tflite")
    done = subprocess.run(["codegen", "report", str(path), "-o", str(tmp_path / "r.html")],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    assert "interpreters compared (codegen compare):" in done.stdout
    html = (tmp_path / "r.html").read_text()
    assert "<h2>Interpreters compared</h2>" in html
    assert "TFLM vs LiteRT ref: layer" in html


_LITERT_PRINTS = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
interp = Interpreter(model_path=sys.argv[1])
interp.allocate_tensors()
x = np.load(sys.argv[2])
(inp,), (out,) = interp.get_input_details(), interp.get_output_details()
for sample in x:
    interp.set_tensor(inp["index"], sample)
    interp.invoke()
    print(" ".join(str(int(v)) for v in interp.get_tensor(out["index"]).ravel()))
"""


@pytest.mark.parametrize("target", C_TARGETS)
def test_demo_mlp_in_litert_mode_prints_what_ai_edge_litert_prints(target: str,
                                                                   tmp_path: Path) -> None:
    """The demo MLP (codegen/demo) as a user runs it in Python, `Interpreter(model_path=...)`
    with its defaults, and `codegen run --numerics litert`: the same numbers."""
    import sys

    from support.models import DEMO_DIR

    model = DEMO_DIR / "demo_mlp.tflite"
    rng = np.random.default_rng(41)
    x = rng.integers(-128, 128, size=(64, 1, 2), dtype=np.int64).astype(np.int8)
    x[:2] = [[[-128, -128]], [[127, 127]]]
    np.save(tmp_path / "x.npy", x)
    printed = subprocess.run([sys.executable, "-c", _LITERT_PRINTS, str(model),
                              str(tmp_path / "x.npy")], capture_output=True, text=True,
                             timeout=300, check=True).stdout.split("\n")
    done = subprocess.run(["codegen", "run", str(model), "--target", target, "--numerics",
                           "litert", "--input", str(tmp_path / "x.npy"), "--output",
                           str(tmp_path / "y.npy")], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    ours = [" ".join(str(int(v)) for v in row.ravel()) for row in np.load(tmp_path / "y.npy")]
    assert ours == printed[:len(x)] and printed[len(x):] == [""]


def test_softmax_table_is_the_c_librarys_expf() -> None:
    """LiteRT fills its SOFTMAX table with the C library's expf, which is not correctly
    rounded; the generator reproduces glibc's (codegen/ops/_expf.py) without calling it.
    Every entry agrees for input scales across the range of real models (a plain
    exp rounded to float32 misses about 1 entry in 2,000 of these), and for raw arguments
    down to the underflow."""
    import ctypes
    import ctypes.util

    from codegen.ops.softmax import litert_table

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.expf.restype = ctypes.c_float
    libm.expf.argtypes = [ctypes.c_float]
    rng = np.random.default_rng(51)
    scales = np.concatenate([2.0 ** rng.uniform(-12, 2, size=100),
                             [1 / 16, 1 / 8, 0.1, 0.25, 0.5]]).astype(np.float32)
    for scale in scales:
        for beta in (1.0, 0.5, 2.0):
            table = litert_table(float(scale), beta)
            factor = np.float32(-np.float32(scale)) * np.float32(beta)
            expected = np.array([libm.expf(float(factor * np.float32(v))) for v in range(256)],
                                dtype=np.float32)[::-1]
            assert np.array_equal(table.view(np.uint32), expected.view(np.uint32)), (scale, beta)
    from codegen.ops._expf import expf

    for x in np.concatenate([-rng.uniform(0, 120, 4000), [0.0, -np.inf, -103.9, -104.0,
                                                           -87.9, -88.0]]).astype(np.float32):
        assert expf(float(x)).view(np.uint32) == np.float32(libm.expf(float(x))).view(np.uint32)


@pytest.mark.parametrize("numerics", MODES)
def test_relu_multiplier_is_litert_float32_division(numerics: str) -> None:
    """LiteRT's RELU divides the scales in float32 (ReluPrepare), TFLM in double: at these
    scales one input of 256 comes out differently, and each mode gives its oracle's value
    for every int8 input."""
    from support.activation_models import unary_model
    from support.builder import Q

    model = unary_model("RELU", (1, 256), Q(0.09561559557914734, -127),
                        Q(0.06797919422388077, -90))
    x = [np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)]
    ours = reference_matches_oracle(model, x, numerics)
    assert not np.array_equal(ours[0], run_oracle(model, x, "tflm")[0])


_TABLE_OPS = ("LOGISTIC", "TANH", "LEAKY_RELU", "RELU", "RELU6", "HARD_SWISH")


@pytest.mark.parametrize("numerics", MODES)
def test_table_operators_match_the_oracle_over_random_scales(numerics: str) -> None:
    """The int8 table operators (each mode's own arithmetic: LiteRT's float32 multipliers,
    RELU6 reading its output scale, XNNPACK's LEAKY_RELU, LOGISTIC and TANH) on 60 layers of
    random scales, zero points and alphas that TFLM takes: every int8 input gives the
    oracle's value, or the layer is refused in one line."""
    from support.activation_models import unary_model
    from support.builder import Q

    rng = np.random.default_rng(71)
    x = [np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)]
    checked = 0
    for i in range(60):
        opcode = _TABLE_OPS[i % len(_TABLE_OPS)]
        in_q = Q(float(2.0 ** rng.uniform(-9, 1)), int(rng.integers(-128, 128)))
        out_q = {"LOGISTIC": Q(1 / 256, -128), "TANH": Q(1 / 128, 0)}.get(
            opcode, Q(float(2.0 ** rng.uniform(-8, 0)), int(rng.integers(-128, 128))))
        options = {"alpha": float(rng.uniform(-2, 2))} if opcode == "LEAKY_RELU" else {}
        model = unary_model(opcode, (1, 256), in_q, out_q, **options)
        try:
            load_program(model)
        except UnsupportedError:
            continue  # TFLM's refusal (tested with the operator)
        try:
            load_program(model, numerics=numerics)
        except UnsupportedError as exc:
            assert "\n" not in str(exc) and "use --numerics tflm" in str(exc)
            continue
        reference_matches_oracle(model, x, numerics)
        checked += 1
    assert checked >= 50


def test_xnnpack_tanh_table_is_the_c_librarys_or_refused() -> None:
    """XNNPACK's int8 TANH table calls the C library's tanhf, which is not correctly rounded:
    the generator computes it from a double tanh and refuses a layer whose table would change
    within 2 units in the last place. Every table it keeps equals the one built with this
    host's tanhf, over input scales across the range of real models."""
    import ctypes
    import ctypes.util

    from codegen.ops.logistic_tanh import SigmoidTanhXnnpack

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.tanhf.restype = ctypes.c_float
    libm.tanhf.argtypes = [ctypes.c_float]
    rng = np.random.default_rng(52)
    kept = 0
    for _ in range(200):
        layer = object.__new__(SigmoidTanhXnnpack)
        layer.op = type("Op", (), {"opcode": "TANH"})()
        scale, zp = np.float32(2.0 ** rng.uniform(-10, 2)), int(rng.integers(-128, 128))
        out_scale, out_zp = [(1 / 128, 0), (0.01, 3)][int(rng.integers(0, 2))]
        layer.params = {"input_scale": float(scale), "input_zero_point": zp,
                        "output_scale": out_scale, "output_zero_point": out_zp}
        if not layer.stable():
            continue
        kept += 1
        v = (np.arange(-128, 128).astype(np.float32) - np.float32(zp)) * scale
        r = np.array([libm.tanhf(float(x)) for x in v], dtype=np.float32)
        y = np.rint(r * (np.float32(1.0) / np.float32(out_scale)) + np.float32(out_zp))
        expected = np.clip(y, -128, 127).astype(np.int64)
        assert np.array_equal(layer.function(np.arange(-128, 128)), expected), (scale, zp)
    assert kept >= 190


@pytest.mark.parametrize("numerics", MODES)
@pytest.mark.parametrize("name", ("hello_world_int8", "ad01_int8", "kws_ref_model"))
def test_mode_c_is_clean_under_sanitizers(name: str, numerics: str, shared_models: Path,
                                          tmp_path: Path) -> None:
    """The float requantization helpers at the extremes (all-minimum and all-maximum
    samples included): no undefined behaviour, same outputs."""
    model = _read(shared_models, name)
    c_matches_reference(model, "host", tmp_path, seed=61, sanitize=True, samples=20,
                        numerics=numerics, extra=edge_inputs(load_program(model)))


@pytest.mark.parametrize("name", ("elem:mul", "elem:mean", "fc:float_io", "elem:add_sub",
                                  "data:bundle_quantize", "i16:mixed",
                                  pytest.param("i16:dense", marks=pytest.mark.tf),
                                  pytest.param("i16:transpose_conv_int8",
                                               marks=pytest.mark.tf)))
def test_litert_kernels_are_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    """The kernels of mode litert of their own: XNNPACK's MUL, MEAN, float QUANTIZE and SUB
    (float requantization in the C), LiteRT's int8 <-> uint8 QUANTIZE (its vector loop's
    rounding), the 16x8 FULLY_CONNECTED's double requantization of an int64 accumulator and
    ruy's of an int32 one, float -> int16 QUANTIZE, XNNPACK's TRANSPOSE_CONV, at the
    extremes: no undefined behaviour, the reference's outputs."""
    model = OP_MODELS[name]()
    c_matches_reference(model, "host", tmp_path, seed=62, sanitize=True, samples=20,
                        numerics="litert", extra=edge_inputs(load_program(model)))


@pytest.mark.qemu
def test_bench_reports_the_mode(shared_models: Path) -> None:
    """`codegen bench --numerics MODE` measures that mode's C (its outputs checked against
    that mode's reference) and says which mode it measured."""
    from codegen import api

    path = require_file(shared_models / "hello_world_int8.tflite")
    costs = {mode: api.bench(path, "cortex-m4", numerics=mode) for mode in ("tflm", *MODES)}
    for mode, cost in costs.items():
        assert cost["numerics"] == mode and cost["output_matches_reference"], mode
    assert costs["litert-ref"]["instructions"] > costs["tflm"]["instructions"]


def test_compare_notes_an_interpreter_that_cannot_run_the_model(tmp_path: Path) -> None:
    """A convolution without a bias: TFLM runs it, LiteRT fails to prepare it. compare
    still compares what runs and says why the rest has no value."""
    path = tmp_path / "no_bias.tflite"
    path.write_bytes(OP_MODELS["conv:b_no_bias"]())
    done = _compare([str(path), "--samples", "3"])
    assert done.returncode == 0, done.stderr
    assert "note: LiteRT ref cannot run this model: " in done.stdout
    assert "note: LiteRT cannot run this model: " in done.stdout
    assert "note: --numerics litert-ref does not take this model: " in done.stdout
    assert _first_divergence(done.stdout, "ours (tflm) vs TFLM") == "none"

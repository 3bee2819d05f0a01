"""Models that keep state between invokes (issue 12), on SVDF, whose memory is a variable
tensor: the reference against TFLM over streams of invokes (one interpreter, never reset)
and from a fresh interpreter each sample (`--reset-each`); the generated C against the
reference on every target and under the sanitizers, as one stream; the C API (two state
blocks interleaved, NAME_reset and NAME_reset_state back to the first outputs); the state
outside the arena; `codegen run --reset-each`; refusals in one line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from support import svdf_models as sm
from support.builder import ModelBuilder, Q
from support.policy import require_tool
from support.tflm import run_tflm_sequence
from support.verify import (
    C_TARGETS,
    assert_same,
    c_matches_reference,
    inputs_with_edges,
    stream_matches_tflm,
)

from codegen.emit import emit_model
from codegen.errors import UnsupportedError
from codegen.execute import execute
from codegen.program import load_program

STREAM = 40  # invokes per stream against TFLM (plus the all-low and all-high samples)
FRESH = 8  # samples each from a fresh interpreter (one interpreter per sample: slow)
BUNDLE = list(sm.CASES.values())


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(sm.CASES))
def test_svdf_stream_matches_tflm(name: str) -> None:
    model = sm.single(sm.CASES[name])
    stream, each = stream_matches_tflm(model, name, stream=STREAM, fresh=FRESH, seed=1)
    if sm.CASES[name].memory > 1 and sm.CASES[name].spread == 1.0:
        # the state matters: carrying it changes the outputs
        assert not np.array_equal(stream[0][:FRESH], each[0])


@pytest.mark.tflm
def test_svdf_bundle_stream_matches_tflm() -> None:
    model = sm.bundle(BUNDLE)
    inputs = inputs_with_edges(model, STREAM, seed=2)
    assert_same(execute(load_program(model), "reference", inputs),
                run_tflm_sequence(model, inputs), "bundle: stream vs TFLM")


@pytest.mark.parametrize("target", C_TARGETS)
def test_svdf_c_stream_matches_reference(target: str, tmp_path: Path) -> None:
    c_matches_reference(sm.bundle(BUNDLE), target, tmp_path, seed=3)


def test_svdf_c_reset_each_matches_reference(tmp_path: Path) -> None:
    c_matches_reference(sm.bundle(BUNDLE), "host", tmp_path, seed=4, samples=200,
                        reset_each=True)


def test_svdf_c_is_clean_under_sanitizers(tmp_path: Path) -> None:
    c_matches_reference(sm.bundle(BUNDLE), "host", tmp_path, seed=5, sanitize=True,
                        samples=300)


def test_state_lives_outside_the_arena() -> None:
    program = load_program(sm.bundle(BUNDLE))
    assert program.state is not None
    variables = [t.index for t in program.graph.tensors if t.is_variable]
    assert len(variables) == len(BUNDLE)
    for t in variables:
        assert program.plan.locations[t].kind == "state"
    expected = sum(program.graph.tensors[t].nbytes for t in variables)
    assert expected < program.state.size <= expected + 4 + 4 * len(BUNDLE)
    header = emit_model(program, "net")["net.h"]
    assert f"#define NET_STATE_SIZE {program.state.size}u" in header


# -- the C API ----------------------------------------------------------------------------

_API_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "net.h"

#define N {count}
#define IN NET_INPUT0_SIZE
#define OUT NET_OUTPUT0_SIZE

static int8_t inputs_a[N][IN], inputs_b[N][IN];
static union {{ uint8_t bytes[NET_STATE_SIZE]; int64_t align; }} state_a, state_b;
static union {{ uint8_t bytes[NET_ARENA_SIZE + 1u]; int64_t align; }} arena;

static void put(const int8_t *y)
{{
    fwrite(y, 1, OUT, stdout);
}}

int main(int argc, char **argv)
{{
    int8_t y[OUT];
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (f == NULL || fread(inputs_a, 1, sizeof inputs_a, f) != sizeof inputs_a ||
        fread(inputs_b, 1, sizeof inputs_b, f) != sizeof inputs_b) {{
        return 2;
    }}
    fclose(f);
    /* two streams interleaved, each in its own zero-filled block (reset on first use) */
    for (int k = 0; k < N; ++k) {{
        if (net_invoke_with_state(arena.bytes, state_a.bytes, inputs_a[k], y) != 0) return 3;
        put(y);
        if (net_invoke_with_state(arena.bytes, state_b.bytes, inputs_b[k], y) != 0) return 3;
        put(y);
    }}
    /* stream a again after net_reset_state */
    net_reset_state(state_a.bytes);
    for (int k = 0; k < N; ++k) {{
        if (net_invoke_with_state(arena.bytes, state_a.bytes, inputs_a[k], y) != 0) return 3;
        put(y);
    }}
    /* the static state: stream b, net_reset, stream b again */
    for (int r = 0; r < 2; ++r) {{
        for (int k = 0; k < N; ++k) {{
            if (net_invoke(inputs_b[k], y) != 0) return 3;
            put(y);
        }}
        net_reset();
    }}
    return 0;
}}
"""


def test_two_streams_and_reset_through_the_c_api(tmp_path: Path) -> None:
    """Expected outputs come from the reference, one stream per state block."""
    compiler = require_tool("cc")
    count = 25
    model = sm.single(sm.CASES["rank2_memory4_batch2_relu"])
    program = load_program(model)
    a = inputs_with_edges(model, count - 2, seed=7)[0]
    b = inputs_with_edges(model, count - 2, seed=8)[0][::-1].copy()
    for text_name, text in emit_model(program, "net").items():
        (tmp_path / text_name).write_text(text)
    (tmp_path / "main.c").write_text(_API_MAIN.format(count=count))
    (tmp_path / "inputs.bin").write_bytes(a.tobytes() + b.tobytes())
    flags = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Werror", "-O1"]
    subprocess.run([compiler, *flags, "-o", str(tmp_path / "api"), str(tmp_path / "main.c"),
                    str(tmp_path / "net.c")], check=True, timeout=300)
    run = subprocess.run([str(tmp_path / "api"), str(tmp_path / "inputs.bin")],
                         capture_output=True, check=True, timeout=60)
    shape = program.graph.tensors[program.graph.outputs[0]].shape
    got = np.frombuffer(run.stdout, np.int8).reshape(-1, *shape)
    ya = execute(program, "reference", [a])[0]
    yb = execute(program, "reference", [b])[0]
    interleaved = np.stack([ya, yb], axis=1).reshape(-1, *shape)
    assert_same([got], [np.concatenate([interleaved, ya, yb, yb])], "C API streams")
    assert not np.array_equal(ya, yb)


# -- codegen run --------------------------------------------------------------------------


def test_run_carries_state_unless_reset_each(tmp_path: Path) -> None:
    from codegen.cli import main

    model_path = tmp_path / "svdf.tflite"
    model = sm.single(sm.CASES["rank1_memory10"])
    model_path.write_bytes(model)
    x = inputs_with_edges(model, 10, seed=9)[0]
    np.save(tmp_path / "in.npy", x)
    program = load_program(model)
    for flag, reset_each in (([], False), (["--reset-each"], True)):
        out = tmp_path / f"out{len(flag)}.npy"
        assert main(["run", str(model_path), "--target", "reference", "--input",
                     str(tmp_path / "in.npy"), "--output", str(out), *flag]) == 0
        expected = execute(program, "reference", [x], reset_each=reset_each)
        assert_same([np.load(out)], expected, f"run {flag}")
    assert not np.array_equal(np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy"))


# -- refusals ------------------------------------------------------------------------------


def _svdf_variant(**changes: object) -> bytes:
    model = sm.single(sm.CASES["rank1_memory1"])
    from support.builder import pack, read_model

    obj = read_model(model)
    graph = obj.subgraphs[0]
    op = graph.operators[0]
    if "no_bias" in changes:
        op.inputs = [*op.inputs[:3], -1, op.inputs[4]]
    if "not_variable" in changes:
        graph.tensors[op.inputs[4]].isVariable = False
    if "rank" in changes:
        op.builtinOptions.rank = changes["rank"]
    return pack(obj)


@pytest.mark.parametrize(("change", "message"), [
    ({"no_bias": True}, "without bias"),
    # a state that is not variable is read before anything writes it
    ({"not_variable": True}, "which no operator writes"),
    ({"rank": 3}, "rank 3 does not divide"),
])
def test_svdf_refusals(change: dict[str, object], message: str) -> None:
    with pytest.raises(UnsupportedError, match=message) as info:
        load_program(_svdf_variant(**change))
    assert "\n" not in str(info.value)


def test_variable_graph_output_is_refused() -> None:
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.1))
    y = b.add_tensor("y", (1, 4), "int8", quant=Q(0.1), variable=True)
    b.add_op("RELU", [x], [y])
    b.set_io([x], [y])
    with pytest.raises(UnsupportedError, match="variable tensor") as info:
        load_program(b.build())
    assert "\n" not in str(info.value)


# -- build and bench ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_build_and_bench_count_the_state(target: str, tmp_path: Path) -> None:
    """The state block is counted apart (and within the RAM); the benchmark resets it
    before the invoke whose outputs it checks, so they equal one invoke of the reference."""
    from codegen import api

    model_path = tmp_path / "svdf.tflite"
    model_path.write_bytes(sm.bundle(BUNDLE))
    size = load_program(model_path).state.size  # type: ignore[union-attr]
    lib = api.build(model_path, target, tmp_path / "lib")
    assert lib.state_bytes == size and lib.bss_bytes >= size + lib.arena_bytes
    cost = api.bench(model_path, target)
    assert cost["state_bytes"] == size
    assert cost["ram_bytes"] >= cost["arena_bytes"] + size + cost["static_bytes"]
    assert cost["output_matches_reference"] is True


def test_inspect_shows_the_state(tmp_path: Path) -> None:
    from codegen.inspect import inspect_model

    path = tmp_path / "svdf.tflite"
    path.write_bytes(sm.bundle(BUNDLE))
    program = load_program(path)
    text = inspect_model(path)
    assert f"  state:   {program.state.size} bytes" in text  # type: ignore[union-attr]
    assert f"  arena:   {program.plan.size} bytes" in text

"""`codegen generate`: deterministic output, a header that tells the truth, clean C."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import degenerate_models
from support.tflm import interpreter
from support.verify import c_matches_reference, edge_inputs

from codegen.generate import generate
from codegen.program import load_program

HEADER_CHECK = r"""
#include <stdio.h>
#include "{name}.h"
static const int in_shape[] = {NAME}_INPUT0_SHAPE;
static const int out_shape[] = {NAME}_OUTPUT0_SHAPE;
int main(void)
{{
    size_t i;
    printf("%d %d %d %.9g %d\n", (int){NAME}_INPUT_SIZE, (int){NAME}_INPUT0_DIMS,
           (int)(sizeof in_shape / sizeof in_shape[0]), (double){NAME}_INPUT_SCALE,
           (int){NAME}_INPUT_ZERO_POINT);
    printf("%d %d %d %.9g %d\n", (int){NAME}_OUTPUT_SIZE, (int){NAME}_OUTPUT0_DIMS,
           (int)(sizeof out_shape / sizeof out_shape[0]), (double){NAME}_OUTPUT_SCALE,
           (int){NAME}_OUTPUT_ZERO_POINT);
    for (i = 0; i < sizeof in_shape / sizeof in_shape[0]; ++i) printf("%d ", in_shape[i]);
    printf("\n");
    for (i = 0; i < sizeof out_shape / sizeof out_shape[0]; ++i) printf("%d ", out_shape[i]);
    printf("\n%u\n", (unsigned){NAME}_ARENA_SIZE);
    return 0;
}}
"""


def _compile_and_run(tmp_path: Path, sources: list[Path], main_text: str) -> str:
    main = tmp_path / "main.c"
    main.write_text(main_text)
    exe = tmp_path / "prog"
    subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path),
                    *map(str, sources), str(main), "-o", str(exe)], check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("model", ["hello_world_int8", "ad01_int8"])
def test_generation_is_deterministic(model: str, shared_models: Path, tmp_path: Path) -> None:
    path = shared_models / f"{model}.tflite"
    first = generate(path, tmp_path / "a", "net")
    second = generate(path, tmp_path / "b", "net")
    for f1, f2 in zip(first.files, second.files, strict=True):
        assert f1.read_bytes() == f2.read_bytes()
    text = b"".join(f.read_bytes() for f in first.files)
    assert str(shared_models).encode() not in text  # nothing machine-specific


@pytest.mark.parametrize("model", ["hello_world_int8", "ad01_int8"])
def test_header_macros_match_tflm(model: str, shared_models: Path, tmp_path: Path) -> None:
    path = shared_models / f"{model}.tflite"
    result = generate(path, tmp_path, "net")
    out = _compile_and_run(tmp_path, [tmp_path / "net.c"],
                           HEADER_CHECK.format(name="net", NAME="NET")).split("\n")
    tflm = interpreter(path.read_bytes())
    for line, shape_line, details in ((out[0], out[2], tflm.get_input_details(0)),
                                      (out[1], out[3], tflm.get_output_details(0))):
        size, dims, shape_len, scale, zero_point = line.split()
        shape = [int(d) for d in details["shape"]]
        assert int(size) == int(np.prod(shape))
        assert int(dims) == int(shape_len) == len(shape)
        assert [int(v) for v in shape_line.split()] == shape
        quant = details["quantization_parameters"]
        assert np.float32(float(scale)) == quant["scales"][0]
        assert int(zero_point) == int(quant["zero_points"][0])
    assert int(out[4]) == result.program.plan.size


def test_two_models_link_into_one_program(shared_models: Path, tmp_path: Path) -> None:
    path = shared_models / "hello_world_int8.tflite"
    generate(path, tmp_path, "first")
    generate(path, tmp_path, "second")
    main = """
#include "first.h"
#include "second.h"
int main(void)
{
    const int8_t x[FIRST_INPUT_SIZE] = {7};
    int8_t a[FIRST_OUTPUT_SIZE], b[SECOND_OUTPUT_SIZE];
    return first_invoke(x, a) | second_invoke(x, b) | (a[0] != b[0]);
}
"""
    _compile_and_run(tmp_path, [tmp_path / "first.c", tmp_path / "second.c"], main)


@pytest.mark.parametrize("numerics", ["tflm", "litert-ref", "litert"])
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_generated_code_is_warning_free(compiler: str, numerics: str, shared_models: Path,
                                        tmp_path: Path) -> None:
    """In every numerics mode (litert-ref's FULLY_CONNECTED once left TFLM's requantization
    unused, which clang rejects)."""
    if shutil.which(compiler) is None:
        pytest.fail(f"{compiler} is not installed (scripts/setup installs it)")
    generate(shared_models / "ad01_int8.tflite", tmp_path, "ad01", numerics=numerics)
    subprocess.run([compiler, "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion",
                    "-Werror", "-c", str(tmp_path / "ad01.c"), "-o", str(tmp_path / "ad01.o")],
                   check=True)


def test_cli_generate_prints_summary(shared_models: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codegen", "generate", str(shared_models / "ad01_int8.tflite"),
         "-o", str(tmp_path)], capture_output=True, text=True, check=True)
    assert (tmp_path / "ad01_int8.c").is_file() and (tmp_path / "ad01_int8.h").is_file()
    assert "FULLY_CONNECTED x10" in result.stdout
    assert "constant bytes" in result.stdout and "arena bytes" in result.stdout


@pytest.mark.parametrize("model", sorted(degenerate_models.MODELS))
def test_degenerate_models_run_clean(model: str, tmp_path: Path) -> None:
    """Views only, scalar inputs and outputs, a lone QUANTIZE: the C equals the reference
    under the sanitizers (the warning tests compile them under every option)."""
    data = degenerate_models.MODELS[model]()
    c_matches_reference(data, "host", tmp_path, sanitize=True, samples=50,
                        extra=edge_inputs(load_program(data)))

"""Two generated models (different --name) in one Cortex-M4 firmware, sharing one arena.

Both are generated with --no-static-arena and --cmake; a CMake project adds both
directories with add_subdirectory() and links codegen::mlp and codegen::net into a firmware
whose main.c owns one arena of the larger size and alignment, and runs the models in turn
on it through NAME_invoke_with_arena, as README's "Several models in one firmware" shows.
Under QEMU every output of each model must equal TFLM's and the reference's, and the image
holds no arena but the firmware's.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.builder import Q
from support.elementwise_models import Net
from support.firmware_build import CORTEX_M_DIR, run_under_qemu
from support.tflm import run_tflm
from support.verify import assert_same

from codegen import api
from codegen.execute import execute
from codegen.program import load_program
from codegen.targets import get_target, toolchain_file_text

DEMO = policy.REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite"
SAMPLES = 24


def _net_model() -> bytes:
    """A second model, unlike the demo MLP: (1, 6, 8) -> FC 16 ReLU -> FC 12, a larger
    arena than the MLP's."""
    n = Net("the second model")
    x = n.input((1, 6, 8), Q(0.04, 7))
    hidden = n.fully_connected(x, 16, Q(0.3, -20), "RELU")
    n.output(n.fully_connected(hidden, 12, Q(0.5, 3)))
    return n.build()


def _samples(program, seed: int) -> np.ndarray:
    graph = program.graph
    shape = graph.tensors[graph.inputs[0]].shape
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(SAMPLES, *shape), dtype=np.int64).astype(np.int8)
    x[0], x[1] = -128, 127
    return x


def _c_rows(values: np.ndarray) -> str:
    return ",\n".join("    {" + ", ".join(str(int(v)) for v in row.ravel()) + "}"
                      for row in values)


def _main_c(inputs: dict[str, np.ndarray]) -> str:
    tables = "\n".join(
        f"static const int8_t {name}_samples[{SAMPLES}][{name.upper()}_INPUT_SIZE] = {{\n"
        f"{_c_rows(x)}\n}};\nstatic int8_t {name}_out[{name.upper()}_OUTPUT_SIZE];\n"
        for name, x in inputs.items())
    runs = "\n".join(f"""\
        if ({name}_invoke_with_arena(arena.bytes, {name}_samples[s], {name}_out) != 0) {{
            return 1;
        }}
        print_outputs("{name}", s, {name}_out, {name.upper()}_OUTPUT_SIZE);""" for name in inputs)
    return f"""\
/* Two models in one firmware, one arena: written by tests/test_multi_model.py. */
#include <stddef.h>
#include <stdint.h>

#include "semihost.h"
#include "mlp.h"
#include "net.h"

#define LARGER(a, b) ((a) > (b) ? (a) : (b))
#define ARENA_SIZE LARGER(MLP_ARENA_SIZE, NET_ARENA_SIZE)
#define ARENA_ALIGNMENT LARGER(MLP_ARENA_ALIGNMENT, NET_ARENA_ALIGNMENT)

/* The one arena both models work in, one after the other. */
static union {{
    uint8_t bytes[ARENA_SIZE];
    uint64_t align;
}} arena __attribute__((aligned(ARENA_ALIGNMENT)));

{tables}
static void print_outputs(const char *model, unsigned sample, const int8_t *out, size_t size)
{{
    char line[512];
    size_t length = 0;
    size_t i;
    while (*model != '\\0') {{
        line[length++] = *model++;
    }}
    for (i = 0; i <= size; ++i) {{
        int value = i == 0 ? (int)sample : out[i - 1];
        char digits[8];
        int count = 0;
        unsigned magnitude = value < 0 ? (unsigned)-value : (unsigned)value;
        line[length++] = i == 1 ? ':' : ' ';
        if (i == 1) {{
            line[length++] = ' ';
        }}
        if (value < 0) {{
            line[length++] = '-';
        }}
        do {{
            digits[count++] = (char)('0' + magnitude % 10u);
            magnitude /= 10u;
        }} while (magnitude != 0u);
        while (count > 0) {{
            line[length++] = digits[--count];
        }}
    }}
    line[length++] = '\\n';
    line[length] = '\\0';
    semihost_write0(line);
}}

int main(int argc, char **argv)
{{
    unsigned s;
    (void)argc;
    (void)argv;
    for (s = 0; s < {SAMPLES}u; ++s) {{
{runs}
    }}
    semihost_write0("done\\n");
    return 0;
}}
"""


CMAKE_LISTS = """\
cmake_minimum_required(VERSION 3.13)
project(two_models C)
add_subdirectory(mlp)
add_subdirectory(net)
add_executable(firmware main.c "{cortex_m}/startup.c" "{cortex_m}/semihost.c")
set_target_properties(firmware PROPERTIES SUFFIX .elf C_STANDARD 99 C_EXTENSIONS OFF)
target_include_directories(firmware PRIVATE "{cortex_m}")
target_compile_options(firmware PRIVATE -Wall -Wextra -Wpedantic -Werror)
target_link_libraries(firmware PRIVATE codegen::mlp codegen::net)
target_link_options(firmware PRIVATE --specs=nano.specs -nostartfiles -Wl,--gc-sections
                    "-L{cortex_m}" "-T{cortex_m}/{board}.ld")
"""


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.tflm
@pytest.mark.qemu
def test_two_models_share_one_arena(tmp_path: Path) -> None:
    for tool in ("arm-none-eabi-gcc", "ninja"):
        policy.require_tool(tool)
    cmake = policy.require_tool("cmake")
    project = tmp_path / "firmware"
    (tmp_path / "net.tflite").write_bytes(_net_model())
    models = {"mlp": DEMO, "net": tmp_path / "net.tflite"}
    programs = {name: load_program(path) for name, path in models.items()}
    assert programs["net"].plan.size > programs["mlp"].plan.size
    for name, path in models.items():
        api.generate(path, project / name, name=name, static_arena=False, cmake=True)
    inputs = {name: _samples(program, seed) for seed, (name, program)
              in enumerate(programs.items())}
    (project / "main.c").write_text(_main_c(inputs))
    target = get_target("cortex-m4")
    (project / "CMakeLists.txt").write_text(
        CMAKE_LISTS.format(cortex_m=CORTEX_M_DIR, board=target.board))
    (tmp_path / "toolchain.cmake").write_text(toolchain_file_text(target))
    build = tmp_path / "build"
    _run([cmake, "-S", str(project), "-B", str(build), "-G", "Ninja",
          f"-DCMAKE_TOOLCHAIN_FILE={tmp_path / 'toolchain.cmake'}",
          "-DCMAKE_BUILD_TYPE=Release"])
    _run([cmake, "--build", str(build)])
    elf = build / "firmware.elf"

    # The firmware's arena is the only one: neither model brought its own.
    symbols = _run(["arm-none-eabi-nm", "-S", str(elf)])
    arenas = [line.split()[-1] for line in symbols.splitlines() if "arena" in line.split()[-1]]
    assert sorted(arenas) == ["arena", "mlp_invoke_with_arena", "net_invoke_with_arena"]
    console = run_under_qemu(elf, "cortex-m4")
    assert console.strip().endswith("done"), console
    for name, program in programs.items():
        rows = [line for line in console.splitlines() if line.startswith(f"{name} ")]
        assert len(rows) == SAMPLES, console
        got = np.array([[int(v) for v in line.split(": ")[1].split()] for line in rows],
                       np.int8)
        assert [int(re.match(rf"{name} (\d+):", r).group(1)) for r in rows] == \
            list(range(SAMPLES))
        expected = run_tflm(models[name].read_bytes(), [inputs[name]])[0]
        assert_same([got.reshape(expected.shape)], [expected], f"{name} in the firmware vs TFLM")
        assert_same([got.reshape(expected.shape)],
                    execute(program, "reference", [inputs[name]]),
                    f"{name} in the firmware vs the reference")


@pytest.mark.qemu
def test_many_models_helper_runs_each_model_and_names_the_one_that_differs(
        tmp_path: Path) -> None:
    """support.many_models (every operator test model of a numerics mode in one Cortex-M4
    firmware): three models, one of them keeping state (a resource variable CALL_ONCE
    starts, as one stream of invokes) equal their references; a changed output value, or a
    firmware failing on a model, is an assertion naming that model and no other."""
    from support import state_hostile
    from support.many_models import (
        build_firmware,
        case_with_edges,
        outputs_match_references,
        run_firmware,
    )

    programs = {"demo": load_program(DEMO), "counter": load_program(state_hostile.counter()),
                "net": load_program(_net_model())}
    assert programs["counter"].state is not None
    cases = [case_with_edges(name, program, 10, seed=3) for name, program in programs.items()]
    elf = build_firmware(cases, "cortex-m4", tmp_path)
    output = run_firmware(cases, elf, "cortex-m4")
    outputs_match_references(cases, output, "cortex-m4")

    tampered = bytearray(output)
    tampered[len(cases[0].inputs[0]) * programs["demo"].graph.tensors[
        programs["demo"].graph.outputs[0]].nbytes + 5] ^= 1
    with pytest.raises(AssertionError) as info:
        outputs_match_references(cases, bytes(tampered), "cortex-m4")
    assert "1 of 3 models differ" in str(info.value)
    assert "counter on cortex-m4 vs its reference" in str(info.value)
    assert "demo on" not in str(info.value) and "net on" not in str(info.value)

    short = [*cases[:2], replace(cases[2], inputs=[x[:-1] for x in cases[2].inputs])]
    with pytest.raises(AssertionError, match=r"^net: .*many_models: model 2 sample 11: "):
        run_firmware(short, elf, "cortex-m4")

"""The generated C under the compilers' warnings and cppcheck.

Every shared model and a set of builder models that together instantiate every kernel
template (support.op_zoo, the demo MLPs, the fuzzers' small models) are generated with the
harness glue, then compiled by gcc and clang with -std=c99 -Wall -Wextra -Wpedantic
-Wconversion -Werror (at -O2, where gcc's flow-based warnings run) and checked by cppcheck;
firmware/ is checked by cppcheck too. A model whose operators are not supported yet fails
here until they are.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support import fuzzing, op_zoo
from support.policy import REPO_ROOT, SHARED_MODELS, require_file, require_tool

from codegen.execute import write_harness_sources
from codegen.program import load_program

SHARED = ("ad01_int8", "hello_world_int8", "kws_ref_model", "pretrainedResnet_quant",
          "vww_96_int8")
DEMO = REPO_ROOT / "codegen" / "demo"
HARNESS = REPO_ROOT / "firmware" / "harness"

WARNINGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Werror"]
CPPCHECK = ["--enable=warning,portability,performance", "--error-exitcode=1", "--std=c99",
            "--quiet", "--inline-suppr"]
# cppcheck takes minutes over a megabyte of initializer values; the values of big constant
# tables (weights, biases) do not change the code it analyses, so tables longer than this are
# checked with their values replaced by zeros (sizes and types unchanged). Small tables
# (lookup tables, per-channel multipliers, offsets) keep their values.
CPPCHECK_MAX_TABLE = 1024


def _shared(name: str) -> Callable[[], bytes]:
    return lambda: require_file(SHARED_MODELS / f"{name}.tflite").read_bytes()


MODELS: dict[str, Callable[[], bytes]] = {
    **{name: _shared(name) for name in SHARED},
    "demo_mlp": lambda: (DEMO / "demo_mlp.tflite").read_bytes(),
    "demo_mlp_per_tensor": lambda: (DEMO / "demo_mlp_per_tensor.tflite").read_bytes(),
    **{name: (lambda name=name: fuzzing.small_models()[name])
       for name in ("fc_bias", "fc_per_channel", "float_io_chain", "two_outputs")},
    **{f"zoo_{name}": make for name, make in op_zoo.models().items()},
}

_generated: dict[str, Path] = {}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """model name -> directory with model.c, model.h and harness_glue.c (generated once)."""

    def get(name: str) -> Path:
        if name not in _generated:
            directory = tmp_path_factory.mktemp(name)
            write_harness_sources(load_program(MODELS[name]()), directory)
            _generated[name] = directory
        return _generated[name]

    return get


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_warning_free(model: str, compiler: str, sources: Callable[[str], Path]) -> None:
    cc = require_tool(compiler)
    directory = sources(model)
    for source in ("model.c", "harness_glue.c"):
        _run([cc, *WARNINGS, "-I", str(directory), "-I", str(HARNESS), "-c",
              str(directory / source), "-o", str(directory / f"{source}.{compiler}.o")])


def _shrink_tables(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        count = int(match.group(2))
        return match.group(0) if count <= CPPCHECK_MAX_TABLE else f"{match.group(1)}    0\n}};"

    return re.sub(r"(static const \w+ \w+\[(\d+)\] = \{\n).*?\n\};", replace, text, flags=re.S)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_cppcheck_generated(model: str, sources: Callable[[str], Path], tmp_path: Path) -> None:
    cppcheck = require_tool("cppcheck")
    directory = sources(model)
    for name in ("model.c", "model.h", "harness_glue.c"):
        text = (directory / name).read_text()
        (tmp_path / name).write_text(_shrink_tables(text) if name == "model.c" else text)
    _run([cppcheck, *CPPCHECK, "-I", str(tmp_path), "-I", str(HARNESS),
          str(tmp_path / "model.c"), str(tmp_path / "harness_glue.c")])


def test_cppcheck_firmware() -> None:
    cppcheck = require_tool("cppcheck")
    firmware = REPO_ROOT / "firmware"
    _run([cppcheck, *CPPCHECK, "-I", str(firmware / "harness"), "-I",
          str(firmware / "cortex-m"), str(firmware)])


def test_shrinking_keeps_declarations() -> None:
    text = "static const int8_t m_w[2000] = {\n    1, 2,\n    3,\n};\n" \
           "static const int32_t m_m[3] = {\n    7, 8, 9,\n};\n"
    assert _shrink_tables(text) == "static const int8_t m_w[2000] = {\n    0\n};\n" \
                                   "static const int32_t m_m[3] = {\n    7, 8, 9,\n};\n"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_no_mutable_static_data(model: str, sources: Callable[[str], Path]) -> None:
    """Reentrancy by construction: apart from NAME_invoke's own arena, every object with
    static storage in the generated C is const (NAME_invoke_with_arena touches only its
    arena and its arguments)."""
    text = (sources(model) / "model.c").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    offenders = []
    for line in text.splitlines():
        if not re.match(r"\s*static\b", line) or re.match(r"\s*static\s+const\b", line):
            continue
        if re.match(r"\s*static\s+(inline\s+)?[\w\s\*]+\(", line):
            continue  # a function
        if re.match(r"static union \{", line) or re.match(r"\} model_arena\b", line):
            continue  # NAME_arena, the static arena of the non-reentrant NAME_invoke
        offenders.append(line.strip())
    assert not offenders, offenders
    unions = re.findall(r"static union \{.*?\} (\w+)", text, flags=re.S)
    assert unions in ([], ["model_arena"]), unions

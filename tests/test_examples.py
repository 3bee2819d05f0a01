"""The examples, run as a user runs them.

- The README's three commands (codegen quantize, codegen build, build examples/firmware)
  turn a Keras model and a calibration array into a Cortex-M4 firmware; it runs under QEMU
  and every printed int8 output must equal TFLM's on the printed int8 inputs.
- The README's CMake commands (codegen build --cmake, then CMake on examples/firmware-cmake)
  turn the demo's .tflite into the same firmware, checked the same way.
- examples/demo_mlp/ptq_vs_qat.py trains the demo MLP with PTQ and QAT (tfmot, in its own
  process) and writes two int8 models that codegen accepts and runs exactly as TFLM does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.models import DEMO_DIR, demo_train_module
from support.tflm import run_tflm
from support.verify import assert_same

from codegen.execute import execute
from codegen.program import load_program
from codegen.runner import qemu_command
from codegen.targets import get_target

README = policy.REPO_ROOT / "README.md"
WORKFLOW_HEADING = "## From a Keras model to a firmware"
CMAKE_HEADING = "### With CMake"
LINE = re.compile(r"sample (\d+): x = ([-\d. ]+)\| q_in = ([-\d ]+)\| q_out = ([-\d ]+)\| "
                  r"y = ([-\d. ]+)$")


def workflow_commands(heading: str = WORKFLOW_HEADING) -> list[str]:
    """The first ```sh block after a heading of the README, one command a line."""
    text = README.read_text()
    section = text[text.index(heading):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "no ```sh block in the workflow section"
    joined = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_readme_has_three_commands() -> None:
    commands = workflow_commands()
    assert len(commands) == 3
    assert commands[0].startswith("codegen quantize ")
    assert commands[1].startswith("codegen build ")
    assert "examples/firmware" in commands[2]


def _user_environment(tmp_path: Path) -> dict[str, str]:
    """As on a fresh machine after ./scripts/setup: the system directories plus the venv's
    bin (meson, codegen), nothing else of this machine's PATH."""
    venv_bin = Path(sys.executable).parent
    policy.require((venv_bin / "codegen").is_file(),
                   f"no codegen script beside {sys.executable}; run ./scripts/setup")
    return {"PATH": os.pathsep.join([str(venv_bin), *policy.SYSTEM_PATH]),
            "HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8",
            "PYTHONPATH": str(policy.REPO_ROOT)}  # this checkout's codegen, installed or not


def _run_commands(commands: list[str], cwd: Path) -> None:
    env = _user_environment(cwd)
    shell = "set -euo pipefail\n"
    for command in commands:
        done = subprocess.run(["bash", "-c", shell + command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"


def _check_firmware(elf: Path, model: bytes) -> None:
    """Run the example firmware under QEMU: every printed int8 output must equal TFLM's
    (and the reference's) on the printed int8 inputs, and the printed floats must be the
    quantization and dequantization of the header's scales and zero points."""
    assert elf.is_file()
    # QEMU prints the semihosting console on its stderr.
    run = subprocess.run(qemu_command(elf, get_target("cortex-m4")), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=120, check=False,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout
    lines = [LINE.match(line.strip()) for line in run.stdout.splitlines()
             if line.startswith("sample ")]
    assert lines and all(lines), run.stdout
    assert run.stdout.strip().endswith("done")

    program = load_program(model)
    graph = program.graph
    x = np.array([[float(v) for v in m.group(2).split()] for m in lines])
    q_in = np.array([[int(v) for v in m.group(3).split()] for m in lines], np.int8)
    q_out = np.array([[int(v) for v in m.group(4).split()] for m in lines], np.int8)
    y = np.array([[float(v) for v in m.group(5).split()] for m in lines])
    inputs = [q_in.reshape(len(q_in), *graph.tensors[graph.inputs[0]].shape)]
    tflm = run_tflm(model, inputs)[0]
    assert_same([q_out.reshape(tflm.shape)], [tflm], "firmware vs TFLM")
    assert_same([q_out.reshape(tflm.shape)], execute(program, "reference", inputs),
                "firmware vs reference")
    # The firmware quantizes and dequantizes with the header's scales and zero points.
    qin, qout = graph.tensors[graph.inputs[0]].quant, graph.tensors[graph.outputs[0]].quant
    expected_q = np.clip(np.round(x / qin.scale) + qin.zero_point, -128, 127)
    assert np.abs(expected_q - q_in).max() <= 1  # x is printed rounded to 6 decimals
    assert (q_in == -128).any() and (q_in == 127).any()  # readings beyond the range saturate
    np.testing.assert_allclose(y, qout.scale * (q_out.astype(np.float64) - qout.zero_point),
                               atol=1.5e-6)


@pytest.mark.tf
@pytest.mark.tflm
@pytest.mark.qemu
def test_keras_to_firmware_in_three_commands(tmp_path: Path) -> None:
    for tool in ("arm-none-eabi-gcc", "ninja"):
        policy.require_tool(tool)
    # The user's directory: a Keras model, a calibration array, and the repository's
    # examples (the README's commands run from a clone's root).
    shutil.copy(DEMO_DIR / "demo_mlp.keras", tmp_path / "model.keras")
    np.save(tmp_path / "calibration.npy", demo_train_module().grid(17))
    (tmp_path / "examples").symlink_to(policy.REPO_ROOT / "examples")
    _run_commands(workflow_commands(), tmp_path)
    _check_firmware(tmp_path / "fw" / "firmware.elf", (tmp_path / "model.tflite").read_bytes())


def test_readme_has_the_cmake_commands() -> None:
    commands = workflow_commands(CMAKE_HEADING)
    assert len(commands) == 3
    assert commands[0].startswith("codegen build ") and "--cmake" in commands[0]
    assert "examples/firmware-cmake" in commands[1]
    assert commands[2].startswith("cmake --build ")


@pytest.mark.tflm
@pytest.mark.qemu
def test_cmake_firmware_from_the_readme(tmp_path: Path) -> None:
    """examples/firmware-cmake built with Debian's cmake from `codegen build --cmake`,
    exactly as the README says, runs under QEMU with TFLM's outputs."""
    for tool in ("arm-none-eabi-gcc", "ninja", "cmake"):
        policy.require_tool(tool)
    shutil.copy(DEMO_DIR / "demo_mlp.tflite", tmp_path / "model.tflite")
    (tmp_path / "examples").symlink_to(policy.REPO_ROOT / "examples")
    _run_commands(workflow_commands(CMAKE_HEADING), tmp_path)
    _check_firmware(tmp_path / "fw" / "firmware.elf", (tmp_path / "model.tflite").read_bytes())


@pytest.mark.tf
@pytest.mark.tflm
def test_ptq_vs_qat_example(tmp_path: Path) -> None:
    policy.require_module("tensorflow_model_optimization", "tensorflow-model-optimization")
    policy.require_module("tf_keras", "tf-keras")
    script = policy.REPO_ROOT / "examples" / "demo_mlp" / "ptq_vs_qat.py"
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--epochs",
                           "4", "--qat-epochs", "2"], capture_output=True, text=True,
                          timeout=900, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    errors = re.findall(r"(float|int8 PTQ|int8 QAT|16x8 PTQ):\s+rms ([\d.]+), max ([\d.]+)",
                        done.stdout)
    assert [e[0] for e in errors] == ["float", "int8 PTQ", "int8 QAT", "16x8 PTQ"], done.stdout
    rng = np.random.default_rng(5)
    for name in ("demo_mlp_ptq.tflite", "demo_mlp_qat.tflite", "demo_mlp_16x8.tflite"):
        model = (tmp_path / name).read_bytes()
        program = load_program(model)
        graph = program.graph
        assert {layer.opcode for layer in program.layers} == {"FULLY_CONNECTED"}
        dtype = graph.tensors[graph.inputs[0]].dtype
        for t in (*graph.inputs, *graph.outputs):
            assert graph.tensors[t].dtype.numpy_name == ("int16" if "16x8" in name else "int8")
        inputs = [rng.integers(dtype.qmin, dtype.qmax + 1, (300, 1, 2)).astype(dtype.np)]
        assert_same(execute(program, "reference", inputs), run_tflm(model, inputs),
                    f"{name}: reference vs TFLM")

"""CMake: `codegen generate --cmake` (a CMake library beside NAME.c/NAME.h) and `codegen build
--cmake` (the library compiled with CMake, with a toolchain file per Cortex-M target).

The generated CMakeLists.txt is used the ways a CMake project uses a dependency: by
add_subdirectory() on the host (a program linking codegen::NAME prints outputs equal to the
reference; the library's flags stay its own) and for cortex-m4 (with the target's
toolchain.cmake: the object has the core's attributes), through FetchContent, and as a project
of its own that installs a package for find_package() (what ExternalProject does). Nothing
from the model's file name reaches the file unescaped, and a user's CMakeLists.txt is never
overwritten. The example firmware (examples/firmware-cmake) is tested in test_examples.py,
two models in one CMake firmware in test_multi_model.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.programs import expected_outputs, main_c

from codegen.cli import main
from codegen.cmake import cmake_lists_text
from codegen.targets import TARGETS, get_target, toolchain_file_text

DEMO = policy.REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite"
STRICT = "-Wall -Wextra -Wpedantic -Werror"


def codegen(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line, run in this process (a Python start-up per call is slow)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return subprocess.CompletedProcess(["codegen", *args], status, out.getvalue(),
                                       err.getvalue())


def _cmake(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([policy.require_tool("cmake"), *args], capture_output=True,
                          text=True, check=False, timeout=300,
                          env={**os.environ, "CC": os.environ.get("CC", "cc"), **(env or {})})
    assert done.returncode == 0, f"cmake {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _configure_and_build(source: Path, build: Path, *extra: str) -> None:
    _cmake("-S", str(source), "-B", str(build), "-G", "Ninja",
           "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", *extra, env={"CFLAGS": STRICT})
    _cmake("--build", str(build))


def _inputs(count: int = 40) -> np.ndarray:
    rng = np.random.default_rng(18)
    return rng.integers(-128, 128, size=(count, 1, 2), dtype=np.int64).astype(np.int8)


def _app(project: Path, body: str, inputs: np.ndarray, name: str = "mlp") -> None:
    """A host application: main.c printing the model's outputs, and its CMakeLists.txt
    (the project lines, then `body`)."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "main.c").write_text(main_c(name, inputs))
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\n" + body
        + "add_executable(app main.c)\n"
        f"target_link_libraries(app PRIVATE codegen::{name})\n")


def _outputs(executable: Path) -> list[int]:
    done = subprocess.run([str(executable)], capture_output=True, text=True, check=True,
                          timeout=60)
    return [int(v) for v in done.stdout.split()]


def _commands(build: Path) -> dict[str, str]:
    """compile_commands.json: source file name -> its compiler command."""
    entries = json.loads((build / "compile_commands.json").read_text())
    return {Path(e["file"]).name: e["command"] for e in entries}


def test_add_subdirectory_on_the_host(tmp_path: Path) -> None:
    policy.require_tool("ninja")
    project = tmp_path / "app"
    result = codegen("generate", str(DEMO), "-o", str(project / "mlp"), "--name", "mlp",
                     "--cmake")
    assert result.returncode == 0, result.stderr
    assert "CMakeLists.txt" in result.stdout
    inputs = _inputs()
    _app(project, "add_subdirectory(mlp)\n", inputs)
    _configure_and_build(project, tmp_path / "build")
    assert _outputs(tmp_path / "build" / "app") == expected_outputs(DEMO, inputs)
    # The include directory came with the target; C99 and the section flags are the
    # library's own, not its users'.
    commands = _commands(tmp_path / "build")
    assert "-std=c99" in commands["mlp.c"] and "-ffunction-sections" in commands["mlp.c"]
    assert "-std=c99" not in commands["main.c"]
    assert "-ffunction-sections" not in commands["main.c"]
    assert f"-I{project / 'mlp'}" in commands["main.c"]


def test_add_subdirectory_for_cortex_m4(tmp_path: Path) -> None:
    """With the target's toolchain file, the library is compiled for the core and float
    ABI of the targets table."""
    policy.require_tool("arm-none-eabi-gcc")
    policy.require_tool("ninja")
    project = tmp_path / "firmware"
    result = codegen("generate", str(DEMO), "-o", str(project / "mlp"), "--name", "mlp",
                     "--cmake")
    assert result.returncode == 0, result.stderr
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(firmware C)\n"
        "add_subdirectory(mlp)\n")
    toolchain = tmp_path / "toolchain.cmake"
    toolchain.write_text(toolchain_file_text(get_target("cortex-m4")))
    _configure_and_build(project, tmp_path / "build", f"-DCMAKE_TOOLCHAIN_FILE={toolchain}")
    archive = tmp_path / "build" / "mlp" / "libmlp.a"
    attributes = subprocess.run(["arm-none-eabi-readelf", "-A", str(archive)],
                                capture_output=True, text=True, check=True).stdout
    assert "Tag_CPU_arch: v7E-M" in attributes, attributes
    assert "Tag_ABI_VFP_args: VFP registers" in attributes, attributes
    command = _commands(tmp_path / "build")["mlp.c"]
    assert "-mcpu=cortex-m4" in command and "-mfpu=fpv4-sp-d16" in command, command


def test_fetchcontent(tmp_path: Path) -> None:
    """FetchContent_MakeAvailable on a generated directory (SOURCE_DIR: already there)."""
    policy.require_tool("ninja")
    generated = tmp_path / "generated" / "mlp"
    assert codegen("generate", str(DEMO), "-o", str(generated), "--name", "mlp",
                   "--cmake").returncode == 0
    inputs = _inputs(12)
    _app(tmp_path / "app", "include(FetchContent)\n"
         f'FetchContent_Declare(mlp SOURCE_DIR "{generated}")\n'
         "FetchContent_MakeAvailable(mlp)\n", inputs)
    _configure_and_build(tmp_path / "app", tmp_path / "build")
    assert _outputs(tmp_path / "build" / "app") == expected_outputs(DEMO, inputs)


def test_installed_package(tmp_path: Path) -> None:
    """The generated directory as a project of its own (as ExternalProject builds it):
    configured, built and installed, it is found by find_package(NAME) as codegen::NAME."""
    policy.require_tool("ninja")
    generated = tmp_path / "mlp"
    assert codegen("generate", str(DEMO), "-o", str(generated), "--name", "mlp",
                   "--cmake").returncode == 0
    prefix = tmp_path / "prefix"
    _configure_and_build(generated, tmp_path / "mlp-build", f"-DCMAKE_INSTALL_PREFIX={prefix}")
    _cmake("--install", str(tmp_path / "mlp-build"))
    installed = {str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file()}
    assert {"include/mlp.h", "lib/libmlp.a", "lib/cmake/mlp/mlpConfig.cmake"} <= installed
    inputs = _inputs(12)
    _app(tmp_path / "app", "find_package(mlp CONFIG REQUIRED)\n", inputs)
    _configure_and_build(tmp_path / "app", tmp_path / "build", f"-DCMAKE_PREFIX_PATH={prefix}")
    assert _outputs(tmp_path / "build" / "app") == expected_outputs(DEMO, inputs)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_build_with_cmake(tmp_path: Path, target: str) -> None:
    """`codegen build --cmake`: the library compiled by CMake (with toolchain.cmake for a
    Cortex-M core, whose flags are the target's) and measured like the meson build."""
    policy.require_tool("ninja")
    policy.require_tool("cmake")
    if target != "host":
        policy.require_tool("arm-none-eabi-gcc")
    out = tmp_path / "lib"
    result = codegen("build", str(DEMO), "--target", target, "-o", str(out), "--name", "mlp",
                     "--cmake")
    assert result.returncode == 0, result.stderr
    expected = {"libmlp.a", "mlp.h", "mlp.c", "CMakeLists.txt"}
    if target != "host":
        expected.add("toolchain.cmake")
        toolchain = (out / "toolchain.cmake").read_text()
        for flag in TARGETS[target].machine_flags:
            assert flag in toolchain
        assert "-DCMAKE_TOOLCHAIN_FILE=" in result.stdout
    assert {p.name for p in out.iterdir()} == expected
    assert (out / "libmlp.a").read_bytes().startswith(b"!<arch>\n")
    if target != "host":  # the same flags as the meson build: the same code
        meson = codegen("build", str(DEMO), "--target", target, "-o", str(tmp_path / "meson"),
                        "--name", "mlp")
        assert meson.returncode == 0, meson.stderr
        assert _footprint(result.stdout) == _footprint(meson.stdout)
    if target == "host":
        inputs = _inputs(16)
        (tmp_path / "main.c").write_text(main_c("mlp", inputs))
        subprocess.run([os.environ.get("CC", "cc"), "-std=c99", "-Wall", "-Werror",
                        f"-I{out}", str(tmp_path / "main.c"), str(out / "libmlp.a"), "-o",
                        str(tmp_path / "main")], check=True, timeout=120)
        assert _outputs(tmp_path / "main") == expected_outputs(DEMO, inputs)
    # Built again into the same directory: codegen's own files are replaced.
    again = codegen("build", str(DEMO), "--target", target, "-o", str(out), "--name", "mlp",
                    "--cmake")
    assert again.returncode == 0, again.stderr


def _footprint(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "flash:" in line or "RAM:" in line]


def test_a_users_cmakelists_is_never_overwritten(tmp_path: Path) -> None:
    """An output directory holding the user's CMakeLists.txt (their project's root, say):
    refused in one line, nothing written; codegen's own files are replaced."""
    out = tmp_path / "project"
    out.mkdir()
    mine = b"project(mine C)\nadd_executable(mine main.c)\n"
    (out / "CMakeLists.txt").write_bytes(mine)
    for command in (["generate"], ["build", "--target", "host"]):
        result = codegen(*command[:1], str(DEMO), *command[1:], "-o", str(out), "--name",
                         "mlp", "--cmake")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "was not written by codegen" in lines[0], result.stderr
        assert sorted(p.name for p in out.iterdir()) == ["CMakeLists.txt"]
        assert (out / "CMakeLists.txt").read_bytes() == mine
    # A user's libmlp.a (not an archive of mlp.c.o) is kept too.
    (out / "CMakeLists.txt").unlink()
    (out / "libmlp.a").write_bytes(b"!<arch>\n")
    result = codegen("build", str(DEMO), "--target", "host", "-o", str(out), "--name", "mlp",
                     "--cmake")
    assert result.returncode == 1 and "libmlp.a exists and was not written by codegen" in \
        result.stderr
    (out / "libmlp.a").unlink()
    assert codegen("generate", str(DEMO), "-o", str(out), "--name", "mlp",
                   "--cmake").returncode == 0
    assert codegen("generate", str(DEMO), "-o", str(out), "--name", "mlp",
                   "--cmake").returncode == 0


def test_hostile_file_name_stays_in_its_comment(tmp_path: Path) -> None:
    """A model file named to break out of the comment (a newline, CMake's ${...}, a bracket
    comment, quotes) leaves one comment line; the file configures."""
    policy.require_tool("ninja")
    hostile = tmp_path / 'x\n"${CMAKE_COMMAND}"#[[ );message(FATAL_ERROR boom)\r.tflite'
    hostile.write_bytes(DEMO.read_bytes())
    out = tmp_path / "mlp"
    result = codegen("generate", str(hostile), "-o", str(out), "--name", "mlp", "--cmake")
    assert result.returncode == 0, result.stderr
    text = (out / "CMakeLists.txt").read_text()
    benign = cmake_lists_text("mlp", "model.tflite").splitlines()
    lines = text.splitlines()
    assert len(lines) == len(benign) and lines[1:] == benign[1:]
    assert lines[0].startswith("# mlp: CMake library generated by codegen from x_")
    assert all(c not in lines[0] for c in '\r"${}\\')
    inputs = _inputs(4)
    _app(tmp_path / "app", f'add_subdirectory("{out}" mlp)\n', inputs)
    _configure_and_build(tmp_path / "app", tmp_path / "build")
    assert _outputs(tmp_path / "build" / "app") == expected_outputs(DEMO, inputs)


@pytest.mark.parametrize("name", ["test", "ALL_BUILD", "install"])
def test_names_cmake_reserves_are_refused(tmp_path: Path, name: str) -> None:
    result = codegen("generate", str(DEMO), "-o", str(tmp_path / "out"), "--name", name,
                     "--cmake")
    assert result.returncode == 1
    assert "reserves" in result.stderr and not (tmp_path / "out").exists()

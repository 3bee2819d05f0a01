"""`codegen build` (static library per target) and `codegen generate --meson` (subproject).

The demo MLP is built into libNAME.a for the host and for a Cortex-M4; a small host program
links the library (directly, and through the meson subproject) and its outputs must equal
the numpy reference.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.programs import expected_outputs, main_c

from codegen.library import build_library, meson_build_text

DEMO = policy.REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite"
SAMPLES = 64


def codegen(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codegen", *args], capture_output=True,
                          text=True, cwd=cwd, check=False, timeout=600)


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(-128, 128, size=(SAMPLES, 1, 2), dtype=np.int64).astype(np.int8)


def _main_c(name: str, inputs: np.ndarray) -> str:
    return main_c(name, inputs)


def _expected(inputs: np.ndarray) -> list[int]:
    return expected_outputs(DEMO, inputs)


def test_host_library_links_and_matches_reference(tmp_path: Path) -> None:
    policy.require_tool("ninja")
    result = codegen("build", str(DEMO), "--target", "host", "-o", str(tmp_path / "lib"),
                     "--name", "mlp")
    assert result.returncode == 0, result.stderr
    assert re.search(r"flash:\s+\d+ bytes", result.stdout), result.stdout
    assert re.search(r"RAM:\s+\d+ bytes", result.stdout), result.stdout
    lib = tmp_path / "lib"
    archive = lib / "libmlp.a"
    assert archive.read_bytes().startswith(b"!<arch>\n"), "not a self-contained archive"
    assert {p.name for p in lib.iterdir()} >= {"libmlp.a", "mlp.h", "mlp.c", "meson.build"}
    # The library is all the program needs: no NAME.c on the command line.
    inputs = _inputs()
    (tmp_path / "main.c").write_text(_main_c("mlp", inputs))
    exe = tmp_path / "main"
    subprocess.run([os.environ.get("CC", "cc"), "-std=c99", "-Wall", "-Werror",
                    f"-I{lib}", str(tmp_path / "main.c"), str(archive), "-o", str(exe)],
                   check=True, timeout=120)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=60)
    assert [int(v) for v in out.stdout.split()] == _expected(inputs)


def test_cortex_m4_library_has_target_flags_and_footprint(tmp_path: Path) -> None:
    policy.require_tool("arm-none-eabi-gcc")
    policy.require_tool("ninja")
    lib = build_library(DEMO, "cortex-m4", tmp_path / "lib", "mlp")
    attributes = subprocess.run(["arm-none-eabi-readelf", "-A", str(lib.archive)],
                                capture_output=True, text=True, check=True).stdout
    assert "Tag_CPU_arch: v7E-M" in attributes, attributes  # -mcpu=cortex-m4
    assert "Tag_ABI_VFP_args: VFP registers" in attributes, attributes  # -mfloat-abi=hard
    relocations = subprocess.run(["arm-none-eabi-readelf", "-r", str(lib.archive)],
                                 capture_output=True, text=True, check=True).stdout
    assert "GOT" not in relocations, "position-independent code in a firmware library"
    fp = lib.footprint
    assert fp.bss == lib.program.plan.size  # the static arena, and nothing else
    assert fp.data == 0
    assert 0 < fp.constants <= lib.program.constant_bytes + 64
    assert fp.code > 0
    assert lib.cross_file is not None and "-mcpu=cortex-m4" in lib.cross_file.read_text()


def test_meson_subproject(tmp_path: Path) -> None:
    policy.require_tool("ninja")
    project = tmp_path / "app"
    (project / "subprojects").mkdir(parents=True)
    result = codegen("generate", str(DEMO), "-o", str(project / "subprojects" / "mlp"),
                     "--name", "mlp", "--meson")
    assert result.returncode == 0, result.stderr
    assert "meson.build" in result.stdout
    inputs = _inputs()
    (project / "main.c").write_text(_main_c("mlp", inputs))
    (project / "meson.build").write_text(
        "project('app', 'c', default_options: ['c_std=c99', 'warning_level=3', "
        "'werror=true'])\n"
        "executable('app', 'main.c', dependencies: dependency('mlp'))\n"
    )
    build = tmp_path / "build"
    env = dict(os.environ, CC=os.environ.get("CC", "cc"))
    from codegen.build import meson_executable

    for command in ([meson_executable(), "setup", str(build), str(project)],
                    ["ninja", "-C", str(build)]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    out = subprocess.run([str(build / "app")], capture_output=True, text=True, check=True,
                         timeout=60)
    assert [int(v) for v in out.stdout.split()] == _expected(inputs)


def test_meson_build_text_names_the_dependency() -> None:
    text = meson_build_text("kws", "kws.tflite")
    assert "meson.override_dependency('kws', kws_dep)" in text
    assert "pic: false" in text


@pytest.mark.parametrize("args, message", [
    (("missing.tflite", "--target", "host"), "missing.tflite"),
    ((str(DEMO), "--target", "host", "--name", "9bad"), "C identifier"),
])
def test_build_errors_are_one_line(tmp_path: Path, args: tuple[str, ...],
                                   message: str) -> None:
    result = codegen("build", *args, "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("codegen: error:") and message in lines[0]

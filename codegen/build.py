"""Builds the harness executable for one generated model with meson and ninja.

A build directory is configured once (meson setup, skipped while its options are unchanged)
and can then build model after model: only ninja runs, recompiling the generated files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from codegen.errors import CodegenError
from codegen.files import claim_build_dir, clear_build_dir
from codegen.resources import data_root
from codegen.targets import Target, cross_file_text

_PACKAGES = {
    "cortex-m": "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm",
    "riscv": "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc",
}
_C_LIBRARY = {"cortex-m": ("nano.specs", "newlib-nano"), "riscv": ("picolibc.specs", "picolibc")}
_STAMP = "codegen-setup.json"
_SOURCES_STAMP = "codegen-sources.json"
_CROSS_FILE = "cross.ini"
_LOG = "build.log"


def meson_executable() -> str:
    """The meson installed beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "meson"
    if beside.is_file():
        return str(beside)
    found = shutil.which("meson")
    if found is None:
        raise CodegenError("meson is not installed; install it with `pip install meson`")
    return found


def _host_compiler(cc: str | None) -> str:
    return cc or os.environ.get("CC") or "cc"


def check_toolchain(target: Target, *, cc: str | None = None) -> None:
    """Raise CodegenError naming every tool that building and running `target` lacks."""
    meson_executable()
    if target.is_host:
        missing = [t for t in ("ninja", _host_compiler(cc)) if shutil.which(t) is None]
        if missing:
            raise CodegenError(
                f"missing build tools: {', '.join(missing)}; install ninja-build and a C compiler"
            )
        return
    gcc = target.toolchain_prefix + "gcc"
    tools = ("ninja", gcc, target.qemu_binary)
    missing = [t for t in tools if shutil.which(t) is None]
    specs, library = _C_LIBRARY[target.platform]
    if not missing and not _has_specs(gcc, specs):
        missing = [f"{library} ({specs})"]
    if missing:
        raise CodegenError(
            f"missing tools for target {target.name}: {', '.join(missing)}; "
            f"install {_PACKAGES[target.platform]} and ninja-build"
        )


def _has_specs(gcc: str, specs: str) -> bool:
    found = subprocess.run(
        [gcc, f"-print-file-name={specs}"], capture_output=True, text=True, check=False
    )
    return found.returncode == 0 and Path(found.stdout.strip()).is_absolute()


def _setup_options(model_dir: Path, name: str, target: Target, build_dir: Path,
                   sanitize: bool, optimization: str, harness: str) -> list[str]:
    options = [
        f"-Dmodel_dir={model_dir.resolve()}",
        f"-Dmodel_name={name}",
        f"-Dboard={target.board}",
        f"-Doptimization={optimization}",
        "-Ddebug=true",
        f"-Dharness={harness}",
    ]
    if sanitize:
        options += [
            "-Db_sanitize=address,undefined",
            "-Db_lundef=false",
            "-Dc_args=-fno-sanitize-recover=all -fno-omit-frame-pointer",
        ]
    if not target.is_host:
        options.append(f"--cross-file={build_dir / _CROSS_FILE}")
    return options


def _prepare_build_dir(build_dir: Path, stamp: dict[str, object]) -> bool:
    """Make build_dir ready; return True when meson setup must run. Only a directory codegen
    created (or found empty) is used, and only such a directory is emptied."""
    claim_build_dir(build_dir)
    stamp_path = build_dir / _STAMP
    if (stamp_path.is_file() and not stamp_path.is_symlink()
            and _read_stamp(stamp_path) == stamp and (build_dir / "build.ninja").is_file()):
        return False
    clear_build_dir(build_dir)  # configured differently before, or never
    return True


def _read_stamp(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_ERROR_LINE = re.compile(r"(?:^|[\s:])error:", re.IGNORECASE)


def _summary(output: str) -> str:
    """The first compiler or meson error line of `output`, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if _ERROR_LINE.search(line):
            return line
    return lines[-1] if lines else "no output"


def _run_logged(command: list[str], log: Path, env: dict[str, str], what: str) -> None:
    result = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        check=False,
    )
    with log.open("a") as stream:
        stream.write("$ " + " ".join(command) + "\n" + result.stdout + "\n")
    if result.returncode != 0:
        raise CodegenError(f"{what} failed: {_summary(result.stdout)} (full log: {log})")


def _generated_files(model_dir: Path, name: str) -> list[Path]:
    return [model_dir / f"{name}.c", model_dir / f"{name}.h", model_dir / "harness_glue.c"]


def _date_changed_sources(files: list[Path], build_dir: Path) -> dict[str, str]:
    """ninja rebuilds what is newer than its outputs, but a file rewritten within the file
    system's timestamp granularity of the last build looks up to date. Every file whose
    content differs from the last successful build gets an mtime after that build.
    Returns the files' digests, to be recorded once this build succeeds."""
    digests = {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}
    stamp = build_dir / _SOURCES_STAMP
    if not stamp.is_file():
        return digests
    built = json.loads(stamp.read_text())
    built_at = stamp.stat().st_mtime_ns
    for path, digest in digests.items():
        if built.get(path) != digest and Path(path).stat().st_mtime_ns <= built_at:
            os.utime(path, ns=(built_at + 1, built_at + 1))
    return digests


HARNESSES = ("run", "bench")


def build_firmware(model_dir: Path, name: str, target: Target, build_dir: Path, *,
                   sanitize: bool = False, optimization: str = "2",
                   cc: str | None = None, harness: str = "run") -> Path:
    """Configure and compile the harness for model `name` in `model_dir`; return the executable.

    `model_dir` holds NAME.c, NAME.h and harness_glue.c. `harness` is "run" (stream samples
    through the model, firmware/harness/main.c) or "bench" (time one sample per layer,
    bench_main.c; the model is compiled with -DCODEGEN_PROFILE). `sanitize` (host only)
    builds with AddressSanitizer and UndefinedBehaviorSanitizer, stopping at the first report.
    `cc` picks the host C compiler (default: $CC, else cc). Building again in the same
    `build_dir` with the same arguments (after the model's files changed, say) only
    recompiles; `build_dir/build.log` holds the commands and output of the last build.
    """
    if sanitize and not target.is_host:
        raise CodegenError(f"sanitizers are only available for the host, not {target.name}")
    if harness not in HARNESSES:
        raise CodegenError(f"unknown harness {harness!r}; valid: {', '.join(HARNESSES)}")
    check_toolchain(target, cc=cc)
    build_dir = build_dir.resolve()
    env = dict(os.environ)
    if target.is_host:
        env["CC"] = _host_compiler(cc)
    options = _setup_options(model_dir, name, target, build_dir, sanitize, optimization,
                             harness)
    stamp: dict[str, object] = {"options": options, "cc": env.get("CC", "")}
    log = build_dir / _LOG
    if _prepare_build_dir(build_dir, stamp):
        if not target.is_host:
            (build_dir / _CROSS_FILE).write_text(cross_file_text(target))
        log.write_text("")
        _run_logged([meson_executable(), "setup", *options, str(build_dir), str(data_root())],
                    log, env, f"meson setup for target {target.name}")
        (build_dir / _STAMP).write_text(json.dumps(stamp))
    else:
        log.write_text("")
    digests = _date_changed_sources(_generated_files(model_dir.resolve(), name), build_dir)
    # ninja itself rather than `meson compile`, which only starts ninja but costs a Python
    # start-up; build.ninja re-runs meson by itself when meson.build changes.
    _run_logged(["ninja", "-C", str(build_dir)], log, env,
                f"firmware build for target {target.name}")
    (build_dir / _SOURCES_STAMP).write_text(json.dumps(digests))
    return build_dir / target.executable_name

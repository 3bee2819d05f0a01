"""Runs a built harness on a batch of samples: natively for the host, under QEMU otherwise."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codegen.errors import CodegenError
from codegen.targets import Target

INPUT_FILE = "input.bin"
OUTPUT_FILE = "output.bin"


def qemu_command(executable: Path, target: Target, *, icount: bool = False,
                 plugin: Sequence[str] = ()) -> list[str]:
    """The qemu-system command line that runs `executable` with semihosting.

    `plugin` is a TCG plugin and its arguments ("path.so", "key=value", ...)."""
    command = [
        target.qemu_binary, "-M", target.qemu_machine, "-cpu", target.qemu_cpu,
        "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native",
    ]
    if icount:
        # One instruction per virtual nanosecond, decoupled from host time: run-to-run
        # deterministic instruction counts for benchmarks.
        command += ["-icount", "shift=0,align=off,sleep=off"]
    if plugin:
        command += ["-plugin", ",".join(p.replace(",", ",,") for p in plugin)]
    return [*command, "-kernel", str(executable.resolve())]


def _last_message(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


@dataclass(frozen=True)
class Run:
    """What one run of a harness left behind."""

    output: bytes  # output.bin
    console: str  # stdout and stderr together
    files: dict[str, bytes] = field(default_factory=dict)  # the requested extra files


def run_firmware(executable: Path, target: Target, input_bytes: bytes, *,
                 timeout: float = 120.0, icount: bool = False) -> bytes:
    """Feed `input_bytes` (whole samples back to back) to the harness; return its output.

    Raises CodegenError when the harness fails (with its last message), or does not
    finish within `timeout` seconds.
    """
    return run_harness(executable, target, input_bytes, timeout=timeout, icount=icount).output


def run_harness(executable: Path, target: Target, input_bytes: bytes, *,
                timeout: float = 120.0, icount: bool = False, plugin: Sequence[str] = (),
                collect: Sequence[str] = ()) -> Run:
    """run_firmware, also returning the console and the files named in `collect` that the
    run wrote in its working directory (a plugin's output, say). Under QEMU, `plugin` is a
    TCG plugin and its arguments (see qemu_command)."""
    with tempfile.TemporaryDirectory(prefix="codegen-run-") as tmp:
        workdir = Path(tmp)
        (workdir / INPUT_FILE).write_bytes(input_bytes)
        if target.is_host:
            command = [str(executable.resolve()), INPUT_FILE, OUTPUT_FILE]
        else:
            command = qemu_command(executable, target, icount=icount, plugin=plugin)
        try:
            result = subprocess.run(
                command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise CodegenError(
                f"{executable.name} on {target.name} timed out after {timeout:g} s"
            ) from None
        output = result.stdout.decode("utf-8", errors="replace")
        if result.returncode != 0:
            raise CodegenError(
                f"{executable.name} on {target.name} failed with exit status "
                f"{result.returncode}: {_last_message(output)}"
            )
        output_path = workdir / OUTPUT_FILE
        if not output_path.is_file():
            raise CodegenError(f"{executable.name} on {target.name} wrote no {OUTPUT_FILE}")
        files = {name: (workdir / name).read_bytes() for name in collect
                 if (workdir / name).is_file()}
        return Run(output_path.read_bytes(), output, files)

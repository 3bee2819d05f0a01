"""Runs a built harness on a batch of samples: natively for the host, under QEMU otherwise."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from codegen.errors import CodegenError
from codegen.targets import Target

INPUT_FILE = "input.bin"
OUTPUT_FILE = "output.bin"


def qemu_command(executable: Path, target: Target, *, icount: bool = False) -> list[str]:
    """The qemu-system command line that runs `executable` with semihosting."""
    command = [
        target.qemu_binary, "-M", target.qemu_machine, "-cpu", target.qemu_cpu,
        "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native",
    ]
    if icount:
        # One instruction per virtual nanosecond, decoupled from host time: run-to-run
        # deterministic instruction counts for benchmarks.
        command += ["-icount", "shift=0,align=off,sleep=off"]
    return [*command, "-kernel", str(executable.resolve())]


def _last_message(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def run_firmware(executable: Path, target: Target, input_bytes: bytes, *,
                 timeout: float = 120.0, icount: bool = False) -> bytes:
    """Feed `input_bytes` (whole samples back to back) to the harness; return its output.

    Raises CodegenError when the harness fails (with its last message), or does not
    finish within `timeout` seconds.
    """
    with tempfile.TemporaryDirectory(prefix="codegen-run-") as tmp:
        workdir = Path(tmp)
        (workdir / INPUT_FILE).write_bytes(input_bytes)
        if target.is_host:
            command = [str(executable.resolve()), INPUT_FILE, OUTPUT_FILE]
        else:
            command = qemu_command(executable, target, icount=icount)
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
        return output_path.read_bytes()

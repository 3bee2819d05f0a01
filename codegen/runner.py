"""Runs a built harness on a batch of samples: natively for the host, under QEMU otherwise."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codegen.errors import CodegenError
from codegen.targets import Target

INPUT_FILE = "input.bin"
OUTPUT_FILE = "output.bin"
CONSOLE_FILE = "console.txt"
_POLL_SECONDS = 0.1  # how often a watched run reports the size of its output


def qemu_command(executable: Path, target: Target, *, icount: bool = False,
                 plugin: Sequence[str] = ()) -> list[str]:
    """The qemu-system command line that runs `executable` with semihosting.

    `plugin` is a TCG plugin and its arguments ("path.so", "key=value", ...)."""
    command = [
        target.qemu_binary, "-M", target.qemu_machine, "-cpu", target.qemu_cpu,
        "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native", *target.qemu_args,
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
                 timeout: float = 120.0, icount: bool = False,
                 on_output: Callable[[int], None] | None = None) -> bytes:
    """Feed `input_bytes` (whole samples back to back) to the harness; return its output.

    Raises CodegenError when the harness fails (with its last message), or does not
    finish within `timeout` seconds. `on_output(size)` is called while it runs with the
    bytes of output written so far (the harness writes each sample's output as soon as it
    has it, so this counts samples done).
    """
    return run_harness(executable, target, input_bytes, timeout=timeout, icount=icount,
                       on_output=on_output).output


def run_harness(executable: Path, target: Target, input_bytes: bytes, *,
                timeout: float = 120.0, icount: bool = False, plugin: Sequence[str] = (),
                collect: Sequence[str] = (),
                on_output: Callable[[int], None] | None = None) -> Run:
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
        status = _watch(command, workdir, timeout, on_output)
        if status is None:
            raise CodegenError(
                f"{executable.name} on {target.name} timed out after {timeout:g} s"
            )
        output = (workdir / CONSOLE_FILE).read_bytes().decode("utf-8", errors="replace")
        if status != 0:
            raise CodegenError(
                f"{executable.name} on {target.name} failed with exit status "
                f"{status}: {_last_message(output)}"
            )
        output_path = workdir / OUTPUT_FILE
        if not output_path.is_file():
            raise CodegenError(f"{executable.name} on {target.name} wrote no {OUTPUT_FILE}")
        files = {name: (workdir / name).read_bytes() for name in collect
                 if (workdir / name).is_file()}
        return Run(output_path.read_bytes(), output, files)


def _watch(command: list[str], workdir: Path, timeout: float,
           on_output: Callable[[int], None] | None) -> int | None:
    """Run command in workdir (its console into CONSOLE_FILE); return its exit status, or
    None when it was killed after `timeout` seconds. While it runs, on_output gets the
    size of OUTPUT_FILE every _POLL_SECONDS."""
    deadline = time.monotonic() + timeout
    output = workdir / OUTPUT_FILE
    with (workdir / CONSOLE_FILE).open("wb") as console:
        process = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL,
                                   stdout=console, stderr=subprocess.STDOUT)
        try:
            while True:
                left = deadline - time.monotonic()
                try:
                    status = process.wait(timeout=max(0.0, min(left, _POLL_SECONDS)))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        return None
                if on_output is not None:
                    on_output(_size(output))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if on_output is not None:
        on_output(_size(output))
    return status


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

"""Progress on long runs: `codegen run` draws a bar of samples done, counted as the harness
writes them, and `codegen bench` a bar of what runs, when stderr is a terminal (a
pseudo-terminal here), and prints nothing on stderr when it is a pipe."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import policy

from codegen.execute import build_for_target, pack_samples
from codegen.program import load_program
from codegen.progress import Progress
from codegen.reference import run_reference
from codegen.runner import run_firmware
from codegen.targets import get_target

DEMO = policy.REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite"
SAMPLES = 400


def _samples(count: int) -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.integers(-128, 128, size=(count, 1, 2), dtype=np.int64).astype(np.int8)


def _codegen(args: list[str], *, terminal: bool) -> tuple[int, str, str]:
    """Run the command line with stderr on a pseudo-terminal or a pipe; return the exit
    status, stdout and stderr (as the terminal received it)."""
    command = [sys.executable, "-m", "codegen", *args]
    env = {**os.environ, "COLUMNS": "100"}
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                              check=False, stdin=subprocess.DEVNULL, env=env)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=follower, env=env)
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the last writer has gone
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    process.stdout.close()
    return process.wait(timeout=600), stdout, received.decode(errors="replace")


@pytest.mark.qemu
def test_run_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    policy.require_tool("arm-none-eabi-gcc")
    np.save(tmp_path / "in.npy", _samples(SAMPLES))
    args = ["run", str(DEMO), "--target", "cortex-m4", "--input", str(tmp_path / "in.npy"),
            "--output", str(tmp_path / "out.npy"), "--build-dir", str(tmp_path / "build")]
    status, stdout, stderr = _codegen(args, terminal=True)
    assert status == 0, stderr
    assert "cortex-m4: building [" in stderr and "cortex-m4: running [" in stderr, stderr
    assert f"{SAMPLES}/{SAMPLES}" in stderr and f"ran {SAMPLES} samples" in stdout
    assert stderr.endswith("\r\x1b[K"), repr(stderr[-40:])  # the bar is erased at the end
    expected = run_reference(load_program(DEMO), [_samples(SAMPLES)])[0]
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)

    status, stdout, stderr = _codegen(args, terminal=False)
    assert status == 0 and stderr == "", stderr
    assert f"ran {SAMPLES} samples" in stdout


def test_bench_shows_progress_on_a_terminal_only() -> None:
    policy.require_tool("ninja")
    args = ["bench", str(DEMO), "--target", "host"]
    status, stdout, stderr = _codegen(args, terminal=True)
    assert status == 0, stderr
    assert "bench demo_mlp.tflite on host" in stderr and "instructions" not in stderr
    assert "demo_mlp.tflite on host" in stdout
    status, stdout, stderr = _codegen(args, terminal=False)
    assert status == 0 and stderr == "", stderr


@pytest.mark.qemu
def test_samples_are_counted_as_they_arrive(tmp_path: Path) -> None:
    """Under QEMU the harness writes each sample's output as it is done: a run of many
    samples reports growing counts while it runs, and all of them at the end."""
    policy.require_tool("arm-none-eabi-gcc")
    program = load_program(DEMO)
    executable = build_for_target(program, "cortex-m4", tmp_path / "build")
    count = 60_000  # a second or two under QEMU
    sizes: list[int] = []
    output = run_firmware(executable, get_target("cortex-m4"), pack_samples([_samples(count)]),
                          on_output=sizes.append)
    assert len(output) == count  # one output byte per sample
    assert sizes == sorted(sizes) and sizes[-1] == count
    assert len({s for s in sizes if 0 < s < count}) >= 2, sizes


def test_bar_text_and_notes() -> None:
    """Drawn only when enabled; a note is a line of its own above the bar (and printed
    without a bar too); a label's control characters are not sent to the terminal."""
    shown = io.StringIO()
    with Progress("models \x1b]0;title\x07", 4, stream=shown, enabled=True) as bar:
        bar.advance(2)
        bar.note("  one done")
    text = shown.getvalue()
    assert "\x1b]" not in text and "\x07" not in text and "models ?]0;title? [" in text
    assert "\r\x1b[K  one done\n" in text and "2/4" in text and text.endswith("\r\x1b[K")
    quiet = io.StringIO()
    with Progress("models", 4, stream=quiet, enabled=False) as bar:
        bar.advance(4)
        bar.note("  all done")
    assert quiet.getvalue() == "  all done\n"

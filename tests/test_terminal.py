"""Names from a model never reach the terminal raw.

A tensor name or custom operator code can hold terminal escape sequences (clear the screen,
set the title, OSC 52 clipboard writes), a carriage return that hides what came before, C1
controls and bidi overrides. Every command that prints model text must show them escaped:
the output holds no character but printable ones and newlines.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.builder import ModelBuilder, Q, fc_options

from codegen.terminal import EscapingStream, block, one_line, shown

# ESC sequences (OSC 52 clipboard, clear screen, set title, CSI colour), BEL, CR, NUL, DEL,
# the C1 CSI, a bidi override, a zero-width space, a line separator, a newline; `$^^$` is
# a formula matplotlib cannot parse (plot labels must take it literally).
HOSTILE = ("\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b]0;title\x07\rHIDDEN\x00\x7f\x9b31m"
           "\u202eevil\u200b\u2028$^^$\nline")
ESCAPED = "\\x1b]52;c;ZXZpbA==\\x07"  # how the OSC 52 sequence must appear
FILE_NAME = "m\x1b]0;t\x07\u202e.tflite"


def _fc_model() -> bytes:
    """One FULLY_CONNECTED layer, one input value (so the report plots its response),
    every tensor named with the hostile text."""
    b = ModelBuilder(description=HOSTILE)
    x = b.add_tensor("in" + HOSTILE, (1, 1), "int8", quant=Q(0.05, -3))
    w = b.add_tensor("w" + HOSTILE, (2, 1), "int8", quant=Q(0.01),
                     data=np.array([[100], [-50]]))
    y = b.add_tensor("out" + HOSTILE, (1, 2), "int8", quant=Q(0.1, 0))
    b.add_op("FULLY_CONNECTED", [x, w, -1], [y], fc_options())
    b.set_io([x], [y])
    return b.build()


def _custom_model() -> bytes:
    b = ModelBuilder()
    x = b.add_tensor("x" + HOSTILE, (1, 4), "int8", quant=Q(0.05, -3))
    y = b.add_tensor("y" + HOSTILE, (1, 4), "int8", quant=Q(0.05, -3))
    b.add_op("CUSTOM", [x], [y], custom_code="Op" + HOSTILE)
    b.set_io([x], [y])
    return b.build()


def _codegen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codegen", *args], capture_output=True,
                          text=True, check=False, timeout=600)


def _assert_clean(text: str) -> None:
    bad = sorted({c for c in text if c != "\n" and not c.isprintable()})
    assert not bad, f"raw control characters {bad!r} in {text!r}"


@pytest.fixture()
def models(tmp_path: Path) -> tuple[Path, Path]:
    fc = tmp_path / FILE_NAME
    fc.write_bytes(_fc_model())
    custom = tmp_path / "custom.tflite"
    custom.write_bytes(_custom_model())
    return fc, custom


def test_inspect_escapes_names(models: tuple[Path, Path]) -> None:
    fc, custom = models
    for args in ((str(fc),), (str(fc), "--memory"), (str(custom),)):
        result = _codegen("inspect", *args)
        assert result.returncode == 0, result.stderr
        _assert_clean(result.stdout + result.stderr)
        if args[0] == str(fc):
            assert "\\x1b]0;t\\x07\\u202e.tflite" in result.stdout  # the file name
    result = _codegen("inspect", str(fc))
    assert f"'in{ESCAPED}" in result.stdout and "\\u202eevil\\u200b\\u2028$^^$\\x0aline'" \
        in result.stdout
    assert "\\x0dHIDDEN\\x00\\x7f\\x9b31m" in result.stdout
    result = _codegen("inspect", str(custom))
    assert f"CUSTOM(Op{ESCAPED}" in result.stdout and "UNSUPPORTED" in result.stdout


def test_generate_and_build_escape_names(models: tuple[Path, Path], tmp_path: Path) -> None:
    fc, custom = models
    result = _codegen("generate", str(custom), "-o", str(tmp_path / "c1"))
    assert result.returncode == 1 and result.stdout == ""
    _assert_clean(result.stderr)
    assert len(result.stderr.splitlines()) == 1 and f"CUSTOM(Op{ESCAPED}" in result.stderr
    out = tmp_path / "out\x1b[2J"
    result = _codegen("generate", str(fc), "-o", str(out))
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stdout + result.stderr)
    assert "out\\x1b[2J" in result.stdout
    policy.require_tool("cc")
    result = _codegen("build", str(fc), "--target", "host", "-o", str(tmp_path / "lib\x9b"))
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stdout + result.stderr)
    assert "lib\\x9b" in result.stdout


def test_bench_and_run_escape_names(models: tuple[Path, Path], tmp_path: Path) -> None:
    policy.require_tool("cc")
    fc, _ = models
    result = _codegen("bench", str(fc), "--target", "host")
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stdout + result.stderr)
    assert "\\x1b]0;t\\x07\\u202e.tflite on host" in result.stdout
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((2, 1, 1), np.int8))
    result = _codegen("run", str(fc), "--target", "reference", "--input", str(data),
                      "--output", str(tmp_path / "y\x1b]52;c;QQ==\x07.npy"))
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stdout + result.stderr)


def test_report_escapes_names(models: tuple[Path, Path], tmp_path: Path) -> None:
    policy.require_module("matplotlib")
    fc, _ = models
    html = tmp_path / "report.html"
    result = _codegen("report", str(fc), "-o", str(html))
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stdout + result.stderr)
    text = html.read_text(encoding="utf-8")
    assert f"in{ESCAPED}" in text and "\\u202eevil" in text  # names shown, escaped
    _assert_clean(text.replace("\t", " "))
    assert "<title>codegen report: m\\x1b]0;t\\x07\\u202e.tflite</title>" in text


# -- the helpers -------------------------------------------------------------------------


def test_escapes() -> None:
    assert shown("a\x1bb\x9b\u202e\u200b\n\t\U000e0001 é ü 名") == \
        "a\\x1bb\\x9b\\u202e\\u200b\\x0a\\x09\\U000e0001 é ü 名"
    assert shown(b"bad\xff.tflite".decode("utf-8", "surrogateescape")) == "bad\\xff.tflite"
    assert one_line("one\r\n  two\x1b") == "one two\\x1b"
    assert block("a\n\tb\rc\x1b") == "a\n\tb\\x0dc\\x1b"


def test_escaping_stream_survives_a_narrow_encoding() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    out = EscapingStream(stream)
    assert out.write("名 \x1b\n") == 4
    stream.flush()
    assert raw.getvalue() == b"\\u540d \\x1b\n"

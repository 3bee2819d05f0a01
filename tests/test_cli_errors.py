"""Bad input ends with one line on stderr, a non-zero exit, no traceback, and no output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.builder import ModelBuilder, Q, fc_model, fc_options

from codegen.terminal import shown


def _codegen(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codegen", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, check=False)


def _int8_fc() -> bytes:
    weights = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    return fc_model(weights, input_q=Q(0.05, -3), weight_q=Q(0.01), output_q=Q(0.1, 5),
                    bias=np.array([10, -20, 30]))


def _float_fc(weight_dtype: str) -> bytes:
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "float32")
    wq = Q(0.01) if weight_dtype == "int8" else None
    w = b.add_tensor("w", (2, 4), weight_dtype, quant=wq, data=np.ones((2, 4)))
    y = b.add_tensor("y", (1, 2), "float32")
    b.add_op("FULLY_CONNECTED", [x, w, -1], [y], fc_options())
    b.set_io([x], [y])
    return b.build()


def _with_unsupported_op() -> bytes:
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.05, -3))
    w = b.add_tensor("w", (4, 4), "int8", quant=Q(0.01), data=np.eye(4) * 100)
    h = b.add_tensor("h", (1, 4), "int8", quant=Q(0.1, 0))
    y = b.add_tensor("y", (1, 4), "int8", quant=Q(1 / 128, 0))
    b.add_op("FULLY_CONNECTED", [x, w, -1], [h], fc_options())
    b.add_op("EXP", [h], [y])  # float-only in TFLM: no int8 kernel here either
    b.set_io([x], [y])
    return b.build()


def _custom_op() -> bytes:
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.05, -3))
    y = b.add_tensor("y", (1, 4), "int8", quant=Q(0.05, -3))
    b.add_op("CUSTOM", [x], [y], custom_code="MyFancyOp")
    b.set_io([x], [y])
    return b.build()


def _two_subgraphs() -> bytes:
    b = ModelBuilder()
    for name in ("main", "second"):
        if name == "second":
            b.new_subgraph(name)
        x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.05, -3))
        y = b.add_tensor("y", (1, 4), "int8", quant=Q(0.05, -3))
        b.add_op("RESHAPE", [x], [y])
        b.set_io([x], [y])
    return b.build()


def _dynamic_shape() -> bytes:
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.05, -3), shape_signature=(1, -1))
    y = b.add_tensor("y", (1, 4), "int8", quant=Q(0.05, -3), shape_signature=(1, -1))
    b.add_op("RESHAPE", [x], [y])
    b.set_io([x], [y])
    return b.build()


CASES: dict[str, tuple[object, tuple[str, ...]]] = {
    "not_a_flatbuffer": (lambda: b"this is plainly not a model\n" * 4,
                         ("not a TensorFlow Lite flatbuffer",)),
    "empty_file": (lambda: b"", ("not a TensorFlow Lite flatbuffer",)),
    "truncated": (lambda: _int8_fc()[: len(_int8_fc()) // 2], ("truncated",)),
    "unsupported_op": (_with_unsupported_op, ("operator 1 (EXP)", "not supported",
                                              "FULLY_CONNECTED")),
    "custom_op": (_custom_op, ("operator 0", "MyFancyOp", "not supported")),
    "float_model": (lambda: _float_fc("float32"), ("not quantized", "int8",
                                                   "representative dataset")),
    "hybrid_model": (lambda: _float_fc("int8"), ("hybrid", "int8")),
    "two_subgraphs": (_two_subgraphs, ("2 subgraphs",)),
    "dynamic_shape": (_dynamic_shape, ("dynamic",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generate_rejects_bad_model(case: str, tmp_path: Path) -> None:
    make, fragments = CASES[case]
    model = tmp_path / f"{case}.tflite"
    model.write_bytes(make())  # type: ignore[operator]
    out = tmp_path / "out"
    result = _codegen("generate", str(model), "-o", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("codegen: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [model.name]  # no staging left behind


def test_failed_generate_keeps_existing_output(tmp_path: Path) -> None:
    good = tmp_path / "good.tflite"
    good.write_bytes(_int8_fc())
    out = tmp_path / "out"
    assert _codegen("generate", str(good), "-o", str(out), "--name", "m").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(_with_unsupported_op())
    assert _codegen("generate", str(bad), "-o", str(out), "--name", "m").returncode == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_missing_file_and_bad_name(tmp_path: Path) -> None:
    result = _codegen("generate", str(tmp_path / "nope.tflite"), "-o", str(tmp_path / "o"))
    assert result.returncode == 1 and "no such file" in result.stderr
    good = tmp_path / "good.tflite"
    good.write_bytes(_int8_fc())
    result = _codegen("generate", str(good), "-o", str(tmp_path / "o"), "--name", "9lives")
    assert result.returncode == 1 and "C identifier" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("stem, name", [
    ("int", "int_model"), ("static", "static_model"), ("string", "string_model"),
    ("STDINT", "STDINT_model"), ("1", "m_1"), ("_x", "m_x"), ("kws-v2", "kws_v2"),
    ("é", "model"), ("a" * 200, "a" * 56),
])
def test_name_derived_from_the_file_name(tmp_path: Path, stem: str, name: str) -> None:
    model = tmp_path / f"{stem}.tflite"
    model.write_bytes(_int8_fc())
    result = _codegen("generate", str(model), "-o", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"{name}.c", f"{name}.h"]
    assert f"{name}_invoke(" in (tmp_path / "o" / f"{name}.h").read_text()


def test_derived_header_name_builds(tmp_path: Path) -> None:
    """A model called stdint.tflite once gave stdint.h, which hid <stdint.h> from its own
    C file: the build failed."""
    policy.require_tool("cc")
    model = tmp_path / "stdint.tflite"
    model.write_bytes(_int8_fc())
    result = _codegen("build", str(model), "--target", "host", "-o", str(tmp_path / "lib"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lib" / "libstdint_model.a").is_file()


@pytest.mark.parametrize("name, message", [
    ("int", "'int' is a C keyword; give another name, e.g. int_model"),
    ("stdint", "stdint.h would hide the C library's <stdint.h>"),
    ("String", "String.h would hide the C library's <string.h>"),
    ("", "it must be a C identifier"),
    ("a-b", "it must be a C identifier"),
    ("_private", "start with an underscore"),
    ("\udcff", "it must be a C identifier"),  # a byte that is not UTF-8
    ("a" * 65, "it has 65 characters; give at most 64"),
])
@pytest.mark.parametrize("command", ["generate", "build"])
def test_bad_explicit_name(tmp_path: Path, command: str, name: str, message: str) -> None:
    model = tmp_path / "good.tflite"
    model.write_bytes(_int8_fc())
    target = ("--target", "host") if command == "build" else ()
    result = _codegen(command, str(model), *target, "-o", str(tmp_path / "o"), "--name", name)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"codegen: error: --name '{shown(name)}' is "
                                                   "not usable: ")
    assert message in lines[0]
    assert not (tmp_path / "o").exists()


def test_run_rejects_wrong_input(tmp_path: Path) -> None:
    good = tmp_path / "good.tflite"
    good.write_bytes(_int8_fc())
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((5, 1, 3), dtype=np.int8))
    result = _codegen("run", str(good), "--target", "reference", "--input", str(wrong),
                      "--output", str(tmp_path / "out.npy"))
    assert result.returncode == 1
    assert "shaped (N, 1, 4)" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.npy").exists()


def test_activation_bound_beyond_int32_is_refused(tmp_path: Path) -> None:
    # TFLM refuses this model in Prepare: RELU6's bound is 6e12 output steps.
    weights = np.ones((2, 4), dtype=np.int8)
    model = tmp_path / "tiny_scale.tflite"
    model.write_bytes(fc_model(weights, input_q=Q(0.05), weight_q=Q(0.01),
                               output_q=Q(1e-12), activation="RELU6"))
    result = _codegen("generate", str(model), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "operator 0 (FULLY_CONNECTED)" in result.stderr and "int32" in result.stderr
    assert not (tmp_path / "out").exists()


# -- odd option values: one line, exit 1, nothing written ---------------------------------


ODD_OPTIONS: list[tuple[tuple[str, ...], str]] = [
    (("generate", "{model}", "-o", ""), "argument -o/--output: an empty path"),
    (("generate", "", "-o", "{tmp}/o"), "argument model: an empty path"),
    (("generate", "{tmp}", "-o", "{tmp}/o"), "is a directory"),
    (("inspect", ""), "argument model: an empty path"),
    (("build", "{model}", "--target", "host", "-o", "{tmp}/o", "--build-dir", ""),
     "argument --build-dir: an empty path"),
    (("build", "{model}", "--target", "nowhere", "-o", "{tmp}/o"),
     "argument --target: invalid choice: 'nowhere'"),
    (("bench", "{model}", "--target", "host", "--timeout", "nan"), "'nan': give a number"),
    (("bench", "{model}", "--target", "host", "--timeout", "inf"), "'inf': give a number"),
    (("bench", "{model}", "--target", "host", "--timeout", "-1"), "'-1': give a number"),
    (("bench", "{model}", "--target", "host", "--timeout", "1e308"), "'1e308': give a number"),
    (("bench", "{model}", "--target", "host", "--timeout", "soon"), "'soon' is not a number"),
    (("demo", "-o", "{tmp}/o", "--samples", "100000000000"), "give 1 to 1000000"),
    (("demo", "-o", "{tmp}/o", "--samples", "0"), "give 1 to 1000000"),
    (("demo", "-o", "{tmp}/o", "--samples", "1e3"), "invalid int value: '1e3'"),
    (("demo", "-o", ""), "argument -o/--output: an empty path"),
    (("report", "{model}", "-o", "{model}/r.html"), "is not a directory"),
    (("report", "{model}", "-o", "/dev/null"), "-o /dev/null is not a regular file"),
    (("report", "{model}", "-o", "{tmp}"), "is a directory"),
    (("report", "{model}", "-o", "{tmp}/r.html", "--bench", ""), "argument --bench: an empty"),
    (("report", "{model}", "-o", "{tmp}/r.html", "--float-model", ""),
     "argument --float-model: an empty path"),
    (("report", "{model}", "-o", "{tmp}/r.html", "--bench", "{tmp}"), "not a regular file"),
    (("quantize", "{tmp}/m.keras", "-o", "/dev/null", "--calibration", "{tmp}/c.npy"),
     "-o /dev/null is not a regular file"),
    (("quantize", "{tmp}/m.keras", "-o", "{model}/q.tflite", "--calibration", "{tmp}/c.npy"),
     "is not a directory"),
    (("quantize", "{tmp}/fifo.keras", "-o", "{tmp}/q.tflite", "--calibration", "{tmp}/c.npy"),
     "not a regular file or a directory"),
    (("generate", "{model}", "-o", "{tmp}/" + "a" * 300), "File name too long"),
    (("report", "{model}", "-o", "{tmp}/" + "a" * 300 + ".html"), "File name too long"),
    (("generate",), "the following arguments are required: model, -o/--output"),
    # a stateless model has nothing to reset: --reset-each said nothing and did nothing
    (("run", "{model}", "--target", "reference", "--input", "{tmp}/c.npy", "--output",
      "{tmp}/o.npy", "--reset-each"), "this model keeps no state"),
    (("generate", "{model}", "-o", "{tmp}/o", "--ram-budget", "-1"),
     "'-1' is not a number of bytes"),
    (("generate", "{model}", "-o", "{tmp}/o", "--ram-budget", "\uff11\uff12"),
     "'\uff11\uff12' is not a number of bytes"),
    (("generate", "{model}", "-o", "{tmp}/o", "--ram-budget", "24k"),
     "'24k' is not a number of bytes"),
    (("generate", "{model}", "-o", "{tmp}/o", "--ram-budget", ""), "'' is not a number"),
    # a number, too large: said so (it was "not a number of bytes")
    (("generate", "{model}", "-o", "{tmp}/o", "--ram-budget", "99999999999999"),
     "'99999999999999': give at most 2147483648 bytes"),
    (("generate", "{model}", "-o", "{tmp}/o", "--ram-budget", "9" * 5000),
     "(5000 characters): give at most 2147483648 bytes"),
    (("compare", "{model}", "--samples", "0"), "at least 1 sample, not 0"),
    (("compare", "{model}", "--samples", "9" * 5000), "not a whole number"),
    (("compare", "{model}", "--samples", "1000001"), "codegen compare runs at most"),
    (("generate", "{model}", "-o", "{tmp}/o", "--numerics", "fast"),
     "argument --numerics: invalid choice: 'fast'"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("args, message", ODD_OPTIONS,
                         ids=[" ".join(args)[:80] for args, _ in ODD_OPTIONS])
def test_odd_option_values(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    model = tmp_path / "good.tflite"
    model.write_bytes(_int8_fc())
    (tmp_path / "m.keras").write_bytes(b"not read: the output is refused first")
    os.mkfifo(tmp_path / "fifo.keras")  # opening it would block
    np.save(tmp_path / "c.npy", np.zeros((4, 4), np.float32))
    before = sorted(p.name for p in tmp_path.iterdir())
    filled = [a.format(model=model, tmp=tmp_path) for a in args]
    result = _codegen(*filled, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("codegen: error: "), result.stderr
    assert message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


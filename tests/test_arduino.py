"""`codegen generate --arduino`: an Arduino library whose example sketch compiles as C++.

The sketch is compiled as the Arduino IDE compiles it (C++, the core's Arduino.h included
first) with `arm-none-eabi-g++ -x c++ -Wall -Wextra -Werror` for cortex-m4 and cortex-m0,
against the library's src/NAME.c. The core is a minimal stand-in written here: `Serial`
prints on the semihosting console and main() calls setup() and then loop() SAMPLES times.
Linked with the repository's startup code, the sketch then runs under QEMU, and every
int8 output it prints must equal TFLM's on the int8 inputs it printed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.builder import Q
from support.elementwise_models import Net
from support.firmware_build import compile_object, link, run_under_qemu
from support.models import float_io_model
from support.tflm import run_tflm
from support.verify import assert_same

from codegen import api
from codegen.errors import CodegenError
from codegen.program import load_program

DEMO = policy.REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite"
SAMPLES = 17  # the sketch's input sweep repeats every 17 samples
TARGETS = ("cortex-m4", "cortex-m0")

ARDUINO_H = """\
/* A minimal stand-in for the Arduino core (tests/test_arduino.py): what the generated
 * sketch uses, with the signatures the core's Print class has. */
#ifndef ARDUINO_H
#define ARDUINO_H

#include <stdint.h>

class HardwareSerial {
public:
    void begin(unsigned long baud);
    void print(const char *text);
    void print(int value, int base = 10);
    void print(unsigned int value, int base = 10);
    void print(double value, int digits = 2);
    void println();
    void println(int value, int base = 10);
};

extern HardwareSerial Serial;
void delay(unsigned long milliseconds);

#endif
"""

CORE_CPP = """\
/* The stand-in core: Serial collects a line and prints it over semihosting; main() runs
 * the sketch's setup() once and loop() SAMPLES times. */
#include "Arduino.h"

extern "C" {
#include "semihost.h"
}

HardwareSerial Serial;

static char line[2048];
static unsigned length;

static void put(const char *text)
{
    while (*text != '\\0' && length + 2 < sizeof line) {
        line[length++] = *text++;
    }
    line[length] = '\\0';
}

static void put_unsigned(unsigned long long value, int digits)
{
    char reversed[24];
    int count = 0;
    do {
        reversed[count++] = static_cast<char>('0' + value % 10u);
        value /= 10u;
    } while (value != 0u || count < digits);
    char text[24];
    for (int i = 0; i < count; ++i) {
        text[i] = reversed[count - 1 - i];
    }
    text[count] = '\\0';
    put(text);
}

void HardwareSerial::begin(unsigned long) {}
void HardwareSerial::print(const char *text) { put(text); }
void HardwareSerial::print(unsigned int value, int) { put_unsigned(value, 1); }

void HardwareSerial::print(int value, int)
{
    if (value < 0) {
        put("-");
        put_unsigned(0u - static_cast<unsigned long long>(static_cast<long long>(value)), 1);
    } else {
        put_unsigned(static_cast<unsigned long long>(value), 1);
    }
}

void HardwareSerial::print(double value, int digits)
{
    double magnitude = value < 0.0 ? -value : value;
    unsigned long long scale = 1;
    for (int i = 0; i < digits; ++i) {
        scale *= 10u;
    }
    if (magnitude >= 1e9) {
        put(value < 0.0 ? "-big" : "big");
        return;
    }
    unsigned long long fixed =
        static_cast<unsigned long long>(magnitude * static_cast<double>(scale) + 0.5);
    if (value < 0.0 && fixed > 0u) {
        put("-");
    }
    put_unsigned(fixed / scale, 1);
    put(".");
    put_unsigned(fixed % scale, digits);
}

void HardwareSerial::println()
{
    put("\\n");
    semihost_write0(line);
    length = 0;
    line[0] = '\\0';
}

void HardwareSerial::println(int value, int base)
{
    print(value, base);
    println();
}

void delay(unsigned long) {}

void setup();
void loop();

int main(int, char **)
{
    setup();
    for (unsigned i = 0; i < SAMPLES; ++i) {
        loop();
    }
    semihost_write0("done\\n");
    return 0;
}
"""


def _two_io_model() -> bytes:
    """Two int8 inputs, two int8 outputs (one of 12 values, more than the sketch prints)."""
    n = Net("two inputs, two outputs")
    a = n.input((1, 3), Q(0.05, -3))
    b = n.input((1, 3), Q(0.02, 10))
    total = n.binary("ADD", a, b, Q(0.07, 2))
    n.output(total, n.fully_connected(total, 12, Q(0.2, -5), "RELU"))
    return n.build()


def _generate(tmp_path: Path, model: bytes, name: str, **options: bool) -> Path:
    source = tmp_path / f"{name}.tflite"
    source.write_bytes(model)
    library = tmp_path / name
    api.generate(source, library, name=name, arduino=True, **options)
    return library


def _build_sketch(library: Path, name: str, target: str, work: Path) -> Path:
    """The sketch (C++) and the library (C), warnings as errors, linked with the core."""
    work.mkdir()
    (work / "Arduino.h").write_text(ARDUINO_H)
    (work / "core.cpp").write_text(CORE_CPP)
    sketch = library / "examples" / name / f"{name}.ino"
    objects = [
        compile_object(sketch, target, work / "sketch.o", cxx=True,
                       flags=["-include", "Arduino.h", f"-I{work}", f"-I{library / 'src'}"]),
        compile_object(library / "src" / f"{name}.c", target, work / "model.o"),
        compile_object(work / "core.cpp", target, work / "core.o", cxx=True,
                       flags=[f"-I{work}", f"-DSAMPLES={SAMPLES}u"]),
    ]
    return link(objects, target, work / "sketch.elf")  # gcc: no C++ library needed


def _printed(console: str) -> dict[str, np.ndarray]:
    """`sample k: x0 = ... | q_in0 = ... | y0 = ...` lines -> label -> (samples, values)."""
    rows: dict[str, list[list[float]]] = {}
    lines = [line for line in console.splitlines() if line.startswith("sample ")]
    assert len(lines) == SAMPLES and console.strip().endswith("done"), console
    for k, line in enumerate(lines):
        head, _, rest = line.partition(": ")
        assert head == f"sample {k}", line
        for segment in rest.split(" | "):
            label, _, values = segment.partition(" = ")
            assert re.fullmatch(r"(x|q_in|q_out|y)\d+", label), line
            rows.setdefault(label, []).append([float(v) for v in values.split()
                                               if v != "..."])
    return {label: np.array(values) for label, values in rows.items()}


def _check_against_tflm(model: bytes, printed: dict[str, np.ndarray]) -> None:
    graph = load_program(model).graph
    inputs = [printed[f"q_in{i}"].astype(np.int8).reshape(SAMPLES, *graph.tensors[t].shape)
              for i, t in enumerate(graph.inputs)]
    expected = run_tflm(model, inputs)
    for i, (index, e) in enumerate(zip(graph.outputs, expected, strict=True)):
        shown = printed[f"q_out{i}"].astype(np.int8)
        assert_same([shown], [e.reshape(SAMPLES, -1)[:, :shown.shape[1]]],
                    f"sketch output {i} vs TFLM")
        q = graph.tensors[index].quant
        np.testing.assert_allclose(printed[f"y{i}"],
                                   q.scale * (shown.astype(np.float64) - q.zero_point),
                                   atol=1.5e-6)
    x = printed["x0"]
    q = graph.tensors[graph.inputs[0]].quant
    assert np.abs(np.clip(np.round(x / q.scale) + q.zero_point, -128, 127)
                  - printed["q_in0"]).max() <= 1  # x printed to 6 decimals
    assert (printed["q_in0"] == -128).any() and (printed["q_in0"] == 127).any()


def test_library_layout(tmp_path: Path) -> None:
    library = _generate(tmp_path, DEMO.read_bytes(), "mlp")
    files = sorted(str(p.relative_to(library)) for p in library.rglob("*") if p.is_file())
    assert files == ["examples/mlp/mlp.ino", "library.properties", "src/mlp.c", "src/mlp.h"]
    properties = dict(line.split("=", 1) for line in
                      (library / "library.properties").read_text().splitlines()
                      if not line.startswith("#"))
    assert properties["name"] == "mlp" and properties["includes"] == "mlp.h"
    for key in ("version", "author", "maintainer", "sentence", "paragraph", "category",
                "url", "architectures"):
        assert key in properties
    # The same C as `codegen generate` writes.
    api.generate(tmp_path / "mlp.tflite", tmp_path / "plain", name="mlp")
    for name in ("mlp.c", "mlp.h"):
        assert (library / "src" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()


@pytest.mark.tflm
@pytest.mark.qemu
@pytest.mark.parametrize("target", TARGETS)
def test_sketch_compiles_and_runs(tmp_path: Path, target: str) -> None:
    model = DEMO.read_bytes()
    library = _generate(tmp_path, model, "mlp")
    elf = _build_sketch(library, "mlp", target, tmp_path / "build")
    _check_against_tflm(model, _printed(run_under_qemu(elf, target)))


@pytest.mark.tflm
@pytest.mark.qemu
@pytest.mark.parametrize("target", TARGETS)
def test_sketch_with_two_inputs_and_outputs_and_its_own_arena(tmp_path: Path,
                                                              target: str) -> None:
    """Several inputs and outputs, an output longer than the sketch prints, and the arena
    owned by the sketch (--no-static-arena: NAME_invoke_with_arena)."""
    model = _two_io_model()
    library = _generate(tmp_path, model, "pair", static_arena=False)
    sketch = (library / "examples" / "pair" / "pair.ino").read_text()
    assert "pair_invoke_with_arena(arena, " in sketch
    elf = _build_sketch(library, "pair", target, tmp_path / "build")
    printed = _printed(run_under_qemu(elf, target))
    assert printed["q_out1"].shape == (SAMPLES, 8)  # 12 values, the first 8 printed
    _check_against_tflm(model, printed)


@pytest.mark.tf
@pytest.mark.qemu
def test_sketch_of_a_float_io_model(tmp_path: Path, model_cache: Path) -> None:
    """float32 input and output: passed and printed as they are."""
    library = _generate(tmp_path, float_io_model(cache=model_cache), "floats")
    sketch = (library / "examples" / "floats" / "floats.ino").read_text()
    assert "int32_t quantize(" not in sketch and "dequantize(" not in sketch
    assert "q_in0 =" not in sketch.split("#include")[1]  # only in the opening comment
    elf = _build_sketch(library, "floats", "cortex-m4", tmp_path / "build")
    printed = _printed(run_under_qemu(elf, "cortex-m4"))
    assert set(printed) == {"x0", "y0"}
    assert printed["x0"].min() < -1 and printed["x0"].max() > 1


def test_hostile_file_name_and_options(tmp_path: Path) -> None:
    """The model's file name reaches library.properties and the sketch only as safe text
    inside one comment line and one property value; names Arduino cannot take, and
    --io-in-arena, are refused."""
    hostile = tmp_path / "a\nname=evil\r\\u{x}*) #include <x>.tflite"
    benign = tmp_path / "model.tflite"
    for path in (hostile, benign):
        path.write_bytes(DEMO.read_bytes())
        api.generate(path, tmp_path / path.stem, name="mlp", arduino=True)
    for name, mentions in (("library.properties", [0, 5]), ("examples/mlp/mlp.ino", [0])):
        bad = (tmp_path / hostile.stem / name).read_text().split("\n")
        good = (tmp_path / benign.stem / name).read_text().split("\n")
        assert len(bad) == len(good)
        differ = [i for i, (b, g) in enumerate(zip(bad, good, strict=True)) if b != g]
        assert differ == mentions, name
        for i in differ:
            assert re.fullmatch(r"[ -~]*", bad[i]) and "\\" not in bad[i], bad[i]
            assert bad[i].startswith(good[i][:good[i].index("model.tflite")])
    # Arduino library names start with a letter or digit: check_name already refuses the
    # leading underscore, the only C identifier Arduino would not take.
    with pytest.raises(CodegenError, match="start with an underscore"):
        api.generate(DEMO, tmp_path / "x", name="_mlp", arduino=True)
    with pytest.raises(CodegenError, match="--io-in-arena"):
        api.generate(DEMO, tmp_path / "y", name="mlp", arduino=True, io_in_arena=True)
    with pytest.raises(CodegenError, match="--arduino alone"):
        api.generate(DEMO, tmp_path / "z", name="mlp", arduino=True, cmake=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()

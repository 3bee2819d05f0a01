"""No text from the command line or the model file reaches the generated files unescaped.

Options that end up in the C (`--arena-section`, `--name`) are refused in one line, exit
status 1, before anything is written, on the command line and through the Python API
(EmitOptions, emit_model). Text from the model (tensor names of inputs, outputs and inner
tensors, the description, the file name) only appears inside comments, made safe there: the
generated C, header and meson.build compile (C under gcc and clang with -Werror) and hold
none of the hostile text verbatim, no end of comment, trigraph, line splice or quote.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import state_hostile, svdf_models
from support.builder import ModelBuilder, Q, fc_options, pack, read_model
from support.policy import require_tool

from codegen.emit import EmitOptions, emit_model
from codegen.errors import CodegenError
from codegen.program import load_program

WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Werror"]
MODEL = Path(__file__).resolve().parents[1] / "codegen" / "demo" / "demo_mlp.tflite"

HOSTILE_SECTIONS = [
    '.data"))); int evil; static int x __attribute__((section(".x',
    ".x */\n#define evil 1\n/*",
    "",
    ".sram2 ",
    "a" * 65,
    ".s\\",
    ".s??/",
    "sect\x1b]0;title\x07",
    "s\u00e9ction",
]


def _codegen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codegen", *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("section", HOSTILE_SECTIONS)
@pytest.mark.parametrize("command", ["generate", "build"])
def test_hostile_arena_section_is_refused(command: str, section: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    extra = ["--target", "host"] if command == "build" else []
    result = _codegen(command, str(MODEL), "-o", str(out), *extra, "--arena-section", section)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("codegen: error: argument --arena-section")
    assert "linker section name" in lines[0] and "\x1b" not in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("section", HOSTILE_SECTIONS)
def test_hostile_arena_section_is_refused_by_the_api(section: str) -> None:
    with pytest.raises(CodegenError, match="linker section name"):
        EmitOptions(arena_section=section)


def test_arena_section_without_a_static_arena_is_refused(tmp_path: Path) -> None:
    result = _codegen("generate", str(MODEL), "-o", str(tmp_path / "out"), "--arena-section",
                      ".sram2", "--no-static-arena")
    assert result.returncode == 1 and "--no-static-arena" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("section", [".sram2", ".bss.$RAM2", "_" * 64, "ram"])
def test_valid_arena_sections_compile(section: str, compiler: str, tmp_path: Path) -> None:
    cc = require_tool(compiler)
    files = emit_model(load_program(MODEL.read_bytes()), "m", EmitOptions(arena_section=section))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert f'__attribute__((section("{section}")))' in files["m.c"]
    subprocess.run([cc, *WARNINGS, "-c", str(tmp_path / "m.c"), "-o", str(tmp_path / "m.o")],
                   check=True, timeout=120)


@pytest.mark.parametrize("name", ["x); int evil(void", "m\n#define", "a b", "int", "9lives"])
def test_hostile_names_are_refused(name: str, tmp_path: Path) -> None:
    result = _codegen("generate", str(MODEL), "-o", str(tmp_path / "out"), "--name", name)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    if name != "int":  # a keyword is an identifier to the regular expression
        with pytest.raises(CodegenError, match="not a C identifier"):
            emit_model(load_program(MODEL.read_bytes()), name)


# -- text from the model ---------------------------------------------------------------------

HOSTILE = {
    "input": 'in */ int evil_in; /* ??/ "\\',
    "hidden": "h */\n#include </etc/passwd>\n/*",
    "output": "out \\\n#define evil_out 1 ??= ??' \"*/",
    "description": "desc */ int evil_desc; /*\n??/",
}


def _hostile_model() -> bytes:
    b = ModelBuilder(HOSTILE["description"])
    x = b.add_tensor(HOSTILE["input"], (1, 8), "int8", quant=Q(0.05, -3))
    w = b.add_tensor("w */ evil_w", (4, 8), "int8", quant=Q(0.01),
                     data=np.arange(32).reshape(4, 8) - 16)
    h = b.add_tensor(HOSTILE["hidden"], (1, 4), "int8", quant=Q(0.1, 2))
    y = b.add_tensor(HOSTILE["output"], (1, 4), "int8", quant=Q(0.1, 2))
    b.add_op("FULLY_CONNECTED", [x, w, -1], [h], fc_options("RELU"))
    b.add_op("RESHAPE", [h], [y])
    b.set_io([x], [y])
    return b.build()


def _code(text: str) -> str:
    """C without its comments."""
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_hostile_model_text_stays_in_comments(compiler: str, tmp_path: Path) -> None:
    cc = require_tool(compiler)
    model = tmp_path / 'evil ** x "\n??= \\.tflite'
    model.write_bytes(_hostile_model())
    out = tmp_path / "out"
    result = _codegen("generate", str(model), "-o", str(out), "--name", "m", "--meson")
    assert result.returncode == 0, result.stderr
    texts = {p.name: p.read_text() for p in out.iterdir()}
    assert sorted(texts) == ["m.c", "m.h", "meson.build"]
    for name, text in texts.items():
        if name == "meson.build":
            body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
        else:
            body = _code(text)
        assert "evil" not in body and "passwd" not in body, name
        comments = re.findall(r"/\*(.*?)\*/", text, flags=re.S)
        for comment in comments:
            for bad in ("??", "\\\n", "/*"):
                assert bad not in comment, (name, bad, comment)
    for hostile in HOSTILE.values():
        assert all(hostile not in text for text in texts.values())
    assert "'in _/ int evil_in; /_ __/ __'" in texts["m.h"]  # still there, made safe
    subprocess.run([cc, *WARNINGS, "-c", str(out / "m.c"), "-o", str(tmp_path / "m.o")],
                   check=True, timeout=120)


# -- names of the state: resource variables and variable tensors ----------------------------

STATE_NAMES = {
    "resource": 'v */ int evil_resource; /* ??/ "\\',
    "variable": "s */\n#include </etc/passwd>\n/* ??= \\",
}


def _svdf_named(state_name: str) -> bytes:
    parsed = read_model(svdf_models.single(svdf_models.CASES["rank1_memory1"]))
    (state,) = [t for t in parsed.subgraphs[0].tensors if t.isVariable]
    state.name = state_name
    return pack(parsed)


@pytest.mark.parametrize("kind", sorted(STATE_NAMES))
def test_hostile_state_names_stay_in_comments(kind: str, tmp_path: Path) -> None:
    """The state block's regions are named in the C (its layout comment, the CALL_ONCE
    value's comment) by the resource variable's shared_name or the variable tensor's name:
    made safe there like every model text."""
    hostile = STATE_NAMES[kind]
    model = (state_hostile.counter(shared_name=hostile) if kind == "resource"
             else _svdf_named(hostile))
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    out = tmp_path / "out"
    result = _codegen("generate", str(path), "-o", str(out), "--name", "m", "--meson")
    assert result.returncode == 0, result.stderr
    texts = {p.name: p.read_text() for p in out.iterdir()}
    for name, text in texts.items():
        body = _code(text) if name != "meson.build" else text
        assert "evil" not in body and "passwd" not in body, name
        assert hostile not in text, name
        for comment in re.findall(r"/\*(.*?)\*/", text, flags=re.S):
            for bad in ("??", "\\\n", "/*"):
                assert bad not in comment, (name, bad, comment)
    assert "state" in texts["m.c"] and ("evil_resource" in texts["m.c"]
                                        or "passwd" in texts["m.c"])  # there, made safe
    for cc in ("gcc", "clang"):
        subprocess.run([require_tool(cc), *WARNINGS, "-c", str(out / "m.c"), "-o",
                        str(tmp_path / f"m.{cc}.o")], check=True, timeout=120)


def test_compare_notes_show_model_text_escaped() -> None:
    """codegen compare's notes quote refusals that name the model's tensors; the table also
    goes into the HTML report, which only HTML-escapes it: a bidi override or an escape
    sequence in a name is shown as an escape there too."""
    from support.builder import fc_model

    from codegen.compare import _ours, compare_inputs

    parsed = read_model(fc_model(np.arange(-6, 6, dtype=np.int8).reshape(3, 4),
                                 input_q=Q(1e-30), weight_q=Q(1e-30), output_q=Q(1e-45)))
    name = "out\u202e\x1b]0;evil\x07"
    parsed.subgraphs[0].tensors[parsed.subgraphs[0].outputs[0]].name = name
    model = pack(parsed)
    notes: list[str] = []
    _ours(model, compare_inputs(load_program(model), 2), notes)
    (note,) = notes  # --numerics litert refuses the denormal output scale
    assert "out\\u202e\\x1b]0;evil\\x07" in note, note
    assert all(c.isprintable() for c in note), note

"""`codegen generate`: model file -> NAME.c + NAME.h in an output directory, atomically."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codegen.emit import EmitOptions, emit_files
from codegen.errors import CodegenError
from codegen.files import Content, write_files_atomically, written_by_codegen
from codegen.program import Program, load_program
from codegen.terminal import shown

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_C_KEYWORDS = frozenset(
    [
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
    ]
)


# The C library's headers (C99 to C23): NAME.h must not take one's place.
_STANDARD_HEADERS = frozenset([
    "assert", "complex", "ctype", "errno", "fenv", "float", "inttypes", "iso646", "limits",
    "locale", "math", "setjmp", "signal", "stdalign", "stdarg", "stdatomic", "stdbit",
    "stdbool", "stdckdint", "stddef", "stdint", "stdio", "stdlib", "stdnoreturn", "string",
    "tgmath", "threads", "time", "uchar", "wchar", "wctype",
])
MAX_NAME = 64  # characters of NAME; symbols and file names grow from it


# The files to write in place of NAME.c, NAME.h and extra_files (the Arduino library's).
Layout = Callable[[Program, str, dict[str, Content]], dict[str, Content]]


@dataclass(frozen=True)
class Generated:
    program: Program
    name: str
    files: tuple[Path, ...]


def default_name(model_path: Path) -> str:
    """A usable C prefix derived from the model file name: `ad01_int8.tflite` ->
    `ad01_int8`, `1.tflite` -> `m_1`, `int.tflite` -> `int_model`, `string.tflite` ->
    `string_model` (a `string.h` would hide the C library's)."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", model_path.stem)[:MAX_NAME - 8]
    if not stem.strip("_"):
        stem = "model"
    elif stem[0].isdigit() or stem[0] == "_":
        stem = f"m_{stem}" if stem[0].isdigit() else f"m{stem}"
    return stem if _name_problem(stem) is None else f"{stem}_model"


def check_name(name: str) -> str:
    """`name` (given with --name) if it is usable as the C prefix and file name."""
    problem = _name_problem(name)
    if problem is not None:
        raise CodegenError(f"--name '{shown(name)}' is not usable: {problem}")
    return name


def _name_problem(name: str) -> str | None:
    if not _IDENTIFIER.match(name):
        return ("it must be a C identifier: letters, digits and underscores, not starting "
                "with a digit")
    if name.startswith("_"):
        return "C reserves identifiers that start with an underscore for the C library"
    if len(name) > MAX_NAME:
        return f"it has {len(name)} characters; give at most {MAX_NAME}"
    if name in _C_KEYWORDS:
        return f"'{name}' is a C keyword; give another name, e.g. {name}_model"
    if name.lower() in _STANDARD_HEADERS:
        return (f"{name}.h would hide the C library's <{name.lower()}.h> wherever the "
                f"directory is on the include path; give another name, e.g. {name}_model")
    return None


def generate(model: Path, out_dir: Path, name: str | None = None,
             options: EmitOptions | None = None, *, io_in_arena: bool = False,
             ram_budget: int | None = None,
             numerics: str = "tflm",
             extra_files: Callable[[Program, str], dict[str, str]] | None = None,
             layout: Layout | None = None) -> Generated:
    """NAME.c and NAME.h (plus `extra_files(program, name)`, e.g. a meson.build) written
    to out_dir together, all or none; `layout(program, name, files)`, when given, returns
    the files to write in place of these (the Arduino library's layout)."""
    name = check_name(name or default_name(model))
    program = load_program(model, io_in_arena=io_in_arena, ram_budget=ram_budget,
                           numerics=numerics)
    files: dict[str, Content] = dict(emit_files(program, name, options))  # rendered as written
    if extra_files is not None:
        files.update(extra_files(program, name))
    if layout is not None:
        files = layout(program, name, files)
    return Generated(program, name,
                     write_files_atomically(files, out_dir, ours=written_by_codegen))

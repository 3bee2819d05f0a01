"""`codegen generate`: model file -> NAME.c + NAME.h in an output directory, atomically."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codegen.emit import EmitOptions, emit_model
from codegen.errors import CodegenError
from codegen.files import write_files_atomically, written_by_codegen
from codegen.program import Program, load_program

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


@dataclass(frozen=True)
class Generated:
    program: Program
    name: str
    files: tuple[Path, ...]


def default_name(model_path: Path) -> str:
    """A C identifier derived from the model file name (`ad01_int8.tflite` -> `ad01_int8`)."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", model_path.stem) or "model"
    return f"m_{stem}" if stem[0].isdigit() else stem


def check_name(name: str) -> str:
    if not _IDENTIFIER.match(name) or name in _C_KEYWORDS:
        raise CodegenError(
            f"--name {name!r} is not usable as a C identifier prefix; "
            "use letters, digits and underscores, not starting with a digit"
        )
    return name


def generate(model: Path, out_dir: Path, name: str | None = None,
             options: EmitOptions | None = None, *, io_in_arena: bool = False,
             extra_files: Callable[[Program, str], dict[str, str]] | None = None,
             layout: Callable[[Program, str, dict[str, str]], dict[str, str]] | None = None,
             ) -> Generated:
    """NAME.c and NAME.h (plus `extra_files(program, name)`, e.g. a meson.build) written
    to out_dir together, all or none; `layout(program, name, files)`, when given, returns
    the files to write in place of these (the Arduino library's layout)."""
    name = check_name(name or default_name(model))
    program = load_program(model, io_in_arena=io_in_arena)
    files = emit_model(program, name, options)
    if extra_files is not None:
        files.update(extra_files(program, name))
    if layout is not None:
        files = layout(program, name, files)
    return Generated(program, name,
                     write_files_atomically(files, out_dir, ours=written_by_codegen))

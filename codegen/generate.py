"""`codegen generate`: model file -> NAME.c + NAME.h in an output directory, atomically."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from codegen.emit import EmitOptions, emit_model
from codegen.errors import CodegenError
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


def write_files_atomically(files: dict[str, str], out_dir: Path) -> tuple[Path, ...]:
    """Write all files or none: stage them beside out_dir, then move them in."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CodegenError(f"output path {out_dir} exists and is not a directory")
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".codegen-", dir=parent))
    except OSError as exc:
        raise CodegenError(f"cannot write to {parent}: {exc.strerror}") from None
    created_dir = not out_dir.exists()
    try:
        for file_name, text in files.items():
            (staging / file_name).write_text(text, encoding="utf-8", newline="\n")
        out_dir.mkdir(exist_ok=True)
        written = []
        for file_name in files:
            target = out_dir / file_name
            os.replace(staging / file_name, target)
            written.append(target)
        return tuple(written)
    except OSError as exc:
        if created_dir:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise CodegenError(f"cannot write to {out_dir}: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def generate(model: Path, out_dir: Path, name: str | None = None,
             options: EmitOptions | None = None, *, io_in_arena: bool = False) -> Generated:
    name = check_name(name or default_name(model))
    program = load_program(model, io_in_arena=io_in_arena)
    files = emit_model(program, name, options)
    return Generated(program, name, write_files_atomically(files, out_dir))

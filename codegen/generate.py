"""`codegen generate`: model file -> NAME.c + NAME.h in an output directory, atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
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
    """Write all files or none.

    The files are first written to a staging directory beside out_dir (never inside it).
    A new out_dir is that directory renamed into place, in one step. In an existing out_dir,
    which may hold other files of the user's, each file replaces its old version; the old
    versions are kept until every replacement succeeded and put back if one failed, so the
    directory ends with all the old files or all the new ones, never a mix.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise CodegenError(f"output path {out_dir} exists and is not a directory")
    target = out_dir.resolve()
    created: list[Path] = []
    try:
        for ancestor in reversed(target.parents):
            if not ancestor.exists():
                ancestor.mkdir()
                created.append(ancestor)
        if target.exists():
            _replace_in_directory(files, target)
        else:
            _write_new_directory(files, target)
    except OSError as exc:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        reason = exc.strerror or str(exc)
        raise CodegenError(f"cannot write to {out_dir}: {reason}") from None
    return tuple(out_dir / name for name in files)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _staging_directory(target: Path) -> Path | None:
    """A fresh hidden directory beside target, or None if its parent is not writable."""
    if target.parent == target:
        return None
    try:
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.codegen-", dir=target.parent))
    except OSError:
        return None


def _write_new_directory(files: dict[str, str], target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.codegen-", dir=target.parent))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8", newline="\n")
        staging.chmod(0o777 & ~_umask())  # mkdtemp made it private
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_in_directory(files: dict[str, str], target: Path) -> None:
    staging = _staging_directory(target)
    temporaries: list[Path] = []

    def temporary(name: str) -> Path:
        if staging is not None:
            path = staging / name
        else:  # the parent is not writable: hidden files in target, removed below
            path = target / f".{name}.codegen-{secrets.token_hex(6)}"
        temporaries.append(path)
        return path

    try:
        new = {}
        for name, text in files.items():
            new[name] = temporary(name)
            with open(new[name], "x", encoding="utf-8", newline="\n") as f:
                f.write(text)
        old = {}
        for name in files:
            current = target / name
            if current.is_dir() and not current.is_symlink():
                raise IsADirectoryError(errno.EISDIR, f"{current} is a directory")
            if os.path.lexists(current):
                old[name] = temporary(f"{name}.old")
                os.link(current, old[name], follow_symlinks=False)
        replaced: list[str] = []
        try:
            for name in files:
                os.replace(new[name], target / name)
                replaced.append(name)
        except BaseException:
            for name in reversed(replaced):  # put the old files back
                if name in old:
                    os.replace(old[name], target / name)
                else:
                    os.unlink(target / name)
            raise
    finally:
        for path in temporaries:
            with contextlib.suppress(OSError):
                path.unlink()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def generate(model: Path, out_dir: Path, name: str | None = None,
             options: EmitOptions | None = None, *, io_in_arena: bool = False,
             extra_files: Callable[[Program, str], dict[str, str]] | None = None) -> Generated:
    """NAME.c and NAME.h (plus `extra_files(program, name)`, e.g. a meson.build) written
    to out_dir together, all or none."""
    name = check_name(name or default_name(model))
    program = load_program(model, io_in_arena=io_in_arena)
    files = emit_model(program, name, options)
    if extra_files is not None:
        files.update(extra_files(program, name))
    return Generated(program, name, write_files_atomically(files, out_dir))

"""Reading the user's sample arrays (a .npy for a model with one input, an .npz keyed by
input name for several; shared by `codegen run`, `quantize` and `report`) and writing
`codegen run`'s outputs.

The files are untrusted, so this is a reader of its own rather than np.load: every array
must be a plain numeric one (no pickled objects), its header's size is checked against the
file (or, in an .npz, against the member's declared size, which is checked against what
its compressed data can hold) before anything is allocated, and every problem ends in one
line naming the file.
"""

from __future__ import annotations

import math
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from codegen.errors import CodegenError

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_MAX_HEADER = 10_000  # bytes of an .npy header (numpy's own default limit)
_DEFLATE_RATIO = 1032  # deflate expands at most about 1032:1 (258-byte matches in 2 bits)
_CHUNK = 1 << 20


class _Bad(Exception):
    """A problem with one array, to be reported with the file (and member) name."""


def load_named_arrays(path: Path, names: list[str], what: str) -> list[np.ndarray]:
    """One array per name, in order. A .npy serves a single name; an .npz must hold every
    name (or, for a single name, just one array under any key). One-line errors."""
    with _open_regular(path, what) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size == 0:
            raise CodegenError(f"{what} {path} is empty; give an .npy or .npz file")
        head = stream.read(len(_NPY_MAGIC))
        stream.seek(0)
        if head.startswith(_NPY_MAGIC):
            if len(names) != 1:
                raise CodegenError(
                    f"the model has {len(names)} inputs; give the {what} as an .npz keyed by "
                    f"{', '.join(names)}"
                )
            try:
                return [_read_npy(stream, size)]
            except _Bad as exc:
                raise CodegenError(f"{what} {path}: {exc}") from None
        if head.startswith(_ZIP_MAGICS):
            return _read_npz(stream, size, path, names, what)
    raise CodegenError(f"{what} {path}: not a readable .npy/.npz file (it starts with neither "
                       "the .npy nor the zip signature)")


def _open_regular(path: Path, what: str) -> BinaryIO:
    """The file opened for reading, refused unless it is a regular file (a FIFO or a
    device would block or never end; O_NONBLOCK keeps the open itself from waiting)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CodegenError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise CodegenError(f"{what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CodegenError(f"{what} {path} is not a regular file; give an .npy or .npz file")
    return os.fdopen(fd, "rb")


def memory_bytes() -> int:
    """This machine's physical memory: no array may need more."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 1 << 62


def _read_npy(stream: BinaryIO, available: int) -> np.ndarray:
    """An array from a stream positioned at an .npy's magic, holding `available` bytes from
    there: exactly a header and the data it announces."""
    dtype, shape, fortran, header_bytes = _read_header(stream)
    data_bytes = math.prod(shape) * dtype.itemsize
    if header_bytes + data_bytes != available:
        raise _Bad(f"its header announces {_describe(dtype, shape)} ({data_bytes} bytes of "
                   f"data), but it holds {available - header_bytes}; the file is damaged or "
                   "not written by numpy")
    if data_bytes > memory_bytes():
        raise _Bad(f"it holds {data_bytes} bytes of data, more than this machine's memory")
    array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    view = memoryview(array.reshape(-1, order="A").view(np.uint8))
    done = 0
    while done < data_bytes:
        got = stream.readinto(view[done:done + _CHUNK])
        if not got:
            raise _Bad(f"its data ends after {done} of {data_bytes} bytes")
        done += got
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def _read_header(stream: BinaryIO) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """dtype, shape, Fortran order and the header's length in bytes, checked."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream, _MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream, _MAX_HEADER)
        else:
            raise _Bad(f".npy format version {version[0]}.{version[1]} is not supported "
                       "(numeric arrays are saved as 1.0 or 2.0)")
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise _Bad(f"not a valid .npy header ({_first_line(exc)})") from None
    if dtype.hasobject:
        raise _Bad("it holds Python objects (a pickle), which codegen never loads; save a "
                   "numeric array")
    if dtype.kind not in _NUMERIC_KINDS or dtype.itemsize == 0 or dtype.subdtype is not None:
        raise _Bad(f"it holds {dtype} values; codegen reads numeric arrays only")
    if any(d < 0 for d in shape):
        raise _Bad(f"its header gives a negative dimension {shape}")
    return dtype, tuple(shape), bool(fortran), stream.tell()


def _describe(dtype: np.dtype, shape: tuple[int, ...]) -> str:
    return f"a {dtype} array of shape {shape}"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__


# -- .npz ----------------------------------------------------------------------------------


def _read_npz(stream: BinaryIO, size: int, path: Path, names: list[str],
              what: str) -> list[np.ndarray]:
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise CodegenError(f"{what} {path}: not a readable .npz file ({_first_line(exc)})") \
            from None
    with archive:
        members: dict[str, list[zipfile.ZipInfo]] = {}
        for info in archive.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            members.setdefault(key, []).append(info)
        keys = list(members)
        if len(names) == 1 and len(keys) == 1:
            chosen = [keys[0]]
        else:
            missing = [n for n in names if n not in members]
            if missing:
                shown = ", ".join(repr(k) for k in keys[:20]) + (", ..." if len(keys) > 20
                                                                  else "")
                raise CodegenError(f"{what} {path} has no array named {missing[0]!r} "
                                   f"(has {shown or 'no arrays'})")
            chosen = names
        arrays = []
        for key in chosen:
            if len(members[key]) != 1:
                raise CodegenError(f"{what} {path} holds {len(members[key])} arrays named "
                                   f"{key!r}; it is ambiguous")
            info = members[key][0]
            try:
                arrays.append(_read_member(archive, info, size))
            except _Bad as exc:
                raise CodegenError(f"{what} {path}, array {key!r}: {exc}") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
                    NotImplementedError, RuntimeError) as exc:
                raise CodegenError(f"{what} {path}, array {key!r}: cannot be read "
                                   f"({_first_line(exc)}); the file is damaged") from None
        return arrays


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> np.ndarray:
    """The .npy inside one member, its declared sizes checked before anything is read:
    they must fit the file and what the compressed data can expand to."""
    if info.flag_bits & 0x1:
        raise _Bad("it is encrypted")
    if info.compress_type == zipfile.ZIP_STORED:
        possible = info.compress_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        possible = info.compress_size * _DEFLATE_RATIO + 1024
    else:
        raise _Bad(f"it is compressed with method {info.compress_type}; codegen reads .npz "
                   "files as np.savez and np.savez_compressed write them (stored or deflate)")
    if info.header_offset + info.compress_size > size:
        raise _Bad("its compressed data would lie beyond the end of the file; the file is "
                   "damaged")
    if info.file_size > possible:
        raise _Bad(f"it declares {info.file_size} bytes, more than its {info.compress_size} "
                   "compressed bytes can hold (a zip bomb?)")
    if info.file_size > memory_bytes():
        raise _Bad(f"it declares {info.file_size} bytes, more than this machine's memory")
    with archive.open(info) as member:
        head = member.read(len(_NPY_MAGIC))
        if not head.startswith(_NPY_MAGIC):
            raise _Bad("it is not an .npy array")
    with archive.open(info) as member:
        array = _read_npy(member, info.file_size)  # type: ignore[arg-type]
        if member.read(1):
            raise _Bad("it holds more data than it declares; the file is damaged")
    return array


# -- writing ---------------------------------------------------------------------------------

_SAFE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}\Z")
_FALLBACK_KEY = re.compile(r"output[0-9]+\Z")


def npz_keys(names: list[str]) -> list[str]:
    """The .npz key of each named array (the model's outputs, in order): its name when that
    is a safe zip member name (letters, digits, '_', '.', ':' and '-', starting with a
    letter, digit or '_', at most 200 characters) that no other output shares, else
    `output<i>`, i its position. A safe name of the form `output<j>` is kept only when j
    is its own position, so the keys are always unique."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    keys = []
    for i, name in enumerate(names):
        fallback = f"output{i}"
        usable = (_SAFE_KEY.match(name) is not None and counts[name] == 1
                  and (_FALLBACK_KEY.match(name) is None or name == fallback))
        keys.append(name if usable else fallback)
    return keys


class _Writes:
    """Only the write method of a stream: np.lib.format.write_array then writes through it
    instead of ndarray.tofile, whose errors lose the reason (errno) of a failed write."""

    def __init__(self, stream: BinaryIO) -> None:
        self.write = stream.write


def write_npy(stream: BinaryIO, array: np.ndarray) -> None:
    np.lib.format.write_array(_Writes(stream), np.asarray(array), allow_pickle=False)


def write_npz(stream: BinaryIO, arrays: list[tuple[str, np.ndarray]]) -> None:
    """An uncompressed .npz, as np.savez writes it, with the given (already safe) keys."""
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays:
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                write_npy(member, array)  # type: ignore[arg-type]

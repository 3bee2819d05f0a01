"""A small, bounded reader of flexbuffer maps: the options of TFLM's custom operators.

TFLM's custom operators (DETECTION_POSTPROCESS) keep their options in a flexbuffer whose root
is a map from keys to numbers, and read them with flatbuffers' C++ `flexbuffers.h`:
`GetRoot(buffer).AsMap()[key]`, then `AsInt32()`, `AsFloat()`, `AsBool()` or `IsNull()`.
This module reads exactly that, with the same conversions, from untrusted bytes:

- every read is checked against the buffer (C++ would read outside it: a corrupt file);
- the root must be a map of at most `MAX_KEYS` entries whose keys (at most `MAX_KEY_BYTES`
  each, NUL-terminated inside the buffer) are strictly sorted, as every flexbuffer builder
  writes them; C++ looks keys up with `bsearch`, whose answer on unsorted keys depends on
  the C library, so such a map is refused rather than guessed;
- a value is null, an integer, an unsigned integer, a float or a bool, stored inline or
  indirectly; a string, vector, map or blob where a number is wanted is refused (C++ would
  parse a string as a number or give a vector's size: no converter writes that);
- conversions follow `flexbuffers::Reference`: `AsInt32` is `AsInt64` truncated to 32 bits
  (a float truncated toward zero), `AsFloat` is `AsDouble` rounded to float32, `AsBool` is
  `AsUInt64 != 0`; where C++ has undefined behaviour (a NaN or out-of-range float converted
  to an integer) the value is refused.

Time and memory: O(MAX_KEYS * MAX_KEY_BYTES) whatever the bytes hold.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

MAX_KEYS = 256
MAX_KEY_BYTES = 256

# flexbuffers::Type numbers (the upper six bits of a packed type byte).
_NULL, _INT, _UINT, _FLOAT = 0, 1, 2, 3
_INDIRECT_INT, _INDIRECT_UINT, _INDIRECT_FLOAT, _MAP = 6, 7, 8, 9
_BOOL = 26
_TYPE_NAMES = {4: "key", 5: "string", 9: "map", 10: "vector", 25: "blob"}
_WIDTHS = (1, 2, 4, 8)
_INT_FORMATS = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}
_UINT_FORMATS = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
# ReadDouble reads 1- and 2-byte "floats" as int8 and int16 (flexbuffers.h's quarter/half).
_REAL_FORMATS = {1: "<b", 2: "<h", 4: "<f", 8: "<d"}
_INT64_MIN, _UINT64 = -(1 << 63), 1 << 64


class FlexbufferError(ValueError):
    """Bytes that are not a flexbuffer map of numbers (the message names the problem)."""


@dataclass(frozen=True)
class Value:
    """One map value: its flexbuffer type and the number(s) C++ would read from it."""

    kind: str  # "null", "int", "uint", "float", "bool" or a type name ("string", ...)
    signed: int = 0  # ReadInt64 of the stored bytes (int, bool)
    unsigned: int = 0  # ReadUInt64 of the stored bytes (uint, bool)
    real: float = 0.0  # ReadDouble of the stored bytes (float)

    @property
    def is_null(self) -> bool:
        return self.kind == "null"

    def _number(self, key: str) -> None:
        if self.kind not in ("null", "int", "uint", "float", "bool"):
            raise FlexbufferError(f"option '{key}' is a {self.kind}, expected a number")

    def _truncated(self, key: str) -> int:
        if not math.isfinite(self.real) or not -2.0**63 <= self.real < 2.0**63:
            raise FlexbufferError(f"option '{key}' is {self.real}, which has no integer value")
        return int(self.real)

    def as_int64(self, key: str) -> int:
        self._number(key)
        if self.kind == "uint":
            return _wrap(self.unsigned, 64)
        if self.kind == "float":
            return self._truncated(key)
        return self.signed  # int, bool (ReadInt64), null (0)

    def as_int32(self, key: str) -> int:
        """flexbuffers' AsInt32: AsInt64 cast to int32_t (the low 32 bits)."""
        return _wrap(self.as_int64(key), 32)

    def as_double(self, key: str) -> float:
        self._number(key)
        if self.kind == "float":
            return self.real
        if self.kind == "int":
            return float(self.signed)
        return float(self.unsigned)  # uint, bool (ReadUInt64), null (0)

    def as_float(self, key: str) -> float:
        """flexbuffers' AsFloat: AsDouble rounded to float32 (overflowing to infinity)."""
        with np.errstate(over="ignore"):
            return float(np.float32(self.as_double(key)))

    def as_bool(self, key: str) -> bool:
        """flexbuffers' AsBool: a bool's stored bits, anything else AsUInt64, != 0."""
        self._number(key)
        if self.kind == "float":
            value = self._truncated(key)
            if value < 0:
                raise FlexbufferError(f"option '{key}' is {self.real}, which has no "
                                      "unsigned integer value")
            return value != 0
        if self.kind == "int":
            return self.signed != 0
        return self.unsigned != 0


def _wrap(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class _Buffer:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, fmts: dict[int, str], pos: int, width: int) -> int | float:
        if width not in _WIDTHS or not 0 <= pos <= len(self.data) - width:
            raise FlexbufferError(f"a read of {width} bytes at {pos} leaves the "
                                  f"{len(self.data)} bytes of options")
        return struct.unpack_from(fmts[width], self.data, pos)[0]

    def uint(self, pos: int, width: int) -> int:
        return int(self.read(_UINT_FORMATS, pos, width))

    def indirect(self, pos: int, width: int) -> int:
        """flexbuffers' Indirect: the position `pos` minus the offset stored there."""
        return pos - self.uint(pos, width)

    def width(self, pos: int, width: int, what: str) -> int:
        value = self.uint(pos, width)
        if value not in _WIDTHS:
            raise FlexbufferError(f"the {what} byte width is {value}")
        return value

    def key(self, pos: int) -> bytes:
        if not 0 <= pos < len(self.data):
            raise FlexbufferError(f"a key at {pos} lies outside the options")
        end = self.data.find(b"\0", pos, pos + MAX_KEY_BYTES + 1)
        if end < 0:
            raise FlexbufferError(f"a key at {pos} is longer than {MAX_KEY_BYTES} bytes or "
                                  "not terminated")
        return self.data[pos:end]

    def value(self, pos: int, parent_width: int, packed: int) -> Value:
        kind, width = packed >> 2, 1 << (packed & 3)
        if kind in (_INDIRECT_INT, _INDIRECT_UINT, _INDIRECT_FLOAT):
            pos, kind = self.indirect(pos, parent_width), kind - (_INDIRECT_INT - _INT)
        else:
            width = parent_width  # inline scalars are as wide as their parent's slots
        if kind == _NULL:
            return Value("null")
        if kind in (_INT, _UINT, _BOOL):
            signed = int(self.read(_INT_FORMATS, pos, width))
            unsigned = self.uint(pos, width)
            return Value({_INT: "int", _UINT: "uint", _BOOL: "bool"}[kind], signed, unsigned)
        if kind == _FLOAT:
            return Value("float", real=float(self.read(_REAL_FORMATS, pos, width)))
        name = _TYPE_NAMES.get(kind, "vector" if 11 <= kind <= 24 or kind == 36 else
                               f"value of type {kind}")
        return Value(name)


def read_map(data: bytes, keys: Iterable[str]) -> dict[str, Value]:
    """The values of `keys` in the flexbuffer map `data` (null for a key it lacks), as
    `GetRoot(data).AsMap()[key]` finds them. Raises FlexbufferError for anything else."""
    buf = _Buffer(data)
    if len(data) < 3:
        raise FlexbufferError(f"{len(data)} bytes are too few for a flexbuffer")
    root_width = buf.width(len(data) - 1, 1, "root")
    packed = data[-2]
    if packed >> 2 != _MAP:
        kind = _TYPE_NAMES.get(packed >> 2, f"value of type {packed >> 2}")
        raise FlexbufferError(f"the root is a {kind}, not a map")
    entries = _entries(buf, buf.indirect(len(data) - 2 - root_width, root_width),
                       1 << (packed & 3))
    wanted = {key: key.encode("ascii") for key in keys}
    return {key: entries.get(raw, Value("null")) for key, raw in wanted.items()}


def _entries(buf: _Buffer, start: int, width: int) -> dict[bytes, Value]:
    """Every key of the map at `start` (values `width` bytes wide) and its value."""
    size = buf.uint(start - width, width)
    if size > MAX_KEYS:
        raise FlexbufferError(f"the map has {size} keys; at most {MAX_KEYS} are read")
    keys_at = start - 3 * width
    keys = buf.indirect(keys_at, width)
    key_width = buf.width(keys_at + width, width, "keys'")
    if buf.uint(keys - key_width, key_width) != size:
        raise FlexbufferError("the map has a different number of keys and values")
    types = start + size * width
    entries: dict[bytes, Value] = {}
    previous: bytes | None = None
    for i in range(size):
        key = buf.key(buf.indirect(keys + i * key_width, key_width))
        if previous is not None and key <= previous:
            raise FlexbufferError("the map's keys are not sorted (or repeat)")
        previous = key
        packed = int(buf.read(_UINT_FORMATS, types + i, 1))
        entries[key] = buf.value(start + i * width, width, packed)
    return entries

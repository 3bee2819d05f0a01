"""codegen.model.flexbuffers, the bounded reader of custom operators' options: the values
flatbuffers' own decoder finds, C++'s conversions (AsInt32, AsFloat, AsBool, IsNull), and
hostile bytes (every truncation, every single-byte change, unsorted or too many keys) ending
in a FlexbufferError or a value, never anything else.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from flatbuffers import flexbuffers
from support import detection_models as dm

from codegen.errors import CodegenError
from codegen.model.flexbuffers import MAX_KEYS, FlexbufferError, Value, read_map
from codegen.model.tflite import MAX_CUSTOM_OPTIONS_BYTES, load_model


def _map(build: dict[str, tuple[str, object]]) -> bytes:
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, (kind, value) in build.items():
            if kind == "int":
                fbb.Int(key, value)
            elif kind == "uint":
                fbb.UInt(key, value)
            elif kind == "float":
                fbb.Float(key, value)
            elif kind == "bool":
                fbb.Bool(key, value)
            elif kind == "indirect_int":
                fbb.IndirectInt(key, value)
            elif kind == "indirect_float":
                fbb.IndirectFloat(key, value)
            elif kind == "string":
                fbb.String(key, value)
            elif kind == "vector":
                fbb.VectorFromElements(key, value)
            else:
                fbb.Key(key)
                fbb.Null()
    return bytes(fbb.Finish())


def test_values_agree_with_the_flatbuffers_decoder() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        build: dict[str, tuple[str, object]] = {}
        for k in range(int(rng.integers(1, 12))):
            key = f"k{int(rng.integers(0, 1000))}_{k}"
            kind = str(rng.choice(["int", "uint", "float", "bool", "indirect_int",
                                   "indirect_float", "null"]))
            if kind in ("int", "indirect_int"):
                value: object = int(rng.integers(-(2**63), 2**63 - 1)) >> int(rng.integers(0, 63))
            elif kind == "uint":
                value = int(rng.integers(0, 2**63 - 1)) >> int(rng.integers(0, 63))
            elif kind in ("float", "indirect_float"):
                value = float(rng.choice([rng.normal() * 10.0 ** int(rng.integers(-30, 30)),
                                          np.float32(rng.normal())]))
            elif kind == "bool":
                value = bool(rng.integers(0, 2))
            else:
                value = None
            build[key] = (kind, value)
        data = _map(build)
        expected = flexbuffers.Loads(data)
        got = read_map(data, list(build))
        for key, (kind, value) in build.items():
            v = got[key]
            if kind == "null":
                assert v.is_null and expected[key] is None
            elif kind == "bool":
                assert v.as_bool(key) == expected[key] == value
            elif "float" in kind:
                assert v.as_double(key) == expected[key] == value
                assert v.as_float(key) == float(np.float32(value))
            else:
                assert v.as_int64(key) == expected[key] == value


def test_conversions_follow_cpp() -> None:
    data = _map({
        "a_float": ("float", -3.9), "big": ("int", 2**32 + 5), "flag": ("bool", True),
        "huge_uint": ("uint", 2**63 + 7), "nan": ("float", math.nan), "neg": ("float", -1.0),
        "one": ("float", 1.5), "text": ("string", "7"), "vec": ("vector", [1, 2]),
    })
    v = read_map(data, ["a_float", "big", "flag", "huge_uint", "nan", "neg", "one", "text",
                        "vec", "absent"])
    assert v["a_float"].as_int32("a") == -3  # truncated toward zero
    assert v["big"].as_int32("b") == 5  # the low 32 bits
    assert v["big"].as_float("b") == float(np.float32(2**32 + 5))
    assert v["flag"].as_int32("f") == 1 and v["flag"].as_float("f") == 1.0
    assert v["huge_uint"].as_int64("h") == -(2**63) + 7
    assert v["one"].as_bool("o") and not Value("float", real=0.5).as_bool("x")
    assert v["absent"].is_null and v["absent"].as_int32("x") == 0
    assert v["absent"].as_float("x") == 0.0 and not v["absent"].as_bool("x")
    for key, call in (("nan", "as_int32"), ("neg", "as_bool"), ("text", "as_int32"),
                      ("vec", "as_float")):
        with pytest.raises(FlexbufferError):
            getattr(v[key], call)(key)
    # ReadDouble reads a 1- or 2-byte "float" as int8 or int16 (flexbuffers.h's quarter/half).
    assert Value("float", real=-2.0).as_int32("x") == -2


def test_map_structure_is_checked() -> None:
    with pytest.raises(FlexbufferError, match="not a map"):
        read_map(bytes([5, 1 << 2, 1]), ["x"])
    with pytest.raises(FlexbufferError, match="too few"):
        read_map(b"\x01", ["x"])
    data = bytearray(_map({"aa": ("int", 1), "bb": ("int", 2)}))
    at = data.index(b"bb\0")
    data[at:at + 2] = b"a0"  # keys no longer sorted
    with pytest.raises(FlexbufferError, match="not sorted"):
        read_map(bytes(data), ["aa"])
    many = _map({f"k{i:04d}": ("int", i) for i in range(MAX_KEYS + 1)})
    with pytest.raises(FlexbufferError, match="keys"):
        read_map(many, ["k0001"])
    long_key = "k" * 300
    with pytest.raises(FlexbufferError, match="longer than"):
        read_map(_map({long_key: ("int", 1)}), [long_key])


def test_hostile_bytes_end_in_an_error_or_a_value() -> None:
    """Every truncation and every single-byte change of real options: a FlexbufferError or
    values, never another exception."""
    data = dm.flex_options(dm.detection_options(**dm.CONVERTER_KEYS))
    keys = list(dm.detection_options())
    variants = [data[:n] for n in range(len(data))]
    rng = np.random.default_rng(1)
    for at in range(len(data)):
        for value in (0, 0xFF, int(rng.integers(0, 256)), data[at] ^ 0x80):
            mutated = bytearray(data)
            mutated[at] = value
            variants.append(bytes(mutated))
    outcomes = {"error": 0, "read": 0}
    for variant in variants:
        try:
            values = read_map(variant, keys)
        except FlexbufferError:
            outcomes["error"] += 1
            continue
        outcomes["read"] += 1
        for key, v in values.items():
            for call in ("as_int32", "as_float", "as_bool"):
                with contextlib.suppress(FlexbufferError):
                    getattr(v, call)(key)
    assert outcomes["error"] and outcomes["read"], outcomes


def test_reader_bounds_the_options() -> None:
    head = dm.Head(dm.grid_anchors(2, 2), dm.detection_options(),
                   custom_options=dm.flex_options(dm.detection_options())
                   + bytes(MAX_CUSTOM_OPTIONS_BYTES))
    with pytest.raises(CodegenError, match="bytes of options"):
        load_model(dm.head_model(head))

"""codegen from Python: what the command line does, as functions.

    import numpy as np
    from codegen import api

    info = api.inspect("model.tflite")            # inputs, outputs, operators, arena
    api.generate("model.tflite", "model_c", name="model", cmake=True)
    lib = api.build("model.tflite", "cortex-m4", "model_lib", name="model")
    x = np.zeros((10, *info.inputs[0].shape), np.int8)
    (y,) = api.run("model.tflite", x, target="cortex-m4")  # one array per model output
    cost = api.bench("model.tflite", "cortex-m4")  # the JSON of `codegen bench --json`
    q = api.quantize("model.keras", calibration, output="model.tflite")

The examples in the docstrings below use the bundled demo MLP (codegen/demo/demo_mlp.tflite,
copied to mlp.tflite).

Every function takes the paths as `str` or `os.PathLike`; `run` and `inspect` also take the
model as bytes. Errors are raised as `codegen.errors.CodegenError` (or one of its
subclasses, `UnsupportedError` and `ModelFormatError`) with the one-line message the
command line prints; nothing here exits the interpreter. `run` draws a progress bar on
stderr when it is a terminal (never in a notebook or a pipe) unless `progress=False`.

The command line (codegen/commands/) is a layer over these functions: arguments in,
printing out.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from codegen.errors import CodegenError, UnsupportedError

__all__ = [
    "BuiltLibrary",
    "CodegenError",
    "GeneratedModel",
    "ModelInfo",
    "OperatorInfo",
    "QuantizedModel",
    "TensorInfo",
    "bench",
    "build",
    "generate",
    "inspect",
    "quantize",
    "run",
]

PathLike: TypeAlias = "str | os.PathLike[str]"
Arrays: TypeAlias = "np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]"


def _path(value: PathLike, what: str) -> Path:
    if isinstance(value, (bytes, bytearray)):
        raise CodegenError(f"{what} must be a path (str or os.PathLike), not bytes")
    try:
        path = Path(value)
    except TypeError:
        raise CodegenError(f"{what} must be a path (str or os.PathLike), not "
                           f"{type(value).__name__}") from None
    if not str(value):
        raise CodegenError(f"{what} is empty; give a path")
    return path


def _budget(value: int | None) -> int | None:
    """A RAM budget given to the API: bytes, checked as the command line checks them."""
    if value is None:
        return None
    from codegen.cli_types import check_budget

    return check_budget(value)


def _model_source(model: PathLike | bytes) -> Path | bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    return _path(model, "model")


# -- generate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedModel:
    """What `generate` wrote and what the model needs."""

    name: str  # the C prefix: NAME_invoke, NAME.h
    files: tuple[Path, ...]  # every file written, in the output directory
    operators: dict[str, int]  # operator type -> count
    constant_bytes: int  # weights, biases and parameters (flash)
    arena_bytes: int  # the activation arena (RAM)
    arena_lower_bound: int  # the largest live set: no plan can do with less
    macs: int  # multiply-accumulates per invoke


def generate(model: PathLike, output: PathLike, *, name: str | None = None,
             static_arena: bool = True, arena_section: str | None = None,
             io_in_arena: bool = False, meson: bool = False, cmake: bool = False,
             arduino: bool = False, ram_budget: int | None = None,
             numerics: str = "tflm") -> GeneratedModel:
    """Write NAME.c and NAME.h for `model` into the directory `output`, all files or none.

    `name` is the C prefix and file name (default: from the model's file name).
    `static_arena=False` emits only NAME_invoke_with_arena (the caller owns the arena);
    `arena_section` places the static arena in a linker section; `io_in_arena` puts the
    model's inputs and outputs in the arena too; `ram_budget` (bytes) picks the fastest
    schedule whose arena fits it (a CodegenError names the smallest reachable when none
    does). `meson` adds a meson.build (a meson
    subproject), `cmake` a CMakeLists.txt (a CMake library target NAME, alias
    codegen::NAME); `arduino` writes an Arduino library instead: library.properties,
    src/NAME.c, src/NAME.h and examples/NAME/NAME.ino. Files codegen did not write are
    never replaced (the call fails instead). `numerics` names whose arithmetic the C
    reproduces: "tflm" (default), "litert-ref" or "litert" (the README's Numerics).

    >>> api.generate("mlp.tflite", "mlp_c", cmake=True).files
    (PosixPath('mlp_c/mlp.h'), PosixPath('mlp_c/mlp.c'), PosixPath('mlp_c/CMakeLists.txt'))
    """
    from codegen import arduino as arduino_layout
    from codegen import cmake as cmake_layout
    from codegen.emit import EmitOptions
    from codegen.files import Content
    from codegen.generate import check_name, default_name
    from codegen.generate import generate as generate_files
    from codegen.library import meson_build_text
    from codegen.program import Program

    model_path, out_dir = _path(model, "model"), _path(output, "output")
    if arduino and (meson or cmake):
        raise CodegenError("an Arduino library has no meson.build or CMakeLists.txt: give "
                           "--arduino alone, or --meson/--cmake without it")
    name = check_name(name if name is not None else default_name(model_path))
    if cmake:
        cmake_layout.check_cmake_name(name)
    options = EmitOptions(static_arena=static_arena, arena_section=arena_section)

    def layout(program: Program, name: str, files: dict[str, Content]) -> dict[str, Content]:
        if arduino:
            return arduino_layout.arduino_files(program, name, files, options)
        if meson:
            files["meson.build"] = meson_build_text(name, program.source)
        if cmake:
            files[cmake_layout.CMAKE_LISTS] = cmake_layout.cmake_lists_text(name,
                                                                            program.source)
        return files

    result = generate_files(model_path, out_dir, name, options, io_in_arena=io_in_arena,
                            ram_budget=_budget(ram_budget), layout=layout,
                            numerics=numerics)
    program = result.program
    operators: dict[str, int] = {}
    for layer in program.layers:
        operators[layer.opcode] = operators.get(layer.opcode, 0) + 1
    return GeneratedModel(name, result.files, operators, program.constant_bytes,
                          program.plan.size, program.plan.lower_bound, program.macs)


# -- build --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltLibrary:
    """`build`'s static library and what it needs, measured from its object files."""

    name: str
    target: str
    machine_flags: tuple[str, ...]  # the compiler flags of the target (empty: the host)
    archive: Path  # libNAME.a
    header: Path  # NAME.h
    cross_file: Path | None  # meson cross file (Cortex-M, meson build)
    toolchain_file: Path | None  # CMake toolchain file (Cortex-M, cmake=True)
    code_bytes: int  # .text
    constant_bytes: int  # .rodata
    data_bytes: int  # .data
    bss_bytes: int  # .bss: the static arena (and the static state)
    arena_bytes: int
    state_bytes: int = 0  # NAME_STATE_SIZE: state kept between invokes (in .bss)

    @property
    def flash_bytes(self) -> int:
        return self.code_bytes + self.constant_bytes

    @property
    def ram_bytes(self) -> int:
        return self.data_bytes + self.bss_bytes


def build(model: PathLike, target: str, output: PathLike, *, name: str | None = None,
          build_dir: PathLike | None = None, arena_section: str | None = None,
          cmake: bool = False, ram_budget: int | None = None,
          numerics: str = "tflm") -> BuiltLibrary:
    """Generate the C for `model` and compile it into `output/libNAME.a` for `target`
    ("host", "cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33",
    "cortex-m55", "riscv32", "riscv32-v"), beside
    NAME.h, NAME.c and the build files: meson.build and, for a cross target, cross.ini; or
    with `cmake=True` CMakeLists.txt and toolchain.cmake, compiled with CMake. All written
    together once the library is built, or none. `build_dir` keeps the build (a new or
    empty directory, or one codegen made before; default: a temporary directory).

    >>> lib = api.build("mlp.tflite", "cortex-m4", "mlp_lib")
    >>> lib.archive, lib.ram_bytes, lib.flash_bytes > lib.constant_bytes >= 864
    (PosixPath('mlp_lib/libmlp.a'), 32, True)
    """
    from codegen.emit import EmitOptions
    from codegen.library import build_library

    lib = build_library(_path(model, "model"), target, _path(output, "output"), name,
                        build_dir=_path(build_dir, "build_dir") if build_dir else None,
                        options=EmitOptions(arena_section=arena_section), use_cmake=cmake,
                        ram_budget=_budget(ram_budget), numerics=numerics)
    fp = lib.footprint
    return BuiltLibrary(lib.name, lib.target.name, lib.target.machine_flags, lib.archive,
                        lib.header, lib.cross_file, lib.toolchain_file, fp.code,
                        fp.constants, fp.data, fp.bss, lib.program.plan.size,
                        lib.program.state.size if lib.program.state is not None else 0)


# -- run ----------------------------------------------------------------------------------


def run(model: PathLike | bytes, inputs: Arrays, *, target: str = "reference",
        build_dir: PathLike | None = None, progress: bool | None = None,
        timeout: float = 600.0, reset_each: bool = False,
        ram_budget: int | None = None, numerics: str = "tflm") -> list[np.ndarray]:
    """Run N samples through the model on `target` and return its outputs: one array per
    model output, in the model's order, shaped (N, *output shape). A model that keeps state
    (SVDF, LSTM, resource variables) runs the samples in order as one stream of invokes from
    its reset state, the state carried from each to the next, unless `reset_each`.

    `inputs`: one array shaped (N, *input shape) of the input's dtype (for a model with one
    input), a sequence of them in the model's input order, or a mapping from input tensor
    name to array. `target` is "reference" (the numpy integer reference), "host" (the
    generated C compiled natively) or a Cortex-M target (cross-compiled, run under QEMU with
    `timeout` seconds). `build_dir` keeps the sources and the build for a later run.
    `progress`: a progress bar of samples done on stderr (default: when it is a terminal).
    `numerics`: whose arithmetic the reference and the C reproduce (see `generate`).

    >>> x = np.array([[[-128, 127]], [[0, 0]]], np.int8)  # 2 samples of shape (1, 2)
    >>> api.run("mlp.tflite", x, target="host")
    [array([[[-88]],
    <BLANKLINE>
           [[122]]], dtype=int8)]
    """
    from codegen.execute import execute
    from codegen.files import check_build_dir
    from codegen.program import load_program

    source = _model_source(model)
    work_dir = _path(build_dir, "build_dir") if build_dir else None
    if work_dir is not None:
        keep = [("the model", source)] if isinstance(source, Path) else []
        check_build_dir(work_dir, keep=keep)
    program = load_program(source, ram_budget=_budget(ram_budget), numerics=numerics)
    arrays = _input_list(program, inputs)
    return execute(program, target, arrays, work_dir=work_dir, progress=progress,
                   timeout=timeout, reset_each=reset_each)


def _input_list(program: Any, inputs: Arrays) -> list[np.ndarray]:
    graph = program.graph
    names = [graph.tensors[i].name for i in graph.inputs]
    if isinstance(inputs, np.ndarray):
        arrays = [inputs]
    elif isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise CodegenError(f"inputs: the model's inputs are {names}; "
                               + (f"missing {missing}" if missing else f"unknown {unknown}"))
        arrays = [inputs[n] for n in names]
    elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
        arrays = list(inputs)
    else:
        raise CodegenError(f"inputs must be a numpy array, a sequence of them or a mapping "
                           f"from input name to array, not {type(inputs).__name__}")
    for array in arrays:
        if not isinstance(array, np.ndarray):
            raise CodegenError(f"inputs must be numpy arrays, not {type(array).__name__}")
    return arrays


# -- bench --------------------------------------------------------------------------------


def bench(model: PathLike, target: str, *, optimization: str = "2",
          io_in_arena: bool = False, build_dir: PathLike | None = None,
          timeout: float = 600.0, wait_states: int = 0, small_multiplier: bool = False,
          profile: bool = False, progress: bool | None = None,
          ram_budget: int | None = None, numerics: str = "tflm") -> dict[str, Any]:
    """What one inference costs on `target`: the dictionary `codegen bench --json` prints
    (`instructions`, `cycles`, `macs`, `flash_code_bytes`, `flash_const_bytes`,
    `arena_bytes`, `stack_bytes`, `ram_bytes`, `layers`, ...). See the README's `codegen
    bench` for the options (`wait_states`, `small_multiplier` and `profile` are those of
    its cycle model). `progress`: what runs and for how long, on stderr (default: when it
    is a terminal).

    >>> cost = api.bench("mlp.tflite", "cortex-m4")
    >>> cost["macs"], cost["arena_bytes"], cost["output_matches_reference"]
    (304, 32, True)
    >>> cost["instructions"] > cost["macs"]
    True
    """
    from codegen.bench import bench_model
    from codegen.cycles import CycleOptions, check_options
    from codegen.progress import Progress
    from codegen.targets import get_target

    model_path = _path(model, "model")
    options = CycleOptions(wait_states=wait_states, small_multiplier=small_multiplier)
    check_options(get_target(target), options)
    with Progress(f"bench {model_path.name} on {target}", enabled=progress, tick=0.5):
        result = bench_model(model_path, target, io_in_arena=io_in_arena,
                             ram_budget=_budget(ram_budget),
                             optimization=optimization, timeout=timeout,
                             work_dir=_path(build_dir, "build_dir") if build_dir else None,
                             cycle_options=options, profile=profile, numerics=numerics)
    return result.as_json()


# -- inspect ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    index: int  # in the model file
    name: str
    dtype: str  # numpy's name: "int8", "float32", ...
    shape: tuple[int, ...]
    constant: bool
    scales: tuple[float, ...]  # empty when not quantized; one per channel if per-channel
    zero_points: tuple[int, ...]
    axis: int | None  # the quantized dimension of per-channel quantization

    @property
    def scale(self) -> float | None:
        return self.scales[0] if len(self.scales) == 1 else None

    @property
    def zero_point(self) -> int | None:
        return self.zero_points[0] if len(self.zero_points) == 1 else None


@dataclass(frozen=True)
class OperatorInfo:
    index: int  # in the model file
    opcode: str  # e.g. "CONV_2D"
    inputs: tuple[TensorInfo | None, ...]  # None: an omitted optional input
    outputs: tuple[TensorInfo, ...]
    fused_activation: str | None
    supported: bool
    reason: str | None  # why codegen cannot generate it (when not supported)
    derived: tuple[tuple[str, str], ...]  # what the generator computes (multipliers, ...)
    macs: int


@dataclass(frozen=True)
class ModelInfo:
    """A structured `codegen inspect`."""

    source: str  # the model's file name ("model.tflite" for bytes)
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    operators: tuple[OperatorInfo, ...]  # in file order
    arena_bytes: int | None  # None when an operator is not supported
    arena_lower_bound: int | None
    macs: int  # of the supported operators

    @property
    def supported(self) -> bool:
        return all(op.supported for op in self.operators)


def _tensor_info(t: Any) -> TensorInfo:
    q = t.quant
    return TensorInfo(t.index, t.name, t.dtype_name, tuple(t.shape), t.is_constant,
                      tuple(float(s) for s in q.scales) if q else (),
                      tuple(int(z) for z in q.zero_points) if q else (),
                      q.axis if q is not None and q.per_channel else None)


def inspect(model: PathLike | bytes) -> ModelInfo:
    """Describe the model: its inputs and outputs, and per operator its tensors, fused
    activation, whether codegen supports it (and why not) and what the generator derives;
    the arena size when every operator is supported.

    >>> info = api.inspect("mlp.tflite")
    >>> info.inputs[0].shape, info.inputs[0].zero_point, info.arena_bytes
    ((1, 2), -128, 32)
    >>> [(op.opcode, op.macs) for op in info.operators]
    [('FULLY_CONNECTED', 32), ('FULLY_CONNECTED', 256), ('FULLY_CONNECTED', 16)]
    """
    from codegen.model.tflite import load_model
    from codegen.ops import prepare_layer
    from codegen.plan import plan_memory

    source = _model_source(model)
    graph = load_model(source)
    layers, operators = [], []
    for op in graph.operators:
        try:
            layer, reason = prepare_layer(op, graph), None
        except UnsupportedError as exc:
            layer, reason = None, str(exc)
        layers.append(layer)
        activation = op.options.get("fused_activation_function")
        operators.append(OperatorInfo(
            op.index, op.opcode,
            tuple(_tensor_info(graph.tensors[t]) if t >= 0 else None for t in op.inputs),
            tuple(_tensor_info(graph.tensors[t]) for t in op.outputs),
            None if activation is None else str(activation), layer is not None, reason,
            tuple((str(k), str(v)) for k, v in layer.describe()) if layer else (),
            layer.macs() if layer else 0))
    arena = lower = None
    if all(layer is not None for layer in layers):
        plan = plan_memory(graph, layers)  # type: ignore[arg-type]
        arena, lower = plan.size, plan.lower_bound
    name = Path(source).name if isinstance(source, Path) else "model.tflite"
    return ModelInfo(name, tuple(_tensor_info(graph.tensors[i]) for i in graph.inputs),
                     tuple(_tensor_info(graph.tensors[i]) for i in graph.outputs),
                     tuple(operators), arena, lower, sum(op.macs for op in operators))


# -- quantize -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputError:
    """The int8 model's output against the float model's, on the calibration samples."""

    samples: int
    rms: float
    relative_rms: float  # rms / the float output's range
    max: float


@dataclass(frozen=True)
class QuantizedModel:
    model: bytes  # the int8 .tflite
    path: Path | None  # where it was written, if `output` was given
    samples: int  # calibration samples used
    errors: tuple[OutputError, ...]  # per model output


def quantize(model: PathLike, calibration: PathLike | np.ndarray | Mapping[str, np.ndarray],
             *, output: PathLike | None = None, float_io: bool = False,
             per_tensor: bool = False, int16: bool = False) -> QuantizedModel:
    """Full-integer post-training quantization of a float Keras model (.keras, .h5 or a
    SavedModel directory) with TensorFlow's converter, as `codegen quantize` does.

    `calibration`: float samples, one per row, shaped (N, *input shape): a .npy/.npz path,
    an array (one input) or a mapping from input name to array. Int8 input and output
    unless `float_io`; per-channel weight scales unless `per_tensor`; with `int16`, 16x8
    (int16 activations and I/O, int8 weights, as `--int16`). With `output`, the
    .tflite is also written there (atomically). Needs TensorFlow. A converted model that
    codegen cannot generate C for raises CodegenError (after it was written to `output`).

    >>> q = api.quantize("model.keras", x_calibration, output="model.tflite")  # doctest: +SKIP
    >>> q.errors[0].rms  # doctest: +SKIP
    """
    from codegen.files import check_output_file, write_file_atomically
    from codegen.program import load_program
    from codegen.quantize import quantize_model

    model_path = _path(model, "model")
    out = _path(output, "output") if output is not None else None
    if out is not None:
        check_output_file(out, "output", ".tflite file")  # before the slow conversion
    with tempfile.TemporaryDirectory(prefix="codegen-calibration-") as tmp:
        data = _calibration_file(calibration, Path(tmp))
        result = quantize_model(model_path, data, float_io=float_io, per_tensor=per_tensor,
                                scheme="16x8" if int16 else "int8")
    if out is not None:
        write_file_atomically(out, lambda stream: stream.write(result.model), "output",
                              ".tflite file")
    try:
        program = load_program(result.model)
    except CodegenError as exc:
        wrote = f"wrote {out}, but " if out is not None else ""
        raise CodegenError(f"{wrote}codegen cannot generate C for the quantized model: "
                           f"{exc}") from None
    return QuantizedModel(result.model, out, int(result.samples[0].shape[0]),
                          tuple(_output_errors(program, result)))


def _calibration_file(calibration: PathLike | np.ndarray | Mapping[str, np.ndarray],
                      tmp: Path) -> Path:
    """The calibration data as a file codegen.quantize reads: a path as it is, arrays saved
    into tmp (which quantize then reads as untrusted data, like any other file)."""
    if isinstance(calibration, np.ndarray):
        path = tmp / "calibration.npy"
        np.save(path, calibration, allow_pickle=False)
        return path
    if isinstance(calibration, Mapping):
        path = tmp / "calibration.npz"
        arrays = {}
        for key, value in calibration.items():
            if not isinstance(value, np.ndarray):
                raise CodegenError(f"calibration[{key!r}] must be a numpy array, not "
                                   f"{type(value).__name__}")
            arrays[str(key)] = value
        np.savez(path, **arrays)
        return path
    return _path(calibration, "calibration")


def _output_errors(program: Any, result: Any) -> list[OutputError]:
    from codegen.quantize import CHECK_SAMPLES, dequantize, int8_inputs
    from codegen.reference import run_reference

    graph = program.graph
    check = [a[:CHECK_SAMPLES] for a in result.samples]
    expected = result.float_model.predict(check)
    got = run_reference(program, int8_inputs(program, check))
    errors = []
    for index, e, g in zip(graph.outputs, expected, got, strict=True):
        real = dequantize(graph.tensors[index], g).reshape(len(e), -1)
        e = np.asarray(e).reshape(len(e), -1).astype(np.float64)
        error = np.abs(real - e)
        span = float(e.max() - e.min()) or 1.0
        rms = float(np.sqrt(np.mean(error ** 2)))
        errors.append(OutputError(len(e), rms, rms / span, float(error.max())))
    return errors

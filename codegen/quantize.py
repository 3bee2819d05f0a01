"""`codegen quantize`: a float Keras model + calibration data -> a full-int8 (or 16x8) .tflite.

Post-training quantization with TensorFlow's converter, done the way codegen wants it:

- the representative dataset is built from the user's calibration array (one sample per
  row, in the model's own input shape, with or without the model's batch axis of 1);
- the model is converted from a concrete function traced with a batch of exactly 1, so no
  dynamic-shape arithmetic (SHAPE, STRIDED_SLICE, PACK feeding a RESHAPE...) leaks into
  the graph;
- int8 weights and activations everywhere (TFLITE_BUILTINS_INT8), int8 input and output
  by default (`float_io` keeps float32 I/O around an int8 body), per-channel weights
  unless `per_tensor`; or, with the scheme "16x8", int16 activations, int8 weights and
  int64 biases (EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8) with int16 I/O.

TensorFlow is imported inside the functions that need it (it takes seconds), never at
module level: nothing on the `codegen generate` path imports this module.
`FloatModel` is shared with `codegen report`, which runs the float model beside the int8 one.

`.keras` and `.h5` files are loaded in Keras' safe mode (with a Keras whose safe mode is
known to hold): Python code stored in them (a Lambda layer's function) is refused unless the
caller trusts the file (`trust_code`, the CLI's `--trust-keras-code`). A SavedModel is a
TensorFlow program, run as it is.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codegen.arrays import load_named_arrays
from codegen.errors import CodegenError
from codegen.progress import Progress

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TRUST_FLAG = "--trust-keras-code"
# Older Keras ignores safe mode for .h5 files (CVE-2025-9905) or lets a .keras file turn
# it off (CVE-2025-9906).
SAFE_KERAS = (3, 11, 3)
CHECK_SAMPLES = 1000  # calibration samples used to measure the int8 error after conversion
# scheme -> (the converter's op set, the integer I/O type)
SCHEMES = {
    "int8": ("TFLITE_BUILTINS_INT8", "int8"),
    "16x8": ("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8", "int16"),
}


def import_tensorflow() -> None:
    """Import TensorFlow and Keras once, keeping their start-up chatter off the terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    with captured_stderr():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def captured_stderr() -> Iterator[io.StringIO]:
    """Send file descriptor 2 (TensorFlow's C++ logging, Python warnings) to a buffer; the
    buffer holds what was written once the block ends. Yields the buffer."""
    captured = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.write(sink.read().decode("utf-8", errors="replace"))


def _terminal_stream() -> Any:
    """A writable stream on the current stderr that stays put while fd 2 is captured."""
    try:
        return os.fdopen(os.dup(2), "w", buffering=1)
    except OSError:
        return None


# -- the float model ---------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | None, ...]  # one sample, without the batch axis
    dtype: str


class FloatModel:
    """A float model loaded with TensorFlow: a Keras file or a SavedModel directory.

    A Keras file is loaded in safe mode unless `trust_code`: a Lambda layer (Python code
    that would run while loading) is then refused."""

    def __init__(self, path: Path, *, trust_code: bool = False) -> None:
        self.path = path
        self.trust_code = trust_code
        self.keras_model: Any = None
        self._signature: Any = None
        self._saved: Any = None
        if not path.exists():
            raise CodegenError(f"{path}: no such file or directory")
        if not path.is_dir() and not path.is_file():  # a FIFO would block the loader
            raise CodegenError(f"{path}: not a regular file or a directory; give a .keras or "
                               ".h5 file or a SavedModel directory")
        if not path.is_dir() and path.suffix.lower() not in _KERAS_SUFFIXES:
            raise CodegenError(
                f"{path}: not a Keras model; give a .keras or .h5 file or a SavedModel "
                "directory"
            )
        import_tensorflow()
        if path.is_dir():
            self._load_saved_model(path)
        else:
            self._load_keras(path)

    # loading

    def _load_keras(self, path: Path) -> None:
        import keras

        version = tuple(int(v) for v in re.findall(r"\d+", keras.__version__)[:3])
        if version < SAFE_KERAS and not self.trust_code:
            raise CodegenError(
                f"{path}: Keras {keras.__version__} cannot load a file safely (its safe mode "
                f"can be bypassed); install keras>={'.'.join(map(str, SAFE_KERAS))}, or pass "
                f"{TRUST_FLAG} if you trust the file")
        try:
            with captured_stderr():
                model = keras.models.load_model(path, compile=False,
                                                safe_mode=not self.trust_code)
        except Exception as exc:
            if "safe_mode" in str(exc):  # Keras refused code in the file
                raise CodegenError(
                    f"{path}: the Keras model holds Python code (a Lambda layer), which "
                    "would run as it loads; codegen loads Keras files in safe mode. If you "
                    f"trust the file, pass {TRUST_FLAG}") from None
            raise CodegenError(
                f"{path}: cannot load the Keras model ({_first_line(exc)})") from None
        try:
            inputs = list(model.inputs)
        except (AttributeError, ValueError, TypeError):
            inputs = []
        if not inputs:
            raise CodegenError(
                f"{path}: the model has no defined inputs; build it with keras.Input(...) "
                "or call it once before saving"
            )
        self.keras_model = model
        self.inputs = [
            InputSpec(_keras_input_name(t, i), tuple(t.shape[1:]), _dtype_name(t.dtype))
            for i, t in enumerate(inputs)
        ]

    def _load_saved_model(self, path: Path) -> None:
        import tensorflow as tf

        if not (path / "saved_model.pb").is_file():
            raise CodegenError(f"{path}: a directory, but not a SavedModel (no saved_model.pb)")
        try:
            with captured_stderr():
                loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise CodegenError(f"{path}: cannot load the SavedModel ({_first_line(exc)})") from None
        signatures = getattr(loaded, "signatures", {})
        if "serving_default" not in signatures:
            raise CodegenError(f"{path}: the SavedModel has no 'serving_default' signature")
        signature = signatures["serving_default"]
        _, kwargs = signature.structured_input_signature
        self._saved = loaded
        self._signature = signature
        self.inputs = [
            InputSpec(name, tuple(spec.shape[1:]), spec.dtype.name)
            for name, spec in sorted(kwargs.items())
        ]

    # running

    def function(self, samples: int | None = 1) -> Any:
        """A tf.function over the model's inputs (positional, in model order) returning a
        list of outputs, traced for a batch of `samples` (None: any batch)."""
        import tensorflow as tf

        specs = [tf.TensorSpec((samples, *spec.shape), spec.dtype, name=_arg_name(spec.name, i))
                 for i, spec in enumerate(self.inputs)]
        if self.keras_model is not None:
            model = self.keras_model
            single = len(self.inputs) == 1

            def call(*xs: Any) -> Any:
                out = model(xs[0] if single else list(xs), training=False)
                return list(out) if isinstance(out, (list, tuple)) else [out]
        else:
            signature = self._signature
            names = [spec.name for spec in self.inputs]

            def call(*xs: Any) -> Any:
                out = signature(**dict(zip(names, xs, strict=True)))
                return [out[k] for k in sorted(out)]

        return tf.function(call).get_concrete_function(*specs)

    def export_batch1(self, directory: Path) -> None:
        """Write a SavedModel whose serving signature takes batches of exactly 1, for the
        converter (a traced batch of 1 keeps shape arithmetic out of the graph)."""
        import tensorflow as tf

        specs = [tf.TensorSpec((1, *spec.shape), spec.dtype, name=_arg_name(spec.name, i))
                 for i, spec in enumerate(self.inputs)]
        if self.keras_model is not None:
            import keras

            # Keras 3 variables are only saved through Keras's own export archive.
            model = self.keras_model
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                                 specs if len(specs) == 1 else [specs])
            archive.write_out(str(directory))
            return
        module = tf.Module()
        module.loaded = self._saved
        signature = self._signature
        names = [spec.name for spec in self.inputs]

        def serve(*xs: Any) -> Any:
            return signature(**dict(zip(names, xs, strict=True)))

        module.serve = tf.function(serve, input_signature=specs)
        tf.saved_model.save(module, str(directory),
                            signatures={"serving_default": module.serve})

    def predict(self, arrays: list[np.ndarray], batch: int = 256) -> list[np.ndarray]:
        """Float outputs for samples shaped (N, *input shape); one array per output."""
        import tensorflow as tf

        fn = self.function(None) if self._batch_is_free() else self.function(1)
        step = batch if self._batch_is_free() else 1
        n = arrays[0].shape[0]
        chunks: list[list[np.ndarray]] = []
        for start in range(0, n, step):
            xs = [tf.constant(a[start:start + step]) for a in arrays]
            chunks.append([np.asarray(o) for o in fn(*xs)])
        return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]

    def _batch_is_free(self) -> bool:
        if self.keras_model is not None:
            return True
        _, kwargs = self._signature.structured_input_signature
        return all(spec.shape.rank and spec.shape[0] is None for spec in kwargs.values())

    def layer_outputs(self, arrays: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
        """Every Keras layer's float output on the samples (functional Keras models only;
        {} otherwise), keyed by layer name, in layer order."""
        if self.keras_model is None:
            return {}
        import keras

        model = self.keras_model
        probes: list[tuple[str, Any]] = []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            try:
                output = layer.output
            except (AttributeError, ValueError, RuntimeError):
                continue  # a layer used twice, or a model without a graph of layers
            outputs = list(output) if isinstance(output, (list, tuple)) else [output]
            probes.append((layer.name, outputs))
        if not probes:
            return {}
        try:
            flat = [o for _, outs in probes for o in outs]
            probe = keras.Model(model.inputs, flat)
            values = probe.predict(arrays[0] if len(arrays) == 1 else arrays, verbose=0,
                                   batch_size=256)
        except Exception:
            return {}
        values = values if isinstance(values, list) else [values]
        result: dict[str, list[np.ndarray]] = {}
        position = 0
        for name, outs in probes:
            result[name] = [np.asarray(v) for v in values[position:position + len(outs)]]
            position += len(outs)
        return result


def _keras_input_name(tensor: Any, index: int) -> str:
    name = getattr(tensor, "name", "") or f"input{index}"
    return name.split(":")[0]


def _arg_name(name: str, index: int) -> str:
    clean = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return clean if clean and not clean[0].isdigit() else f"input{index}"


def _dtype_name(dtype: Any) -> str:
    return getattr(dtype, "name", None) or str(dtype)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# -- calibration data --------------------------------------------------------------------


def load_samples(path: Path, inputs: list[InputSpec],
                 what: str = "calibration data") -> list[np.ndarray]:
    """One float32 array per model input, shaped (N, *input shape), from a .npy (one input)
    or a .npz keyed by input name. Refuses, in one line, data that cannot feed the model."""
    arrays = load_named_arrays(path, [spec.name for spec in inputs], what)
    checked = [_check_samples(path, a, spec, what) for a, spec in zip(arrays, inputs, strict=True)]
    counts = {a.shape[0] for a in checked}
    if len(counts) != 1:
        raise CodegenError(f"{what} {path}: the inputs have different sample counts "
                           f"{sorted(counts)}")
    return checked


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _check_samples(path: Path, array: np.ndarray, spec: InputSpec, what: str) -> np.ndarray:
    label = f"{what} {path}" + (f" ['{spec.name}']" if spec.name else "")
    if array.dtype.kind != "f":
        raise CodegenError(f"{label} is {array.dtype}; it must hold floating-point samples "
                           "(the float model's inputs)")
    if array.ndim == 0 or array.shape[0] == 0 or array.size == 0:
        raise CodegenError(f"{label} is empty (shape {array.shape}); give at least one sample")
    want = spec.shape
    sample = array.shape[1:]
    if len(sample) == len(want) + 1 and sample[0] == 1:
        sample = sample[1:]  # samples given with the model's batch axis of 1
        array = array.reshape(array.shape[0], *sample)
    fits = len(sample) == len(want) and all(
        w is None or w == s for w, s in zip(want, sample, strict=True))
    if not fits:
        expected = _shape_text((None, *want))
        raise CodegenError(
            f"{label} has shape {tuple(array.shape)}, but the model's input '{spec.name}' "
            f"takes samples shaped {_shape_text(want)}: give an array shaped {expected}, "
            "one sample per row"
        )
    if not np.all(np.isfinite(array)):
        raise CodegenError(f"{label} holds NaN or infinite values")
    return np.ascontiguousarray(array, dtype=np.float32)


# -- conversion --------------------------------------------------------------------------


@dataclass
class Quantized:
    model: bytes
    float_model: FloatModel
    samples: list[np.ndarray]
    log: str  # the converter's own output


def quantize_model(model_path: Path, calibration: Path, *, float_io: bool = False,
                   per_tensor: bool = False, trust_code: bool = False,
                   scheme: str = "int8") -> Quantized:
    """Convert the float model with post-training full-integer quantization in `scheme`
    (SCHEMES; `trust_code`: let a Keras file run the Python code it holds)."""
    float_model = FloatModel(model_path, trust_code=trust_code)
    for spec in float_model.inputs:
        if not spec.dtype.startswith("float"):
            raise CodegenError(
                f"{model_path}: input '{spec.name}' is {spec.dtype}; only float inputs can be "
                "calibrated"
            )
    samples = load_samples(calibration, float_model.inputs)
    # Fill dimensions the model leaves open from the data, then trace with batch 1.
    float_model.inputs = [
        InputSpec(spec.name, tuple(int(d) for d in a.shape[1:]), spec.dtype)
        for spec, a in zip(float_model.inputs, samples, strict=True)
    ]
    model, log = _convert(float_model, samples, float_io=float_io, per_tensor=per_tensor,
                          scheme=scheme)
    return Quantized(model, float_model, samples, log)


def _convert(float_model: FloatModel, samples: list[np.ndarray], *, float_io: bool,
             per_tensor: bool, scheme: str = "int8") -> tuple[bytes, str]:
    import tensorflow as tf

    count = samples[0].shape[0]
    terminal = _terminal_stream()
    bar = Progress("calibrating", count, stream=terminal) if terminal is not None else None

    def representative() -> Iterator[list[np.ndarray]]:
        for i in range(count):
            yield [a[i:i + 1] for a in samples]
            if bar is not None:
                bar.advance()

    try:
        with captured_stderr() as log, tempfile.TemporaryDirectory(prefix="codegen-") as tmp:
            try:
                with contextlib.redirect_stdout(log):  # Keras's export prints a summary
                    float_model.export_batch1(Path(tmp))
                converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = representative
                ops, io = SCHEMES[scheme]
                converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, ops)]
                io_type = tf.float32 if float_io else getattr(tf, io)
                converter.inference_input_type = io_type
                converter.inference_output_type = io_type
                if per_tensor:
                    converter._experimental_disable_per_channel = True
                model = bytes(converter.convert())
            except Exception as exc:
                error: Exception | None = exc
            else:
                error = None
    finally:
        if bar is not None:
            bar.close()
        if terminal is not None:
            terminal.close()
    if error is not None:
        raise CodegenError(
            f"TensorFlow could not quantize {float_model.path}: {_first_line(error)}"
        ) from None
    return model, log.getvalue()


def int8_inputs(program: Any, samples: list[np.ndarray]) -> list[np.ndarray]:
    """Float samples as the int8 model takes them: quantized for integer inputs (TFLite's
    rounding, half away from zero, then clamped), unchanged for float inputs."""
    graph = program.graph
    arrays = []
    for index, array in zip(graph.inputs, samples, strict=True):
        tensor = graph.tensors[index]
        array = array.reshape(array.shape[0], *tensor.shape)
        if tensor.dtype.is_integer and tensor.quant is not None:
            q = np.asarray(array, np.float32) / np.float32(tensor.quant.scale)
            q = np.sign(q) * np.floor(np.abs(q) + 0.5) + tensor.quant.zero_point
            array = np.clip(q, tensor.dtype.qmin, tensor.dtype.qmax).astype(tensor.dtype.np)
        arrays.append(array.astype(tensor.dtype.np))
    return arrays


def dequantize(tensor: Any, values: np.ndarray) -> np.ndarray:
    """real = scale * (q - zero_point) for a quantized tensor (per-tensor or per-channel)."""
    if not tensor.dtype.is_integer or tensor.quant is None:
        return np.asarray(values, np.float64)
    q = tensor.quant
    scales = np.asarray(q.scales, np.float64)
    zero_points = np.asarray(q.zero_points, np.float64)
    if q.per_channel:
        shape = [1] * values.ndim
        shape[q.axis + values.ndim - len(tensor.shape)] = -1
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    return scales * (values.astype(np.float64) - zero_points)

"""TensorFlow Lite Micro, the oracle the generated C must match bit for bit.

The pip package `tflite-micro` wraps a host build of TFLM (`_runtime.so`) whose kernels are
TFLM's portable reference kernels: the library holds `tensorflow/lite/micro/kernels/*.cc`
and `reference_ops` / `reference_integer_ops` symbols (e.g.
`reference_integer_ops::FullyConnected<int8>`), and no CMSIS-NN (`arm_*`), Xtensa or other
optimized-kernel code. Its fixed-point requantization is the default double rounding
(`TFLITE_SINGLE_ROUNDING` is not defined); tests/test_quant.py checks that.

`run_tflm` runs batches sample by sample on one interpreter, calling `reset()` before each
sample so that variable tensors cannot carry state from one sample to the next. For models
that keep state, `run_tflm_sequence` runs the samples as one stream of invokes on a fresh
interpreter (the state carried from each to the next, as codegen's reference and C carry
it), and `run_tflm_fresh_each` runs each on a fresh interpreter: the state codegen's
NAME_reset restores, which TFLM's own reset() does not give a model with CALL_ONCE (its
kernel has no reset function, so the initializer does not run again while the resource
variables are cleared).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np

_MIN_ARENA = 1 << 20


def tflm_available() -> bool:
    """True when the `tflite-micro` pip package can be imported."""
    try:
        return importlib.util.find_spec("tflite_micro") is not None
    except ModuleNotFoundError:
        return False


def interpreter(model: bytes, arena_size: int | None = None) -> Any:
    """A TFLM interpreter for `model` with a generous arena (10x the model, at least 1 MiB)."""
    from tflite_micro.python.tflite_micro import runtime

    arena = arena_size if arena_size is not None else max(_MIN_ARENA, 10 * len(model))
    return runtime.Interpreter.from_bytes(bytes(model), arena_size=arena)


def io_counts(model: bytes) -> tuple[int, int]:
    """Number of inputs and outputs of the model's first subgraph, read from the flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    return graph.InputsLength(), graph.OutputsLength()


def _check_inputs(interp: Any, n_inputs: int, inputs: Sequence[np.ndarray]) -> int:
    """Validate the batches against the model's inputs; return the batch size."""
    if len(inputs) != n_inputs:
        raise ValueError(f"model has {n_inputs} inputs, got {len(inputs)} arrays")
    sizes = {len(batch) for batch in inputs}
    if len(sizes) != 1:
        raise ValueError(f"input batches differ in length: {sorted(sizes)}")
    for index, batch in enumerate(inputs):
        detail = interp.get_input_details(index)
        shape = tuple(int(d) for d in detail["shape"])
        if tuple(batch.shape[1:]) != shape or batch.dtype != np.dtype(detail["dtype"]):
            raise ValueError(
                f"input {index}: model wants ({shape}, {np.dtype(detail['dtype'])}) per "
                f"sample, got a batch {batch.shape} {batch.dtype}"
            )
    return sizes.pop()


def run_tflm(model: bytes, inputs: Sequence[np.ndarray],
             arena_size: int | None = None) -> list[np.ndarray]:
    """Run `model` in TFLM on batched inputs; return one batched array per output.

    `inputs[i]` has shape (N, *shape of model input i) (the model's own batch dimension of
    1 included) and the model's dtype. Output i comes back as shape (N, *shape of model
    output i) in the model's dtype.
    """
    return _run(model, inputs, arena_size, reset="reset")


def run_tflm_sequence(model: bytes, inputs: Sequence[np.ndarray],
                      arena_size: int | None = None) -> list[np.ndarray]:
    """run_tflm on one fresh interpreter without resets: the samples are one stream of
    invokes, each seeing the state the one before left."""
    return _run(model, inputs, arena_size, reset="never")


def run_tflm_fresh_each(model: bytes, inputs: Sequence[np.ndarray],
                        arena_size: int | None = None) -> list[np.ndarray]:
    """run_tflm with a new interpreter for every sample (the state after AllocateTensors)."""
    return _run(model, inputs, arena_size, reset="fresh")


def _run(model: bytes, inputs: Sequence[np.ndarray], arena_size: int | None,
         reset: str) -> list[np.ndarray]:
    interp = interpreter(model, arena_size)
    n_inputs, n_outputs = io_counts(model)
    count = _check_inputs(interp, n_inputs, inputs)
    results: list[list[np.ndarray]] = [[] for _ in range(n_outputs)]
    for sample in range(count):
        if reset == "reset":
            interp.reset()
        elif reset == "fresh" and sample:
            interp = interpreter(model, arena_size)
        for index, batch in enumerate(inputs):
            # np.ascontiguousarray would make a scalar 1-D
            interp.set_input(np.require(batch[sample], requirements="C"), index)
        interp.invoke()
        for index in range(n_outputs):
            results[index].append(np.array(interp.get_output(index), copy=True))
    return [_stack(outputs, interp.get_output_details(i)) for i, outputs in enumerate(results)]


def _stack(outputs: list[np.ndarray], detail: dict) -> np.ndarray:
    if outputs:
        return np.stack(outputs)
    shape = tuple(int(d) for d in detail["shape"])
    return np.zeros((0, *shape), dtype=np.dtype(detail["dtype"]))


_FRESH_CHILD = """
import sys
import numpy as np
from support.tflm import run_tflm
directory = sys.argv[1]
with np.load(directory + "/inputs.npz") as data:
    inputs = [data[f"i{k}"] for k in range(len(data.files))]
with open(directory + "/model.tflite", "rb") as f:
    model = f.read()
outputs = run_tflm(model, inputs)
np.savez(directory + "/outputs.npz", **{f"o{k}": a for k, a in enumerate(outputs)})
"""


def run_tflm_fresh(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """run_tflm in a new process, whose interpreter gets a never-used (zero) arena: the
    arena a microcontroller gives TFLM in .bss. For kernels that read memory they never
    initialise (SPACE_TO_BATCH_ND's padding value), which in a long-lived process holds
    whatever an earlier interpreter left there."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    tests_dir = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="codegen-tflm-") as tmp:
        Path(tmp, "model.tflite").write_bytes(bytes(model))
        np.savez(Path(tmp, "inputs.npz"), **{f"i{k}": a for k, a in enumerate(inputs)})
        env = {**os.environ, "PYTHONPATH": tests_dir}
        result = subprocess.run([sys.executable, "-c", _FRESH_CHILD, tmp], env=env,
                                capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            tail = result.stderr.strip().splitlines()[-1:] or ["no message"]
            raise RuntimeError(f"TFLM in a fresh process failed: {tail[0]}")
        with np.load(Path(tmp, "outputs.npz")) as data:
            return [data[f"o{k}"] for k in range(len(data.files))]

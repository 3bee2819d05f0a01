"""`codegen demo`: the whole job on the bundled example MLP.

The model (2 inputs in [0, 1] -> 16 -> 16 -> 1, ReLU, fitted to z = min(1, 4xy)) is trained
and quantized by examples/demo_mlp/train.py. The demo generates its C, runs a batch on the
numpy reference, on the host and on a Cortex-M4 under QEMU, and checks every output byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from codegen.errors import CodegenError
from codegen.execute import REFERENCE, execute
from codegen.generate import generate
from codegen.ops.quantize import quantize_float
from codegen.terminal import shown

DEMO_MODEL = Path(__file__).resolve().parent / "demo_mlp.tflite"
DEMO_NAME = "demo_mlp"
TARGETS = ("host", "cortex-m4")
MAX_SAMPLES = 1_000_000  # a few seconds on every target; more only costs memory and time


def target_function(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.minimum(1.0, 4.0 * x * y)


def _demo_inputs(program, samples: int) -> tuple[np.ndarray, np.ndarray]:
    tensor = program.graph.tensors[program.graph.inputs[0]]
    rng = np.random.default_rng(2024)
    xy = rng.uniform(0.0, 1.0, size=(samples, *tensor.shape)).astype(np.float32)
    q = quantize_float(xy, tensor.quant.scale, tensor.quant.zero_point, -128, 127)
    return xy, q.astype(np.int8)


def _tflm(model: Path) -> Callable[[np.ndarray], np.ndarray] | None:
    """TFLM as a second witness when the test extras are installed."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        return None
    interpreter = runtime.Interpreter.from_bytes(model.read_bytes())

    def run(batch: np.ndarray) -> np.ndarray:
        outs = []
        for sample in batch:
            interpreter.set_input(sample, 0)
            interpreter.invoke()
            outs.append(interpreter.get_output(0).copy())
        return np.stack(outs)

    return run


def _compare(label: str, got: np.ndarray, expected: np.ndarray, seconds: float) -> bool:
    same = int(np.sum(np.all(got.reshape(len(got), -1) == expected.reshape(len(got), -1),
                             axis=1)))
    verdict = "bit-exact" if same == len(got) else "MISMATCH"
    print(f"  {label:<22} {same}/{len(got)} samples equal the reference  "
          f"[{verdict}]  ({seconds:.1f} s)")
    return same == len(got)


def run_demo(out_dir: Path, samples: int = 1000) -> None:
    if not 1 <= samples <= MAX_SAMPLES:
        raise CodegenError(f"--samples {samples}: give 1 to {MAX_SAMPLES}")
    print(f"codegen demo: {DEMO_MODEL.name} (MLP 2 -> 16 -> 16 -> 1 fitted to min(1, 4xy))")
    result = generate(DEMO_MODEL, out_dir, DEMO_NAME)
    program = result.program
    print(f"  generated {', '.join(shown(str(f)) for f in result.files)}: "
          f"{program.constant_bytes} constant bytes, {program.plan.size} arena bytes")

    xy, q_in = _demo_inputs(program, samples)
    reference = execute(program, REFERENCE, [q_in])[0]
    out = program.graph.tensors[program.graph.outputs[0]]
    z = out.quant.scale * (reference.astype(np.float64) - out.quant.zero_point)
    truth = target_function(xy[..., 0], xy[..., 1]).reshape(samples, -1)
    print(f"\n  {'x':>6} {'y':>6} {'min(1,4xy)':>11} {'int8 out':>9} {'dequantized':>12}")
    for i in range(min(6, samples)):
        x, y = xy.reshape(samples, -1)[i]
        print(f"  {x:6.3f} {y:6.3f} {truth[i, 0]:11.4f} {int(reference.reshape(samples)[i]):9d} "
              f"{z.reshape(samples)[i]:12.4f}")
    rmse = float(np.sqrt(np.mean((z.reshape(samples, -1) - truth) ** 2)))
    print(f"  RMS error of the int8 model against the function: {rmse:.4f}\n")

    ok = True
    tflm = _tflm(DEMO_MODEL)
    if tflm is not None:
        start = time.perf_counter()
        ok &= _compare("TFLM (oracle)", tflm(q_in), reference, time.perf_counter() - start)
    for target in TARGETS:
        start = time.perf_counter()
        got = execute(program, target, [q_in])[0]
        ok &= _compare(f"generated C, {target}", got, reference, time.perf_counter() - start)
    if not ok:
        raise CodegenError("demo outputs differ from the reference (see the table above)")
    print("\ndemo passed: the generated C matches the integer reference bit for bit")

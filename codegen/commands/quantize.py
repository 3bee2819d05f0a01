from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import path_arg

COMMAND = "quantize"
HELP = "full-integer post-training quantization of a Keras model (.keras, .h5, SavedModel)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=path_arg,
                        help="float Keras model: .keras, .h5 or a SavedModel directory")
    parser.add_argument("-o", "--output", type=path_arg, required=True,
                        help="the .tflite to write")
    parser.add_argument("--calibration", type=path_arg, required=True, metavar="DATA.npy",
                        help="representative float inputs, one sample per row: (N, *input "
                             "shape); an .npz keyed by input name for several inputs")
    parser.add_argument("--float-io", action="store_true",
                        help="keep float32 input and output (QUANTIZE/DEQUANTIZE in the model)")
    parser.add_argument("--per-tensor", action="store_true",
                        help="one weight scale per tensor instead of one per output channel")
    parser.add_argument("--trust-keras-code", action="store_true",
                        help="let a .keras or .h5 file run the Python code it holds (Lambda "
                             "layers); refused by default (Keras' safe mode)")
    parser.add_argument("--int16", action="store_true",
                        help="16x8: int16 activations (and I/O), int8 weights, int64 biases; "
                             "less quantization error than int8 for about as much flash")


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from codegen.errors import CodegenError
    from codegen.files import check_output_file, write_file_atomically
    from codegen.program import load_program
    from codegen.quantize import CHECK_SAMPLES, dequantize, int8_inputs, quantize_model
    from codegen.reference import run_reference
    from codegen.terminal import shown

    output = Path(args.output)
    check_output_file(output, "-o", ".tflite file")
    scheme = "16x8" if args.int16 else "int8"
    result = quantize_model(Path(args.model), Path(args.calibration), float_io=args.float_io,
                            per_tensor=args.per_tensor, trust_code=args.trust_keras_code,
                            scheme=scheme)
    try:
        program = load_program(result.model)
        problem = None
    except CodegenError as exc:
        program, problem = None, exc
    write_file_atomically(output, lambda stream: stream.write(result.model), "-o",
                          ".tflite file")
    if problem is not None:
        raise CodegenError(f"wrote {output}, but codegen cannot generate C for it: {problem}")

    graph = program.graph
    count = result.samples[0].shape[0]
    weights = "per-tensor" if args.per_tensor else "per-channel"
    io = "float32" if args.float_io else ("int16" if args.int16 else "int8")
    print(f"wrote {shown(str(output))} ({len(result.model)} bytes): {scheme}, {weights} weights, "
          f"{io} I/O, calibrated on {count} samples")
    ops: dict[str, int] = {}
    for layer in program.layers:
        ops[layer.opcode] = ops.get(layer.opcode, 0) + 1
    print(f"  operators: {', '.join(f'{op} x{n}' for op, n in ops.items())}")
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for index in indices:
            t = graph.tensors[index]
            quant = ""
            if t.quant is not None and t.dtype.is_integer:
                quant = f"  scale {t.quant.scale:.6g} zero point {t.quant.zero_point}"
            print(f"  {role:<6} '{shown(t.name)}' {t.dtype.numpy_name}{list(t.shape)}{quant}")

    check = [a[:CHECK_SAMPLES] for a in result.samples]
    expected = result.float_model.predict(check)
    got = run_reference(program, int8_inputs(program, check))
    for i, (index, e, g) in enumerate(zip(graph.outputs, expected, got, strict=True)):
        real = dequantize(graph.tensors[index], g).reshape(len(e), -1)
        e = e.reshape(len(e), -1).astype(np.float64)
        error = np.abs(real - e)
        span = float(e.max() - e.min()) or 1.0
        print(f"  output {i}: {scheme} vs float on {len(e)} calibration samples: "
              f"RMS error {np.sqrt(np.mean(error ** 2)):.4g} "
              f"({100 * np.sqrt(np.mean(error ** 2)) / span:.2f}% of the output range), "
              f"max {error.max():.4g}")

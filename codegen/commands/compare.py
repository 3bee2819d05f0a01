from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import path_arg

COMMAND = "compare"
HELP = ("per layer, where TFLM, LiteRT's reference kernels, LiteRT's default interpreter "
        "and codegen's references differ, and why")


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"at least 1 sample, not {n}")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=path_arg, help="int8-quantized .tflite file")
    parser.add_argument("--data", type=path_arg, metavar="X.npy",
                        help="the samples: .npy shaped (N, *input_shape) in the input's "
                             "integer type, or .npz keyed by input name (default: random "
                             "full-range samples)")
    parser.add_argument("--samples", type=_count, default=None,
                        help="random samples when no --data is given (default 30)")


def run(args: argparse.Namespace) -> None:
    from codegen.arrays import load_named_arrays
    from codegen.compare import DEFAULT_SAMPLES, check_samples, compare_inputs, compare_model
    from codegen.errors import CodegenError
    from codegen.program import load_program

    model_path = Path(args.model)
    program = load_program(model_path)
    if args.data is not None:
        if args.samples is not None:
            raise CodegenError("--samples counts random samples: give it or --data, not both")
        names = [program.graph.tensors[i].name for i in program.graph.inputs]
        inputs = load_named_arrays(Path(args.data), names, "input")
        from codegen.execute import check_inputs

        check_inputs(program, inputs)
        check_samples(program, len(inputs[0]))
    else:
        count = args.samples if args.samples is not None else DEFAULT_SAMPLES
        check_samples(program, count)
        inputs = compare_inputs(program, count)
    print(compare_model(model_path.read_bytes(), model_path.name, inputs).text())

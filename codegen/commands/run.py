from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from codegen.cli_types import add_numerics_argument
from codegen.errors import CodegenError

COMMAND = "run"
HELP = "run a batch of samples on a target (reference, host, Cortex-M under QEMU)"
_SUFFIXES = (".npy", ".npz")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from codegen.cli_types import budget_arg, path_arg
    from codegen.execute import target_names

    parser.add_argument("model", type=path_arg)
    parser.add_argument("--target", required=True, choices=target_names())
    parser.add_argument("--input", required=True, type=path_arg,
                        help=".npy shaped (N, *input_shape), or .npz keyed by input tensor name")
    parser.add_argument("--output", required=True, type=path_arg,
                        help=".npy (or .npz, keyed by output tensor name, for several outputs)"
                             "; replaced atomically")
    parser.add_argument("--ram-budget", type=budget_arg, metavar="BYTES",
                        help="the fastest schedule whose arena fits BYTES (inputs/outputs "
                             "overlapping where the kernels allow); an error names the "
                             "smallest arena reachable when none fits")
    parser.add_argument("--build-dir", type=path_arg,
                        help="keep the generated sources and build here (a new or empty "
                             "directory, or one codegen made before)")
    parser.add_argument("--reset-each", action="store_true",
                        help="for a model that keeps state (SVDF, LSTM, resource variables): "
                             "reset it before every sample instead of carrying it from one "
                             "sample to the next (an error for a model without state)")
    add_numerics_argument(parser)


def load_inputs(path: Path, program) -> list[np.ndarray]:
    from codegen.arrays import load_named_arrays

    names = [program.graph.tensors[i].name for i in program.graph.inputs]
    return load_named_arrays(path, names, "input")


def check_output(path: Path, input_path: Path) -> None:
    """Refuse an --output that cannot be written exactly as given, before any work."""
    from codegen.files import check_output_file

    real = check_output_file(path, "--output", ".npy or .npz file")
    if path.suffix.lower() not in _SUFFIXES:
        raise CodegenError(f"--output {path} must end in .npy (or .npz for several outputs); "
                           "codegen writes exactly the path given")
    if real.exists() and input_path.exists() and os.path.samefile(real, input_path):
        raise CodegenError(f"--output {path} is the input file; give another path")


def save_outputs(path: Path, program, outputs: list[np.ndarray]) -> list[str]:
    """Write the outputs to path, atomically; returns the .npz key of each output (for a
    .npy, the one output's name)."""
    from codegen.arrays import npz_keys, write_npy, write_npz
    from codegen.files import write_file_atomically

    graph = program.graph
    names = [graph.tensors[i].name for i in graph.outputs]
    if Path(path).suffix.lower() != ".npz":
        write_file_atomically(path, lambda stream: write_npy(stream, outputs[0]), "--output",
                              ".npy file")
        return names
    keys = npz_keys(names)
    named = list(zip(keys, outputs, strict=True))
    write_file_atomically(path, lambda stream: write_npz(stream, named), "--output",
                          ".npz file")
    return keys


def run(args: argparse.Namespace) -> None:
    from codegen.execute import check_reset_each, execute
    from codegen.files import check_build_dir
    from codegen.program import load_program

    model, input_path, output = Path(args.model), Path(args.input), Path(args.output)
    check_output(output, input_path)
    work_dir = Path(args.build_dir) if args.build_dir else None
    if work_dir is not None:
        check_build_dir(work_dir, keep=[("the model", model), ("the input file", input_path),
                                        ("the output file", output)])
    program = load_program(model, ram_budget=args.ram_budget, numerics=args.numerics)
    check_reset_each(program, args.reset_each)
    count = len(program.graph.outputs)
    if count > 1 and output.suffix.lower() != ".npz":
        raise CodegenError(f"the model has {count} outputs; give an --output ending in .npz")
    inputs = load_inputs(input_path, program)
    outputs = execute(program, args.target, inputs, work_dir=work_dir, progress=None,
                      reset_each=args.reset_each)
    keys = save_outputs(output, program, outputs)
    n = outputs[0].shape[0]
    print(f"{args.target}: ran {n} sample{'s' if n != 1 else ''}, wrote {output}")
    if output.suffix.lower() == ".npz":
        for i, (index, key) in enumerate(zip(program.graph.outputs, keys, strict=True)):
            name = program.graph.tensors[index].name
            if key != name:
                print(f"  output {i} {name!r} is stored as {key!r} (its name is not a safe, "
                      "unique .npz key)")

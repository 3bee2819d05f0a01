from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codegen.errors import CodegenError

COMMAND = "run"
HELP = "run a batch of samples on a target (reference, host, Cortex-M under QEMU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from codegen.execute import target_names

    parser.add_argument("model")
    parser.add_argument("--target", required=True, choices=target_names())
    parser.add_argument("--input", required=True,
                        help=".npy shaped (N, *input_shape), or .npz keyed by input tensor name")
    parser.add_argument("--output", required=True, help=".npy (or .npz for several outputs)")
    parser.add_argument("--build-dir", help="keep the generated sources and build here (a new "
                                            "or empty directory, or one codegen made before)")


def load_inputs(path: Path, program) -> list[np.ndarray]:
    from codegen.arrays import load_named_arrays

    names = [program.graph.tensors[i].name for i in program.graph.inputs]
    return load_named_arrays(path, names, "input")


def save_outputs(path: Path, program, outputs: list[np.ndarray]) -> None:
    graph = program.graph
    if len(outputs) > 1 and path.suffix != ".npz":
        raise CodegenError(
            f"the model has {len(outputs)} outputs; give an --output ending in .npz"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        named = {graph.tensors[i].name: a for i, a in zip(graph.outputs, outputs, strict=True)}
        np.savez(path, **named)
    else:
        np.save(path, outputs[0])


def run(args: argparse.Namespace) -> None:
    from codegen.execute import execute
    from codegen.files import check_build_dir
    from codegen.program import load_program

    work_dir = Path(args.build_dir) if args.build_dir else None
    if work_dir is not None:
        check_build_dir(work_dir, keep=[("the model", Path(args.model)),
                                        ("the input file", Path(args.input)),
                                        ("the output file", Path(args.output))])
    program = load_program(Path(args.model))
    inputs = load_inputs(Path(args.input), program)
    outputs = execute(program, args.target, inputs, work_dir=work_dir)
    save_outputs(Path(args.output), program, outputs)
    n = outputs[0].shape[0]
    print(f"{args.target}: ran {n} sample{'s' if n != 1 else ''}, wrote {args.output}")

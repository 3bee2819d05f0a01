"""Command line: `codegen generate | run | inspect | demo`.

Every failure the user can cause ends as one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from codegen.errors import CodegenError


def _cmd_generate(args: argparse.Namespace) -> None:
    from codegen.generate import generate

    result = generate(Path(args.model), Path(args.output), args.name)
    program = result.program
    counts: dict[str, int] = {}
    for layer in program.layers:
        counts[layer.opcode] = counts.get(layer.opcode, 0) + 1
    ops = ", ".join(f"{op} x{n}" for op, n in counts.items())
    print(f"wrote {', '.join(str(f) for f in result.files)}")
    print(f"  operators:      {len(program.layers)} ({ops})")
    print(f"  constant bytes: {program.constant_bytes}")
    print(f"  arena bytes:    {program.plan.size} (lower bound {program.plan.lower_bound})")
    print(f"  MACs / invoke:  {program.macs}")


def _load_inputs(path: Path, program) -> list[np.ndarray]:
    graph = program.graph
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CodegenError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CodegenError(f"{path}: not a readable .npy/.npz file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        if len(graph.inputs) != 1:
            names = ", ".join(graph.tensors[i].name for i in graph.inputs)
            raise CodegenError(
                f"the model has {len(graph.inputs)} inputs; pass an .npz keyed by {names}"
            )
        return [loaded]
    with loaded:
        arrays = []
        for i in graph.inputs:
            name = graph.tensors[i].name
            if name not in loaded.files:
                raise CodegenError(f"{path} has no array named '{name}' (has {loaded.files})")
            arrays.append(loaded[name])
        return arrays


def _save_outputs(path: Path, program, outputs: list[np.ndarray]) -> None:
    graph = program.graph
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(outputs) == 1 and path.suffix != ".npz":
        np.save(path, outputs[0])
        return
    if path.suffix != ".npz":
        raise CodegenError(
            f"the model has {len(outputs)} outputs; give an --output ending in .npz"
        )
    np.savez(path, **{graph.tensors[i].name: a for i, a in zip(graph.outputs, outputs,
                                                              strict=True)})


def _cmd_run(args: argparse.Namespace) -> None:
    from codegen.execute import execute
    from codegen.program import load_program

    program = load_program(Path(args.model))
    inputs = _load_inputs(Path(args.input), program)
    work_dir = Path(args.build_dir) if args.build_dir else None
    outputs = execute(program, args.target, inputs, work_dir=work_dir)
    _save_outputs(Path(args.output), program, outputs)
    n = outputs[0].shape[0]
    print(f"{args.target}: ran {n} sample{'s' if n != 1 else ''}, wrote {args.output}")


def _cmd_inspect(args: argparse.Namespace) -> None:
    from codegen.inspect import inspect_model

    print(inspect_model(Path(args.model)))


def _cmd_demo(args: argparse.Namespace) -> None:
    from codegen.demo.run import run_demo

    run_demo(Path(args.output), samples=args.samples)


def _parser() -> argparse.ArgumentParser:
    from codegen.execute import target_names

    parser = argparse.ArgumentParser(
        prog="codegen",
        description="Generate standalone, bit-exact C from int8 TensorFlow Lite models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write NAME.c and NAME.h for a model")
    p.add_argument("model", help="int8-quantized .tflite file")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--name", help="C prefix of every symbol (default: from the file name)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("run", help="run a batch of samples on a target")
    p.add_argument("model")
    p.add_argument("--target", required=True, choices=target_names())
    p.add_argument("--input", required=True,
                   help=".npy shaped (N, *input_shape), or .npz keyed by input tensor name")
    p.add_argument("--output", required=True, help=".npy (or .npz for several outputs)")
    p.add_argument("--build-dir", help="keep the generated sources and build here")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("inspect", help="per-operator table with derived parameters")
    p.add_argument("model")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("demo", help="generate, build and verify the bundled example MLP")
    p.add_argument("-o", "--output", default="codegen-demo",
                   help="directory for the generated C (default: codegen-demo)")
    p.add_argument("--samples", type=int, default=1000)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except CodegenError as exc:
        print(f"codegen: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("codegen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("CODEGEN_DEBUG"):
            raise
        detail = " ".join(str(exc).split())
        print(f"codegen: internal error: {type(exc).__name__}: {detail} "
              "(set CODEGEN_DEBUG=1 for a traceback, and please report it)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import budget_arg, path_arg

COMMAND = "inspect"
HELP = "per-operator table: types, shapes, quantization, derived multipliers and shifts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=path_arg, help="a .tflite file")
    parser.add_argument("--memory", action="store_true",
                        help="show the memory plan: live buffers per step, tensor locations")
    parser.add_argument("--ram-budget", type=budget_arg, metavar="BYTES",
                        help="with --memory: the plan of the fastest schedule whose arena "
                             "fits BYTES")


def run(args: argparse.Namespace) -> None:
    from codegen.inspect import inspect_model, memory_report

    if args.ram_budget is not None and not args.memory:
        from codegen.errors import CodegenError

        raise CodegenError("--ram-budget chooses a memory plan: give it with --memory")
    if args.memory:
        print(memory_report(Path(args.model), args.ram_budget))
    else:
        print(inspect_model(Path(args.model)))

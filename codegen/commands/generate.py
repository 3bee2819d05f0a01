from __future__ import annotations

import argparse
from pathlib import Path

COMMAND = "generate"
HELP = "write NAME.c and NAME.h for a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="int8-quantized .tflite file")
    parser.add_argument("-o", "--output", required=True, help="output directory")
    parser.add_argument("--name", help="C prefix of every symbol (default: from the file name)")


def run(args: argparse.Namespace) -> None:
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

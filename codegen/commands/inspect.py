from __future__ import annotations

import argparse
from pathlib import Path

COMMAND = "inspect"
HELP = "per-operator table: types, shapes, quantization, derived multipliers and shifts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model")


def run(args: argparse.Namespace) -> None:
    from codegen.inspect import inspect_model

    print(inspect_model(Path(args.model)))

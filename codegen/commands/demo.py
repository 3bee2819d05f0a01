from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import path_arg

COMMAND = "demo"
HELP = "generate, build and verify the bundled example MLP on the host and a Cortex-M4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=path_arg, default="codegen-demo",
                        help="directory for the generated C (default: codegen-demo)")
    parser.add_argument("--samples", type=int, default=1000)


def run(args: argparse.Namespace) -> None:
    from codegen.demo.run import run_demo

    run_demo(Path(args.output), samples=args.samples)

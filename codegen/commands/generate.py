from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import add_numerics_argument, budget_arg, path_arg, section_name

COMMAND = "generate"
HELP = "write NAME.c and NAME.h for a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=path_arg, help="int8-quantized .tflite file")
    parser.add_argument("-o", "--output", type=path_arg, required=True, help="output directory")
    parser.add_argument("--name", help="C prefix of every symbol and the files' name "
                                       "(default: the file name made a C identifier, e.g. "
                                       "int.tflite -> int_model)")
    parser.add_argument("--arena-section", metavar="SECTION", type=section_name,
                        help="place the static arena in this linker section (e.g. .sram2; "
                             "letters, digits, '_', '.' and '$')")
    parser.add_argument("--no-static-arena", action="store_true",
                        help="emit only NAME_invoke_with_arena (the caller owns the arena)")
    parser.add_argument("--io-in-arena", action="store_true",
                        help="place the model's inputs and outputs in the arena too "
                             "(smallest RAM; accessors NAME_input0() / NAME_output0())")
    parser.add_argument("--ram-budget", type=budget_arg, metavar="BYTES",
                        help="the fastest schedule whose arena fits BYTES (inputs/outputs "
                             "overlapping where the kernels allow); an error names the "
                             "smallest arena reachable when none fits")
    parser.add_argument("--meson", action="store_true",
                        help="also write a meson.build: the directory becomes a meson "
                             "subproject, dependency('NAME')")
    parser.add_argument("--cmake", action="store_true",
                        help="also write a CMakeLists.txt: the directory becomes a CMake "
                             "library, add_subdirectory() then codegen::NAME")
    parser.add_argument("--arduino", action="store_true",
                        help="write an Arduino library instead: library.properties, "
                             "src/NAME.c, src/NAME.h and the sketch examples/NAME/NAME.ino")
    add_numerics_argument(parser)


def run(args: argparse.Namespace) -> None:
    from codegen import api
    from codegen.terminal import shown

    result = api.generate(Path(args.model), Path(args.output), name=args.name,
                          static_arena=not args.no_static_arena,
                          arena_section=args.arena_section, io_in_arena=args.io_in_arena,
                          meson=args.meson, cmake=args.cmake, arduino=args.arduino,
                          ram_budget=args.ram_budget, numerics=args.numerics)
    ops = ", ".join(f"{op} x{n}" for op, n in result.operators.items())
    print(f"wrote {', '.join(shown(str(f)) for f in result.files)}")
    print(f"  operators:      {sum(result.operators.values())} ({ops})")
    print(f"  constant bytes: {result.constant_bytes} (every core's variants together; a build "
          "keeps its own core's: `codegen bench` measures them)")
    print(f"  arena bytes:    {result.arena_bytes} (lower bound {result.arena_lower_bound})")
    print(f"  MACs / invoke:  {result.macs}")

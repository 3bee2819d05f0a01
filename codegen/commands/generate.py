from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import path_arg, section_name

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
    parser.add_argument("--meson", action="store_true",
                        help="also write a meson.build: the directory becomes a meson "
                             "subproject, dependency('NAME')")


def run(args: argparse.Namespace) -> None:
    from codegen.emit import EmitOptions
    from codegen.generate import check_name, generate
    from codegen.terminal import shown

    if args.name is not None:
        check_name(args.name)  # an empty --name too
    options = EmitOptions(static_arena=not args.no_static_arena,
                          arena_section=args.arena_section)
    extra = None
    if args.meson:  # written together with NAME.c and NAME.h: all or none
        from codegen.library import meson_build_text

        def extra(program, name):
            return {"meson.build": meson_build_text(name, program.source)}

    result = generate(Path(args.model), Path(args.output), args.name, options,
                      io_in_arena=args.io_in_arena, extra_files=extra)
    program = result.program
    counts: dict[str, int] = {}
    for layer in program.layers:
        counts[layer.opcode] = counts.get(layer.opcode, 0) + 1
    ops = ", ".join(f"{op} x{n}" for op, n in counts.items())
    print(f"wrote {', '.join(shown(str(f)) for f in result.files)}")
    print(f"  operators:      {len(program.layers)} ({ops})")
    print(f"  constant bytes: {program.constant_bytes}")
    print(f"  arena bytes:    {program.plan.size} (lower bound {program.plan.lower_bound})")
    print(f"  MACs / invoke:  {program.macs}")

from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import path_arg, section_name

COMMAND = "build"
HELP = "generate the C and compile it into a static library libNAME.a for a target"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from codegen.targets import TARGETS

    parser.add_argument("model", type=path_arg, help="int8-quantized .tflite file")
    parser.add_argument("--target", required=True, choices=list(TARGETS))
    parser.add_argument("-o", "--output", type=path_arg, required=True,
                        help="directory for libNAME.a, NAME.h, NAME.c and meson.build")
    parser.add_argument("--name", help="C prefix of every symbol and the files' name "
                                       "(default: the file name made a C identifier, e.g. "
                                       "int.tflite -> int_model)")
    parser.add_argument("--build-dir", type=path_arg,
                        help="keep the sources and the meson build tree here (a new or empty "
                             "directory, or one codegen made before; default: a temporary "
                             "directory)")
    parser.add_argument("--arena-section", metavar="SECTION", type=section_name,
                        help="place the static arena in this linker section (e.g. .sram2; "
                             "letters, digits, '_', '.' and '$')")


def run(args: argparse.Namespace) -> None:
    from codegen.emit import EmitOptions
    from codegen.generate import check_name
    from codegen.library import build_library
    from codegen.terminal import shown

    if args.name is not None:
        check_name(args.name)  # an empty --name too
    options = EmitOptions(arena_section=args.arena_section)
    lib = build_library(Path(args.model), args.target, Path(args.output), args.name,
                        build_dir=Path(args.build_dir) if args.build_dir else None,
                        options=options)
    fp = lib.footprint
    flags = " ".join(lib.target.machine_flags) or "native compiler"
    print(f"wrote {shown(str(lib.archive))} and {shown(str(lib.header))} "
          f"for {lib.target.name} ({flags})")
    print(f"  flash: {fp.flash:>7} bytes  (code {fp.code}, constants {fp.constants}"
          f"{f', plus {fp.data} of initial data' if fp.data else ''})")
    print(f"  RAM:   {fp.ram:>7} bytes  (data {fp.data}, bss {fp.bss}; the arena is "
          f"{lib.program.plan.size} of it; the stack is not counted)")
    if lib.cross_file is not None:
        print("  link it with the same flags: meson setup ... "
              f"--cross-file {shown(str(lib.cross_file))}")

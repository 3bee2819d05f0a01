from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import add_numerics_argument, budget_arg, path_arg, section_name

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
    parser.add_argument("--ram-budget", type=budget_arg, metavar="BYTES",
                        help="the fastest schedule whose arena fits BYTES (inputs/outputs "
                             "overlapping where the kernels allow); an error names the "
                             "smallest arena reachable when none fits")
    parser.add_argument("--cmake", action="store_true",
                        help="compile with CMake instead of meson, and write CMakeLists.txt "
                             "and (Cortex-M) toolchain.cmake instead of meson.build and "
                             "cross.ini")
    add_numerics_argument(parser)


def run(args: argparse.Namespace) -> None:
    from codegen import api
    from codegen.generate import check_name
    from codegen.terminal import shown

    if args.name is not None:
        check_name(args.name)  # an empty --name too
    lib = api.build(Path(args.model), args.target, Path(args.output), name=args.name,
                    build_dir=Path(args.build_dir) if args.build_dir else None,
                    arena_section=args.arena_section, cmake=args.cmake,
                    ram_budget=args.ram_budget, numerics=args.numerics)
    flags = " ".join(lib.machine_flags) or "native compiler"
    print(f"wrote {shown(str(lib.archive))} and {shown(str(lib.header))} for {lib.target} "
          f"({flags})")
    print(f"  flash: {lib.flash_bytes:>7} bytes  (code {lib.code_bytes}, constants "
          f"{lib.constant_bytes}"
          f"{f', plus {lib.data_bytes} of initial data' if lib.data_bytes else ''})")
    print(f"  RAM:   {lib.ram_bytes:>7} bytes  (data {lib.data_bytes}, bss {lib.bss_bytes}; "
          f"the arena is {lib.arena_bytes} of it"
          f"{f', the state kept between invokes {lib.state_bytes}' if lib.state_bytes else ''}"
          "; the stack is not counted)")
    if lib.cross_file is not None:
        print("  link it with the same flags: meson setup ... "
              f"--cross-file {shown(str(lib.cross_file))}")
    if lib.toolchain_file is not None:
        print("  link it with the same flags: cmake ... "
              f"-DCMAKE_TOOLCHAIN_FILE={shown(str(lib.toolchain_file.resolve()))}")

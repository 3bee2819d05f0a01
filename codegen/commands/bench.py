from __future__ import annotations

import argparse
import json
from pathlib import Path

from codegen.cli_types import add_numerics_argument, budget_arg, path_arg, seconds_arg

COMMAND = "bench"
HELP = ("measure one inference on a target: instructions and modelled cycles (Cortex-M "
        "under QEMU) or wall clock (host), per layer, flash and RAM")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from codegen.bench import DEFAULT_OPTIMIZATION, DEFAULT_TIMEOUT, OPTIMIZATIONS
    from codegen.targets import TARGETS

    parser.add_argument("model", type=path_arg, help="int8-quantized .tflite file")
    parser.add_argument("--target", required=True, choices=list(TARGETS))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--io-in-arena", action="store_true",
                        help="place the model's inputs and outputs in the arena")
    parser.add_argument("--ram-budget", type=budget_arg, metavar="BYTES",
                        help="the fastest schedule whose arena fits BYTES (inputs/outputs "
                             "overlapping where the kernels allow); an error names the "
                             "smallest arena reachable when none fits")
    parser.add_argument("-O", dest="optimization", choices=OPTIMIZATIONS,
                        default=DEFAULT_OPTIMIZATION,
                        help=f"compiler optimization level (default: {DEFAULT_OPTIMIZATION}, "
                             "the level codegen build uses)")
    parser.add_argument("--build-dir", type=path_arg,
                        help="keep the sources and the build here (a new or empty directory, "
                             "or one codegen made before: it is reused by later runs)")
    parser.add_argument("--timeout", type=seconds_arg, default=DEFAULT_TIMEOUT,
                        help=f"seconds the run may take (default: {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--wait-states", type=int, default=0, metavar="N",
                        help="cycle model: N more cycles per flash data read and per "
                             "non-sequential instruction fetch line (default 0)")
    parser.add_argument("--small-multiplier", action="store_true",
                        help="cycle model, cortex-m0: the 32-cycle multiplier option")
    parser.add_argument("--profile", action="store_true",
                        help="also the cycles of every instruction, by function")
    add_numerics_argument(parser)


def run(args: argparse.Namespace) -> None:
    from codegen.bench import bench_model, format_result
    from codegen.cycles import CycleOptions, check_options
    from codegen.progress import Progress
    from codegen.targets import get_target

    options = CycleOptions(wait_states=args.wait_states,
                           small_multiplier=args.small_multiplier)
    check_options(get_target(args.target), options)  # before the model is read
    # One model on one target: the bar shows what runs and for how long (on a terminal).
    with Progress(f"bench {Path(args.model).name} on {args.target}", tick=0.5):
        result = bench_model(Path(args.model), args.target, io_in_arena=args.io_in_arena,
                             ram_budget=args.ram_budget,
                             optimization=args.optimization, timeout=args.timeout,
                             work_dir=Path(args.build_dir) if args.build_dir else None,
                             cycle_options=options, profile=args.profile,
                             numerics=args.numerics)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(format_result(result))

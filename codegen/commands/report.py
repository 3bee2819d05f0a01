from __future__ import annotations

import argparse
from pathlib import Path

from codegen.cli_types import add_numerics_argument, budget_arg, path_arg

COMMAND = "report"
HELP = "HTML report: per-layer cost, memory plan, quantization error against the float model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=path_arg, help="quantized .tflite file (int8 or 16x8)")
    parser.add_argument("-o", "--output", type=path_arg, required=True,
                        help="the HTML file to write")
    parser.add_argument("--float-model", type=path_arg, metavar="KERAS",
                        help="the float model (.keras, .h5 or SavedModel directory) to "
                             "measure the quantization error against")
    parser.add_argument("--data", type=path_arg, metavar="X.npy",
                        help="float inputs for the comparison, (N, *input shape); default: "
                             "random samples over the input range")
    parser.add_argument("--bench", type=path_arg, metavar="BENCH.json",
                        help="benchmark results with per-layer instruction counts")
    parser.add_argument("--trust-keras-code", action="store_true",
                        help="let a .keras or .h5 float model run the Python code it holds "
                             "(Lambda layers); refused by default (Keras' safe mode)")
    parser.add_argument("--compare", type=path_arg, metavar="OTHER.tflite",
                        help="another quantization of the same float model (e.g. the 16x8 "
                             "one beside the int8 one): both errors and responses side by "
                             "side (needs --float-model)")
    parser.add_argument("--ram-budget", type=budget_arg, metavar="BYTES",
                        help="report the fastest schedule whose arena fits BYTES (its "
                             "patches, overlaps and extra MACs)")
    add_numerics_argument(parser)


def run(args: argparse.Namespace) -> None:
    from codegen.files import check_output_file, write_file_atomically
    from codegen.report import build_report
    from codegen.terminal import shown

    output = Path(args.output)
    check_output_file(output, "-o", ".html file")
    report = build_report(
        Path(args.model),
        float_model_path=Path(args.float_model) if args.float_model else None,
        data_path=Path(args.data) if args.data else None,
        bench_path=Path(args.bench) if args.bench else None,
        trust_keras_code=args.trust_keras_code,
        compare_path=Path(args.compare) if args.compare else None,
        ram_budget=args.ram_budget,
        numerics=args.numerics,
    )
    text = report.html()
    write_file_atomically(output, lambda stream: stream.write(text.encode("utf-8")), "-o",
                          ".html file")
    print(report.terminal())
    print(f"\nwrote {shown(str(output))} ({len(text) // 1024} KiB)")

"""Command line entry point: `codegen COMMAND ...`, commands from `codegen.commands`.

Every failure the user can cause ends as one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from codegen import commands
from codegen.errors import CodegenError


class _Parser(argparse.ArgumentParser):
    """A command line that argparse cannot take is a user error like any other: one line,
    exit status 1 (argparse's own is a usage text and 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"codegen: error: {_one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="codegen",
        description="Generate standalone, bit-exact C from int8 TensorFlow Lite models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = sub.add_parser(module.COMMAND, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def _one_line(text: str) -> str:
    """Whitespace runs as one space, other control characters (terminal escapes from a
    hostile file's names) as '?'."""
    return "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = bool(os.environ.get("CODEGEN_DEBUG"))
    try:
        with warnings.catch_warnings():
            if not debug:  # e.g. numpy overflow warnings: the error says what went wrong
                warnings.simplefilter("ignore")
            args.func(args)
    except CodegenError as exc:
        print(f"codegen: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("codegen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `codegen inspect MODEL | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug: still one line, unless debugging
        if debug:
            raise
        detail = _one_line(str(exc))
        print(f"codegen: internal error: {type(exc).__name__}: {detail} "
              "(set CODEGEN_DEBUG=1 for a traceback, and please report it)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

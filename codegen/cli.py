"""Command line entry point: `codegen COMMAND ...`, commands from `codegen.commands`.

Every failure the user can cause ends as one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from codegen import commands
from codegen.errors import CodegenError
from codegen.terminal import EscapingStream, one_line


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake on the command line is one line and exit status 1 like every
    other user error (argparse's own is the usage, the message and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        _say(f"codegen: error: {one_line(message)} (see {one_line(self.prog)} --help)")
        sys.exit(1)


def _say(line: str) -> None:
    print(line, file=EscapingStream(sys.stderr))


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = bool(os.environ.get("CODEGEN_DEBUG"))
    try:
        # Whatever a command prints (names from the model among it) reaches the terminal
        # with its control characters escaped (codegen.terminal).
        with warnings.catch_warnings(), \
                contextlib.redirect_stdout(EscapingStream(sys.stdout)):  # type: ignore[type-var]
            if not debug:  # e.g. numpy overflow warnings: the error says what went wrong
                warnings.simplefilter("ignore")
            args.func(args)
    except CodegenError as exc:
        _say(f"codegen: error: {one_line(str(exc))}")
        return 1
    except KeyboardInterrupt:
        _say("codegen: interrupted")
        return 130
    except BrokenPipeError:  # e.g. `codegen inspect MODEL | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # the system refused a file operation: a path too long, a full
        if debug:          # disk, a missing tool... the user's to fix, not a bug
            raise
        _say(f"codegen: error: {one_line(_os_error(exc))}")
        return 1
    except Exception as exc:  # a bug: still one line, unless debugging
        if debug:
            raise
        _say(f"codegen: internal error: {type(exc).__name__}: {one_line(str(exc))} "
             "(set CODEGEN_DEBUG=1 for a traceback, and please report it)")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

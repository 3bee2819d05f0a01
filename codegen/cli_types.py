"""Argument types shared by the commands: each checks a value when the command line is
parsed, so that a bad one ends in one line before any work is done."""

from __future__ import annotations

import argparse
import math


def section_name(value: str) -> str:
    """--arena-section: a linker section name (it goes into the generated C as it is)."""
    from codegen.emit import section_problem

    problem = section_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def path_arg(text: str) -> str:
    """A file or directory argument: an empty one would silently mean the current
    directory (or, for an optional one, nothing at all)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path names no file; give one")
    return text


def seconds_arg(text: str) -> float:
    """A timeout: finite, above zero, at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= 86400):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0 and "
                                         "at most 86400 (a day)")
    return value


MAX_BUDGET = 1 << 31  # bytes: no microcontroller has more RAM (and the arena is int32-sized)


def check_budget(value: object) -> int:
    """A --ram-budget in bytes: a whole number from 0 to 2 GiB."""
    from codegen.errors import CodegenError

    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BUDGET:
        raise CodegenError(f"--ram-budget {value!r}: give a number of bytes from 0 to "
                           f"{MAX_BUDGET}")
    return value


def budget_arg(text: str) -> int:
    """--ram-budget: bytes of arena, a plain decimal number."""
    shown_text = repr(text) if len(text) <= 24 else f"{text[:12]!r}... ({len(text)} characters)"
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{shown_text} is not a number of bytes (digits "
                                         "only, e.g. 24576)")
    digits = text.lstrip("0") or "0"
    if len(digits) > 12 or int(digits) > MAX_BUDGET:  # never int() of thousands of digits
        raise argparse.ArgumentTypeError(f"{shown_text}: give at most {MAX_BUDGET} bytes")
    return int(digits)


def add_numerics_argument(parser: argparse.ArgumentParser) -> None:
    """`--numerics MODE`, the same on every command that generates or runs C."""
    from codegen.numerics import DEFAULT, MODES

    parser.add_argument("--numerics", choices=MODES, default=DEFAULT,
                        help="whose arithmetic to reproduce bit for bit: tflm (TensorFlow "
                             "Lite Micro, the default), litert-ref (LiteRT's reference "
                             "kernels), litert (LiteRT's default interpreter, XNNPACK); see "
                             "the README's Numerics")

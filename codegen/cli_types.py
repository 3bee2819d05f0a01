"""Argument types shared by the commands: each checks a value when the command line is
parsed, so that a bad one ends in one line before any work is done."""

from __future__ import annotations

import argparse


def section_name(value: str) -> str:
    """--arena-section: a linker section name (it goes into the generated C as it is)."""
    from codegen.emit import section_problem

    problem = section_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value

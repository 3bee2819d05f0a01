"""C loop nests for the kernels that walk several arrays with constant strides.

Python decides everything the template prints: each loop's variable, count and indentation,
and which pointer each loop derives (`a1 = a0 + i1 * 17`). A pointer that does not move at a
level is not redeclared there; the innermost code reads the latest pointer of each array.
templates/kernels/_loops.c.j2 lays the loops out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

INDENT = "    "


@dataclass(frozen=True)
class Pointer:
    name: str
    parent: str
    stride: int


@dataclass(frozen=True)
class Loop:
    var: str
    count: int
    pad: str  # indentation of the `for` line; the loop body is one INDENT deeper
    pointers: tuple[Pointer, ...] = ()


@dataclass
class Nest:
    """Loops (outermost first) and, after them, the current pointer of every array."""

    loops: list[Loop] = field(default_factory=list)
    pointers: list[str] = field(default_factory=list)
    depth: int = 1  # indentation depth of the body inside the innermost loop

    @property
    def pad(self) -> str:
        return INDENT * self.depth


def nest(counts: Sequence[int], strides: Sequence[Sequence[int]], bases: Sequence[str],
         prefixes: Sequence[str], var: str, depth: int = 1,
         start: Nest | None = None) -> Nest:
    """Loops over `counts` (outermost first); at loop j array k advances `strides[j][k]`
    elements from `bases[k]` (or from the pointers of `start`, continuing that nest)."""
    loops = list(start.loops) if start else []
    current = list(start.pointers) if start else list(bases)
    depth = start.depth if start else depth
    for j, (count, steps) in enumerate(zip(counts, strides, strict=True)):
        declared = []
        for k, step in enumerate(steps):
            if step:
                name = f"{prefixes[k]}{len(loops)}"
                declared.append(Pointer(name, current[k], int(step)))
                current[k] = name
        loops.append(Loop(f"{var}{j}", int(count), INDENT * depth, tuple(declared)))
        depth += 1
    return Nest(loops, current, depth)

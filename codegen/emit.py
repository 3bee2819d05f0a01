"""C emission: the Jinja2 environment, and NAME.c / NAME.h from a prepared program.

All decisions are made here in Python (names, pointer expressions, literals); the templates
under `templates/` only lay the text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import jinja2
import numpy as np

from codegen.errors import CodegenError
from codegen.plan import ALIGNMENT as ARENA_ALIGNMENT
from codegen.resources import templates_dir
from codegen.state import HEADER_BYTES as STATE_HEADER_BYTES
from codegen.state import READY as STATE_READY

if TYPE_CHECKING:
    from codegen.model.ir import Tensor
    from codegen.program import Program

_VALUES_PER_LINE = 16
_REQUIRES = re.compile(r"\{#\s*requires:([\w,\s]*)#\}")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["c_float"] = c_float
    env.filters["c_comment"] = c_comment
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def c_float(value: float) -> str:
    """A float32 as the shortest C literal that reads back as the same float."""
    text = np.format_float_scientific(np.float32(value), unique=True, trim="0")
    return f"{text}f"


_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:;+=()\[\]<>#@!%&^~|'/-]")
_COMMENT_MAX = 120


def c_comment(text: object, limit: int | None = _COMMENT_MAX) -> str:
    """Text made safe inside a C block comment (and a meson or shell comment): printable
    ASCII without '*', '\\', '?' or '"' (no end of comment, no line splice, no trigraph,
    no newline), anything else as '_', cut to `limit` characters. Every text from the model
    file (tensor names, the file name) or derived from it goes through here."""
    safe = _COMMENT_UNSAFE.sub("_", str(text))
    if limit is None or len(safe) <= limit:
        return safe
    return safe[:limit - 3] + "..."


# A linker section name as GNU ld and the C attribute take it without quoting: letters,
# digits, '_', '.' and '$' (e.g. .sram2, .bss.$RAM2), at most this long.
_SECTION = re.compile(r"[A-Za-z0-9_.$]+\Z")
SECTION_MAX = 64
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def section_problem(section: str) -> str | None:
    """What is wrong with `section` as a linker section name, or None. It is written into
    __attribute__((section("..."))) and a header comment as it is."""
    if _SECTION.match(section) and len(section) <= SECTION_MAX:
        return None
    return (f"'{c_comment(section, 40)}' is not a linker section name; use 1 to "
            f"{SECTION_MAX} letters, digits, '_', '.' or '$' (e.g. .sram2)")


def check_section_name(section: str) -> str:
    problem = section_problem(section)
    if problem is not None:
        raise CodegenError(f"--arena-section {problem}")
    return section


def _snippet_requirements(name: str) -> list[str]:
    path = templates_dir() / "runtime" / f"{name}.c.j2"
    match = _REQUIRES.search(path.read_text(encoding="utf-8"))
    return [r.strip() for r in match.group(1).split(",") if r.strip()] if match else []


def runtime_snippets(names: Iterable[str]) -> list[str]:
    """The C helper snippets (templates/runtime/NAME.c.j2) the layers need, each once,
    every snippet after those it declares with `{# requires: a, b #}`."""
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise RuntimeError(f"runtime snippets require each other: {(*path, name)}")
        for requirement in _snippet_requirements(name):
            visit(requirement, (*path, name))
        ordered.append(name)

    for name in names:
        visit(name, ())
    return ordered


def c_array_body(values: np.ndarray) -> str:
    items = [str(v) for v in np.asarray(values).ravel().tolist()]
    lines = [
        "    " + ", ".join(items[i:i + _VALUES_PER_LINE]) + ","
        for i in range(0, len(items), _VALUES_PER_LINE)
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class IoTensor:
    """A graph input or output as the C API shows it."""

    param: str  # parameter name in NAME_invoke
    macro: str  # macro stem, e.g. INPUT0
    tensor: Tensor
    offset: int | None = None  # arena offset when inputs and outputs live in the arena
    writable: bool = False  # an output (or an input the caller fills in the arena)

    @property
    def c_type(self) -> str:
        return self.tensor.dtype.c_type

    @property
    def quantized(self) -> bool:
        q = self.tensor.quant
        return q is not None and not q.per_channel and self.tensor.dtype.is_integer


def io_tensors(program: Program) -> tuple[list[IoTensor], list[IoTensor]]:
    g, plan = program.graph, program.plan

    def offset(t: int) -> int | None:
        return plan.locations[t].index if plan.io_in_arena else None

    ins = [IoTensor(f"input{i}", f"INPUT{i}", g.tensors[t], offset(t), plan.io_in_arena)
           for i, t in enumerate(g.inputs)]
    outs = [IoTensor(f"output{i}", f"OUTPUT{i}", g.tensors[t], offset(t), True)
            for i, t in enumerate(g.outputs)]
    return ins, outs


def _invoke_parameters(inputs: list[IoTensor], outputs: list[IoTensor],
                       io_in_arena: bool) -> tuple[str, str]:
    """(C parameter list, argument list) of the model's I/O in NAME_invoke."""
    if io_in_arena:
        return "", ""
    params = [f"const {io.c_type} *{io.param}" for io in inputs]
    params += [f"{io.c_type} *{io.param}" for io in outputs]
    return ", ".join(params), ", ".join(io.param for io in inputs + outputs)


@dataclass(frozen=True)
class EmitOptions:
    """Choices about the generated API that do not change the arithmetic."""

    static_arena: bool = True  # emit a static arena and NAME_invoke (else only _with_arena)
    arena_section: str | None = None  # linker section of the static arena
    # Debugging/testing: every arena buffer becomes its own static array, so that
    # AddressSanitizer catches a kernel that writes outside its planned buffer.
    debug_buffers: bool = False

    def __post_init__(self) -> None:
        if self.arena_section is None:
            return
        check_section_name(self.arena_section)
        if not self.static_arena:
            raise CodegenError("--arena-section places the static arena, which "
                               "--no-static-arena leaves out; drop one of them")


def _debug_buffer_of(program: Program) -> dict[int, int]:
    """tensor -> number of its arena buffer (debug_buffers mode). Buffers that hold a model
    input or output stay in the arena (the caller fills and reads them there)."""
    io = set(program.graph.inputs) | set(program.graph.outputs)
    return {t: i for i, buf in enumerate(program.plan.buffers) for t in buf.tensors
            if not io & set(buf.tensors)}


def _pointer(program: Program, tensor_index: int, writable: bool, debug: bool) -> str:
    location = program.plan.locations[tensor_index]
    c_type = program.graph.tensors[tensor_index].dtype.c_type
    qualifier = "" if writable else "const "
    if location.kind in ("input", "output"):
        io = program.graph.inputs if location.kind == "input" else program.graph.outputs
        caller = f"{location.kind}{location.index}"
        # A tensor placed in a caller buffer of another type (an int8 tensor computed in
        # place in a uint8 output, before the QUANTIZE that converts it) needs a cast.
        if program.graph.tensors[io[location.index]].dtype.c_type != c_type:
            return f"({qualifier}{c_type} *){caller}"
        return caller
    if location.kind == "state":
        return f"({qualifier}{c_type} *)(state + {location.index})"
    buffer = _debug_buffer_of(program).get(tensor_index) if debug else None
    if buffer is not None:
        address = f"debug_buffer_{buffer}"
    else:
        address = f"arena + {location.index}"
    return f"({qualifier}{c_type} *)({address})"


def _reads_arena(program: Program, layer, debug: bool) -> bool:
    """Whether the layer's call addresses `arena` (a tensor or its scratch there): a model
    of views only, its inputs and outputs in the arena, calls nothing that does."""
    locations = program.plan.locations
    debug_of = _debug_buffer_of(program) if debug else {}
    tensors = (*layer.inputs, *layer.outputs)
    if any(locations[t].kind == "arena" and t not in debug_of for t in tensors):
        return True
    return layer.index in program.plan.scratch and not debug


def _debug_buffers(program: Program, running: list) -> list[dict[str, object]]:
    """One static array per arena buffer and per scratch buffer that a running layer uses
    (debug_buffers mode)."""
    debug_of = _debug_buffer_of(program)
    numbers = {debug_of[t] for layer in running for t in (*layer.inputs, *layer.outputs)
               if t in debug_of}
    arrays: list[dict[str, object]] = [
        {"name": f"debug_buffer_{i}", "size": buf.size}
        for i, buf in enumerate(program.plan.buffers) if i in numbers
    ]
    arrays += [
        {"name": f"debug_scratch_{layer.index}", "size": layer.scratch_bytes()}
        for layer in program.layers if layer.index in program.plan.scratch
    ]
    return arrays


def _layer_context(program: Program, layer, name: str, debug: bool) -> dict[str, object]:
    symbol = layer.symbol(name)
    updated = layer.state_updates()
    args = [_pointer(program, t, k in updated, debug) for k, t in enumerate(layer.inputs)]
    args += [_pointer(program, t, True, debug) for t in layer.outputs]
    if layer.index in program.plan.scratch:
        offset = program.plan.scratch[layer.index]
        address = f"debug_scratch_{layer.index}" if debug else f"arena + {offset}"
        args.append(f"(void *)({address})")
    constants = [
        {"c_type": a.c_type, "name": f"{symbol}_{a.name}", "count": a.values.size,
         "body": c_array_body(a.values)}
        for a in layer.constants()
    ]
    return {
        "symbol": symbol,
        "call": f"{symbol}({', '.join(args)})",
        "constants": constants,
        "kernel": layer.kernel(symbol).rstrip() + "\n",
        "summary": _layer_summary(program, layer),
    }


def _state_context(program: Program, name: str) -> dict[str, object]:
    """What the templates need of the state block (codegen/state.py): its size and
    alignment, and how a reset fills each region."""
    state = program.state
    if state is None:
        return {"state_size": 0}
    regions = []
    for k, region in enumerate(state.regions):
        initial = None
        if region.initial is not None:
            initial = {"name": f"{name}_state_init{k}", "count": region.size,
                       "body": c_array_body(np.frombuffer(region.initial, dtype=np.uint8))}
        regions.append({"offset": region.offset, "size": region.size, "fill": region.fill,
                        "kind": region.kind, "name": c_comment(region.name, 60),
                        "initial": initial})
    return {"state_size": state.size, "state_alignment": state.alignment,
            "state_regions": regions, "state_header": STATE_HEADER_BYTES,
            "state_ready": STATE_READY}


def emit_model(program: Program, name: str,
               options: EmitOptions | None = None) -> dict[str, str]:
    """Render NAME.h and NAME.c; returns {file name: text}."""
    options = options or EmitOptions()
    if not _IDENTIFIER.match(name):  # the CLI checks it too (codegen.generate.check_name)
        raise CodegenError(f"the name '{c_comment(name, 40)}' is not a C identifier")
    inputs, outputs = io_tensors(program)
    io_in_arena = program.plan.io_in_arena
    params, args = _invoke_parameters(inputs, outputs, io_in_arena)
    running = [layer for layer in program.layers if layer.index not in program.plan.elided]
    context = {
        "name": name,
        "NAME": name.upper(),
        "source": c_comment(program.source),
        "inputs": inputs,
        "outputs": outputs,
        "layers": [_layer_context(program, layer, name, options.debug_buffers)
                   for layer in running],
        "debug_buffers": _debug_buffers(program, running) if options.debug_buffers else [],
        "aliased": [_layer_summary(program, layer) for layer in program.layers
                    if layer.index in program.plan.elided],
        "uses_arena": any(_reads_arena(program, layer, options.debug_buffers)
                          for layer in running),
        **_state_context(program, name),
        "runtime": runtime_snippets(n for layer in running for n in layer.runtime),
        "arena_size": program.plan.size,
        "arena_alignment": ARENA_ALIGNMENT,
        "static_arena": options.static_arena,
        "io_in_arena": io_in_arena,
        "invoke_params": params,
        "invoke_args": args,
        "arena_section": options.arena_section,
        "constant_bytes": program.constant_bytes,
        "opcodes": c_comment(", ".join(layer.opcode for layer in program.layers), None),
    }
    return {
        f"{name}.h": render("model.h.j2", **context),
        f"{name}.c": render("model.c.j2", **context),
    }


def _layer_summary(program: Program, layer) -> str:
    ins = ", ".join(program.graph.tensors[t].describe() for t in layer.inputs)
    outs = ", ".join(program.graph.tensors[t].describe() for t in layer.outputs)
    return c_comment(f"Layer {layer.index}: {layer.opcode}  {ins} -> {outs}", None)

"""C emission: the Jinja2 environment, and NAME.c / NAME.h from a prepared program.

All decisions are made here in Python (names, pointer expressions, literals); the templates
under `templates/` only lay the text out.

NAME.c is never held in memory whole: `emit_files` returns `GeneratedText`s that render it
piece by piece (a layer, a block of a constant array) as the writer consumes them, so the
memory of generation does not grow with the output, and the output's size is bounded by
`output_limit` of the model file's size.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache, lru_cache
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
    from codegen.ops.base import CArray
    from codegen.program import Program

_VALUES_PER_LINE = 16
_LINES_PER_BLOCK = 4096  # a constant array is formatted this many lines at a time
_SMALL_ARRAY_BYTES = 4096  # formatted bodies of arrays up to this size are reused
_REQUIRES = re.compile(r"\{#\s*requires:([\w,\s]*)#\}")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,  # the templates do not change while codegen runs
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["c_float"] = c_float
    env.filters["c_double"] = c_double
    env.filters["c_comment"] = c_comment
    env.globals["share"] = share
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
    # NAME.ARG1.ARG2...: templates/runtime/NAME.c.j2 instantiated with `variant` [ARG1, ...]
    path = templates_dir() / "runtime" / f"{name.split('.')[0]}.c.j2"
    match = _REQUIRES.search(path.read_text(encoding="utf-8"))
    return [r.strip() for r in match.group(1).split(",") if r.strip()] if match else []


def runtime_snippets(names: Iterable[str]) -> list[str]:
    """The C helper snippets (templates/runtime/NAME.c.j2) the layers need, each once,
    every snippet after those it declares with `{# requires: a, b #}`. A name NAME.A.B is
    NAME.c.j2 rendered with `variant` = ["A", "B"] (one instance per variant)."""
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
    """The initializer lines of a C array (16 values a line, each line ending in a comma),
    without a final newline."""
    return "".join(c_array_lines(values))[:-1]


def c_array_lines(values: np.ndarray) -> Iterator[str]:
    """c_array_body plus a newline, in blocks of lines: an array of millions of values is
    never one string (nor a list of millions of strings)."""
    flat = np.asarray(values).ravel()
    if flat.nbytes <= _SMALL_ARRAY_BYTES:  # tables repeated in many layers: formatted once
        yield _small_array_lines(flat.dtype.str, flat.tobytes())
        return
    yield from _array_blocks(flat)


@lru_cache(maxsize=256)
def _small_array_lines(dtype: str, data: bytes) -> str:
    return "".join(_array_blocks(np.frombuffer(data, dtype=dtype)))


def c_double(value: float) -> str:
    """A double as a C99 hexadecimal literal: every bit of it, whatever the compiler's
    decimal conversion (the float requantization of the numerics modes)."""
    return float(value).hex()


def _items(block: np.ndarray) -> tuple[object, ...]:
    """A block's values as the `%s`/`%d` arguments: float32 as shortest C literals, doubles
    as hexadecimal ones."""
    if block.dtype == np.float64:
        return tuple(c_double(v) for v in block.tolist())
    if block.dtype.kind == "f":
        return tuple(c_float(v) for v in block.tolist())
    return tuple(block.tolist())


def _array_blocks(flat: np.ndarray) -> Iterator[str]:
    full = flat.size - flat.size % _VALUES_PER_LINE
    spec = "%s" if flat.dtype.kind == "f" else "%d"
    line = "    " + ", ".join([spec] * _VALUES_PER_LINE) + ",\n"
    step = _VALUES_PER_LINE * _LINES_PER_BLOCK
    for start in range(0, full, step):
        block = flat[start:min(full, start + step)]
        yield (line * (block.size // _VALUES_PER_LINE)) % _items(block)
    if full < flat.size:
        rest = flat[full:]
        yield "    " + ", ".join([spec] * rest.size) % _items(rest) + ",\n"
    if flat.size == 0:
        yield "\n"


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
    """tensor -> number of its arena buffer (debug_buffers mode): buffers at fixed
    distances from each other (a group) take the number of the group's first, and so do
    buffers of the same extent of the arena (a streamed stage's steps write their bands
    there in turn: their calls stay the same, one loop). Buffers that hold a model input
    or output stay in the arena (the caller fills and reads them there), with the rest of
    their group."""
    io = set(program.graph.inputs) | set(program.graph.outputs)
    buffers = program.plan.buffers
    first_of: dict[int, int] = {}
    in_arena: set[int] = set()
    for i, buf in enumerate(buffers):
        key = buf.group if buf.group >= 0 else -1 - i
        first_of.setdefault(key, i)
        if io & set(buf.tensors):
            in_arena.add(key)
    same_extent: dict[tuple[int, int], int] = {}
    number = {key: same_extent.setdefault(_debug_extent(program, first), first)
              for key, first in first_of.items() if key not in in_arena}
    return {t: number[key] for i, buf in enumerate(buffers)
            for key in [buf.group if buf.group >= 0 else -1 - i]
            if key not in in_arena for t in buf.tensors}


def _debug_extent(program: Program, number: int) -> tuple[int, int]:
    """(arena offset, size) of debug buffer `number`: its buffer, or its whole group."""
    buffers = program.plan.buffers
    group = buffers[number].group
    members = [b for b in buffers if b.group == group] if group >= 0 else [buffers[number]]
    start = min(b.offset for b in members)
    return start, max(b.offset + b.size for b in members) - start


@dataclass(frozen=True)
class _Pointer:
    """A call's pointer argument: C text with `{}` where an offset goes (elements of a
    caller's buffer, bytes of the arena or of a debug buffer), the offset, and the text at
    offset 0 when it leaves the offset out. Steps of a streamed stage differ only in
    offsets that advance by a constant stride (`looped`)."""

    form: str
    offset: int = 0
    bare: str | None = None

    @property
    def text(self) -> str:
        if self.offset == 0 and self.bare is not None:
            return self.bare
        return self.form.format(self.offset)

    def looped(self, stride: int, index: str) -> str:
        """The text at step `index` of a loop whose steps advance it by `stride`."""
        if stride == 0:
            return self.text
        # the loop index is unsigned: a receding pointer subtracts from its first offset
        if stride < 0:
            return self.form.format(f"{self.offset} - {-stride} * {index}")
        start = f"{self.offset} + " if self.offset else ""
        return self.form.format(f"{start}{stride} * {index}")


def _pointer(program: Program, tensor_index: int, writable: bool,
             debug_of: dict[int, int]) -> _Pointer:
    location = program.plan.locations[tensor_index]
    c_type = program.graph.tensors[tensor_index].dtype.c_type
    qualifier = "" if writable else "const "
    if location.kind in ("input", "output"):
        io = program.graph.inputs if location.kind == "input" else program.graph.outputs
        caller = f"{location.kind}{location.index}"
        # A tensor placed in a caller buffer of another type (an int8 tensor computed in
        # place in a uint8 output, before the QUANTIZE that converts it) needs a cast.
        if program.graph.tensors[io[location.index]].dtype.c_type != c_type:
            caller = f"({qualifier}{c_type} *){caller}"
        # a band of rows of it (patch-based schedules: int8), in elements
        item = program.graph.tensors[tensor_index].nbytes // max(
            1, program.graph.tensors[tensor_index].size)
        return _Pointer(f"({caller} + {{}})", location.offset // item, caller)
    if location.kind == "state":
        return _Pointer(f"({qualifier}{c_type} *)(state + {{}})", location.index)
    buffer = debug_of.get(tensor_index)
    if buffer is not None:
        # a tensor overlapping another one in its group sits at an offset inside it
        inside = location.index - _debug_extent(program, buffer)[0]
        base, address, bare = f"debug_buffer_{buffer}", f"debug_buffer_{buffer} + {{}}", True
    else:
        inside, base, address, bare = location.index, "", "arena + {}", False
    if c_type == "float":  # float tensors in the arena (around DETECTION_POSTPROCESS):
        # through void *, which cppcheck accepts from bytes (the arena is aligned for them)
        cast = f"({qualifier}float *)({qualifier}void *)"
    else:
        cast = f"({qualifier}{c_type} *)"
    return _Pointer(f"{cast}({address})", inside, f"{cast}({base})" if bare else None)


def _reads_arena(program: Program, layer, debug: bool, debug_of: dict[int, int]) -> bool:
    """Whether the layer's call addresses `arena` (a tensor or its scratch there): a model
    of views only, its inputs and outputs in the arena, calls nothing that does."""
    locations = program.plan.locations
    tensors = (*layer.inputs, *layer.outputs)
    if any(locations[t].kind == "arena" and t not in debug_of for t in tensors):
        return True
    return layer.index in program.plan.scratch and not debug


def _scratch_owners(program: Program, running: list, name: str) -> dict[str, int]:
    """C function -> the index of its first layer with a scratch buffer (debug_buffers
    mode): the calls of one function (the bands of a patch-based stage) share the static
    array `debug_scratch_<index>`, so that the steps of a stream stay one loop."""
    owners: dict[str, int] = {}
    for layer in running:
        if layer.index in program.plan.scratch:
            owners.setdefault(layer.symbol(name), layer.index)
    return owners


def _debug_buffers(program: Program, running: list, debug_of: dict[int, int],
                   name: str) -> list[dict[str, object]]:
    """One static array per arena buffer and per scratch buffer that a running layer uses
    (debug_buffers mode), a scratch array per C function (its largest)."""
    numbers = {debug_of[t] for layer in running for t in (*layer.inputs, *layer.outputs)
               if t in debug_of}
    arrays: list[dict[str, object]] = [
        {"name": f"debug_buffer_{i}", "size": _debug_extent(program, i)[1]}
        for i in range(len(program.plan.buffers)) if i in numbers
    ]
    owners = _scratch_owners(program, running, name)
    sizes: dict[int, int] = {}
    for layer in running:
        if layer.index in program.plan.scratch:
            owner = owners[layer.symbol(name)]
            sizes[owner] = max(sizes.get(owner, 0), layer.scratch_bytes())
    arrays += [{"name": f"debug_scratch_{owner}", "size": size}
               for owner, size in sizes.items()]
    return arrays


@dataclass(frozen=True)
class _ConstantArray:
    c_type: str
    name: str
    count: int
    values: np.ndarray
    guard: str = ""
    alias: str | None = None  # an identical array emitted before: a #define to it instead

    @property
    def body(self) -> Iterator[str]:
        return c_array_lines(self.values)


@dataclass
class _Emitted:
    """What this rendering of the file has emitted: the name of the first array of each
    CArray.identity, and of the first function of each text (`share`)."""

    arrays: dict[tuple[str, str, int, bytes], str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)


def _deduplicated(array: CArray, name: str, emitted: _Emitted) -> _ConstantArray:
    """The array named `name`, or an alias of the first array of its identity (C type,
    guard, values) emitted in this file (the bands of a patch-based stage, one C function
    per band shape, share their weights, biases and requantization constants): one copy
    in flash."""
    first = emitted.arrays.setdefault(array.identity, name)
    return _ConstantArray(array.c_type, name, array.values.size, array.values, array.guard,
                          None if first == name else first)


# A function a kernel template defines through `share`: its C text under a given name (a
# Jinja macro of the name).
Define = Callable[[str], str]
_SHARED: ContextVar[dict[str, str] | None] = ContextVar("shared_functions", default=None)
_NEUTRAL_NAME = "cg_shared_function"


def share(name: str, define: Define) -> str:
    """The C text that gives a kernel (a template's `share(name, macro)`) the function
    `name`, `define(name)`: that definition where the file has no function of the same
    text yet (compared under one neutral name: every character but the name counts), else
    a #define of `name` to the first one's name (a streamed layer's bands share one row
    function). Kernels that may share a text call this under the same preprocessor
    conditions. Outside `sharing` (a kernel rendered alone) always the definition."""
    emitted = _SHARED.get()
    if emitted is None:
        return str(define(name))
    first = emitted.setdefault(str(define(_NEUTRAL_NAME)), name)
    if first == name:
        return str(define(name))
    return f"/* the same text as {first}: defined once */\n#define {name} {first}\n"


@contextmanager
def sharing(functions: dict[str, str]) -> Iterator[None]:
    """`share` inside records the functions it defines in `functions` (text under the
    neutral name -> name): one file's record, kept across its layers' kernels."""
    token = _SHARED.set(functions)
    try:
        yield
    finally:
        _SHARED.reset(token)


class _LayerText:
    """What model.c.j2 shows of one running layer, each part computed when the template
    reaches it (and not kept): the call is cheap, the constants and kernel are not."""

    def __init__(self, program: Program, layer, name: str, debug: bool,
                 debug_of: dict[int, int], scratch_owners: dict[str, int],
                 emitted: _Emitted) -> None:
        self._program, self._layer, self._debug = program, layer, debug
        self._emitted = emitted  # shared by the layers of one rendering of the file
        self.symbol = layer.symbol(name)
        updated = layer.state_updates()
        args = [_pointer(program, t, k in updated, debug_of)
                for k, t in enumerate(layer.inputs)]
        args += [_pointer(program, t, True, debug_of) for t in layer.outputs]
        if layer.index in program.plan.scratch:
            offset = program.plan.scratch[layer.index]
            if debug:  # one array per C function: its calls (bands of a stage) share it
                owner = scratch_owners[self.symbol]
                args.append(_Pointer(f"(void *)(debug_scratch_{owner})"))
            else:
                args.append(_Pointer("(void *)(arena + {})", offset))
        self.pointers: tuple[_Pointer, ...] = tuple(args)

    @property
    def call(self) -> str:
        return f"{self.symbol}({', '.join(p.text for p in self.pointers)})"

    @property
    def constants(self) -> list[_ConstantArray]:
        return [_deduplicated(a, f"{self.symbol}_{a.name}", self._emitted)
                for a in self._layer.constants()]

    @property
    def kernel(self) -> str:
        with sharing(self._emitted.functions):
            return self._layer.kernel(self.symbol).rstrip() + "\n"

    @property
    def summary(self) -> str:
        return _layer_summary(self._program, self._layer)


class _Layers:
    """The running layers as model.c.j2 iterates them (twice: definitions, then calls):
    a _LayerText made afresh for each, so that no more than one is alive at a time. Each
    iteration (each rendering of the file) starts a new record of the constant arrays and
    shared functions emitted, which the layers' texts share."""

    def __init__(self, make: Callable[[object, _Emitted], _LayerText], running: list) -> None:
        self._make, self._running = make, running

    def __len__(self) -> int:
        return len(self._running)

    def __iter__(self) -> Iterator[_LayerText]:
        emitted = _Emitted()
        return (self._make(layer, emitted) for layer in self._running)


_LOOP_INDEX = "step"
_PERIODS_TRIED = 4  # candidate step lengths at a layer: the next recurrences of its call


@dataclass(frozen=True)
class _Call:
    mark: str  # the argument of CODEGEN_PROFILE_LAYER: the layer's number among the running
    text: str


@dataclass(frozen=True)
class _Run:
    """Calls in model_invoke: one, or a loop of `steps` steps of the same calls whose
    pointers advance by a constant stride per step."""

    steps: int
    calls: tuple[_Call, ...]


def _shape(text: _LayerText) -> tuple[object, ...]:
    return (text.symbol, tuple((p.form, p.bare) for p in text.pointers))


def _offsets(text: _LayerText) -> tuple[int, ...]:
    return tuple(p.offset for p in text.pointers)


class _Calls:
    """The calls' shapes (function and pointer forms) and offsets, and the loops that
    repeat them: a loop of `steps` steps of `period` calls from `start` makes the same
    calls each step, each pointer's offset advancing by the same stride every step."""

    def __init__(self, texts: list[_LayerText]) -> None:
        self.texts = texts
        self.shapes = [_shape(t) for t in texts]
        self.offsets = [_offsets(t) for t in texts]
        self._at: dict[tuple[object, ...], list[int]] = {}
        for k, shape in enumerate(self.shapes):
            self._at.setdefault(shape, []).append(k)

    def periods(self, start: int) -> list[int]:
        """Distances to the next recurrences of the call at `start` (the loop's step
        lengths worth trying)."""
        at = self._at[self.shapes[start]]
        k = bisect.bisect_right(at, start)
        return [j - start for j in at[k:k + _PERIODS_TRIED]]

    def _moved(self, first: int, second: int) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.offsets[first], self.offsets[second],
                                           strict=True))

    def steps(self, start: int, period: int) -> int:
        """How many steps of `period` calls from `start` repeat the first."""
        steps = 1
        while start + (steps + 1) * period <= len(self.texts):
            base = start + steps * period
            if any(self.shapes[start + j] != self.shapes[base + j]
                   or (steps > 1 and self._moved(base - period + j, base + j)
                       != self._moved(start + j, start + period + j))
                   for j in range(period)):
                break
            steps += 1
        return steps

    def loop(self, start: int, period: int, steps: int) -> _Run:
        calls = []
        for j, text in enumerate(self.texts[start:start + period]):
            strides = self._moved(start + j, start + period + j)
            args = ", ".join(p.looped(d, _LOOP_INDEX)
                             for p, d in zip(text.pointers, strides, strict=True))
            calls.append(_Call(f"{start + j} + {period} * {_LOOP_INDEX}",
                               f"{text.symbol}({args})"))
        return _Run(steps, tuple(calls))


def invoke_runs(texts: list[_LayerText]) -> Iterator[_Run]:
    """The running layers' calls as model_invoke makes them: runs of identical steps (a
    streamed stage's middle steps: the same band functions on the same windows, the views
    of its input and output advancing) as loops, chosen to leave the fewest calls in the
    text, any other call as it is. Models without repeated calls (every schedule without a
    budget) keep one call a layer."""
    calls = _Calls(texts)
    n = len(texts)
    saved = [0] * (n + 1)  # calls saved from position k to the end, at best
    choice: list[tuple[int, int]] = [(1, 1)] * n  # (period, steps) at k; (1, 1): a call
    for start in range(n - 1, -1, -1):
        saved[start] = saved[start + 1]
        for period in calls.periods(start):
            for steps in range(2, calls.steps(start, period) + 1):
                total = period * (steps - 1) + saved[start + period * steps]
                if total > saved[start]:
                    saved[start], choice[start] = total, (period, steps)
    start = 0
    while start < n:
        period, steps = choice[start]
        if steps > 1:
            yield calls.loop(start, period, steps)
        else:
            yield _Run(1, (_Call(str(start), texts[start].call),))
        start += period * steps


class _Invoke:
    """model_invoke's runs of calls (`invoke_runs`), found each time the template reaches
    them."""

    def __init__(self, layers: _Layers) -> None:
        self._layers = layers

    def __iter__(self) -> Iterator[_Run]:
        return invoke_runs(list(self._layers))


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


# The generated C is bounded by the model file: a few characters per byte of constant data
# (an int8 weight takes at most 6, "-128, "), and a few kilobytes of code per operator (at
# most MAX_OPERATORS of them). A small file that would make far more (tables that grow with
# the tensors' shapes, not with the file) is refused.
OUTPUT_PER_MODEL_BYTE = 16
OUTPUT_SLACK = 256 << 20


def output_limit(model_bytes: int) -> int:
    """The most characters codegen writes to one generated file for a model file of
    `model_bytes` bytes."""
    return OUTPUT_PER_MODEL_BYTE * model_bytes + OUTPUT_SLACK


class GeneratedText:
    """A generated text file, rendered piece by piece each time it is iterated (the writer
    streams it to disk; it can be written more than once). At most `limit` characters:
    rendering more raises a CodegenError, and the all-or-nothing writer writes nothing."""

    def __init__(self, name: str, pieces: Callable[[], Iterator[str]], limit: int,
                 source: str) -> None:
        self.name, self._pieces, self.limit, self._source = name, pieces, limit, source

    def __iter__(self) -> Iterator[str]:
        written = 0
        for piece in self._pieces():
            written += len(piece)
            if written > self.limit:
                raise CodegenError(
                    f"{self._source}: the generated {self.name} would be larger than "
                    f"{self.limit} bytes ({OUTPUT_PER_MODEL_BYTE} x the model file's size + "
                    f"{OUTPUT_SLACK >> 20} MiB), far more than a microcontroller model "
                    "needs; nothing was written")
            yield piece

    def __str__(self) -> str:
        return "".join(self)


def emit_files(program: Program, name: str,
               options: EmitOptions | None = None) -> dict[str, GeneratedText]:
    """NAME.h and NAME.c as GeneratedTexts: rendered as they are written."""
    options = options or EmitOptions()
    if not _IDENTIFIER.match(name):  # the CLI checks it too (codegen.generate.check_name)
        raise CodegenError(f"the name '{c_comment(name, 40)}' is not a C identifier")
    inputs, outputs = io_tensors(program)
    io_in_arena = program.plan.io_in_arena
    params, args = _invoke_parameters(inputs, outputs, io_in_arena)
    running = [layer for layer in program.layers if layer.index not in program.plan.elided]
    debug = options.debug_buffers
    debug_of = _debug_buffer_of(program) if debug else {}
    owners = _scratch_owners(program, running, name) if debug else {}

    def make(layer, emitted: _Emitted) -> _LayerText:
        return _LayerText(program, layer, name, debug, debug_of, owners, emitted)

    context = {
        "name": name,
        "NAME": name.upper(),
        "source": c_comment(program.source),
        "inputs": inputs,
        "outputs": outputs,
        "layers": _Layers(make, running),
        "invoke": _Invoke(_Layers(make, running)),
        # one definition per C function: the bands of a patch-based stage share theirs
        "definitions": _Layers(make, _unique(running, name)),
        "debug_buffers": _debug_buffers(program, running, debug_of, name) if debug else [],
        "aliased": [_layer_summary(program, layer) for layer in program.layers
                    if layer.index in program.plan.elided],
        "uses_arena": any(_reads_arena(program, layer, debug, debug_of) for layer in running),
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
        "numerics": program.numerics,
    }
    limit = output_limit(program.graph.file_bytes)

    def text(file: str, template: str) -> GeneratedText:
        def pieces() -> Iterator[str]:
            return environment().get_template(template).generate(**context)
        return GeneratedText(file, pieces, limit, program.source)

    return {f"{name}.h": text(f"{name}.h", "model.h.j2"),
            f"{name}.c": text(f"{name}.c", "model.c.j2")}


def _unique(layers: list, name: str) -> list:
    seen: set[str] = set()
    unique = []
    for layer in layers:
        symbol = layer.symbol(name)
        if symbol not in seen:
            seen.add(symbol)
            unique.append(layer)
    return unique


def emit_model(program: Program, name: str,
               options: EmitOptions | None = None) -> dict[str, str]:
    """Render NAME.h and NAME.c; returns {file name: text} (for tests and small models;
    `emit_files` streams them)."""
    return {file: str(text) for file, text in emit_files(program, name, options).items()}


def _layer_summary(program: Program, layer) -> str:
    ins = ", ".join(program.graph.tensors[t].describe() for t in layer.inputs)
    outs = ", ".join(program.graph.tensors[t].describe() for t in layer.outputs)
    return c_comment(f"Layer {layer.index}: {layer.opcode}  {ins} -> {outs}", None)

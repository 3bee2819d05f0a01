"""C emission: the Jinja2 environment, and NAME.c / NAME.h from a prepared program.

All decisions are made here in Python (names, pointer expressions, literals); the templates
under `templates/` only lay the text out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import jinja2
import numpy as np

from codegen.resources import templates_dir

if TYPE_CHECKING:
    from codegen.model.ir import Tensor
    from codegen.program import Program

_VALUES_PER_LINE = 16


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
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def c_float(value: float) -> str:
    """A float32 as the shortest C literal that reads back as the same float."""
    text = np.format_float_scientific(np.float32(value), unique=True, trim="0")
    return f"{text}f"


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

    @property
    def c_type(self) -> str:
        return self.tensor.dtype.c_type

    @property
    def quantized(self) -> bool:
        return self.tensor.quant is not None and self.tensor.dtype.is_integer


def io_tensors(program: Program) -> tuple[list[IoTensor], list[IoTensor]]:
    g = program.graph
    ins = [IoTensor(f"input{i}", f"INPUT{i}", g.tensors[t]) for i, t in enumerate(g.inputs)]
    outs = [IoTensor(f"output{i}", f"OUTPUT{i}", g.tensors[t]) for i, t in enumerate(g.outputs)]
    return ins, outs


def _pointer(program: Program, tensor_index: int, name: str, writable: bool) -> str:
    g = program.graph
    if tensor_index in g.inputs:
        return f"input{g.inputs.index(tensor_index)}"
    if tensor_index in g.outputs:
        return f"output{g.outputs.index(tensor_index)}"
    offset = program.plan.offsets[tensor_index]
    c_type = g.tensors[tensor_index].dtype.c_type
    qualifier = "" if writable else "const "
    return f"({qualifier}{c_type} *)({name}_arena.bytes + {offset})"


def emit_model(program: Program, name: str) -> dict[str, str]:
    """Render NAME.h and NAME.c; returns {file name: text}."""
    inputs, outputs = io_tensors(program)
    layers = []
    for layer in program.layers:
        symbol = layer.symbol(name)
        args = [_pointer(program, t, name, False) for t in layer.inputs]
        args += [_pointer(program, t, name, True) for t in layer.outputs]
        constants = [
            {"c_type": a.c_type, "name": f"{symbol}_{a.name}", "count": a.values.size,
             "body": c_array_body(a.values)}
            for a in layer.constants()
        ]
        layers.append({
            "symbol": symbol,
            "call": f"{symbol}({', '.join(args)})",
            "constants": constants,
            "kernel": layer.kernel(symbol).rstrip() + "\n",
            "summary": _layer_summary(program, layer),
        })
    context = {
        "name": name,
        "NAME": name.upper(),
        "source": program.source,
        "inputs": inputs,
        "outputs": outputs,
        "layers": layers,
        "arena_size": program.plan.size,
        "constant_bytes": program.constant_bytes,
        "opcodes": ", ".join(layer.opcode for layer in program.layers),
    }
    return {
        f"{name}.h": render("model.h.j2", **context),
        f"{name}.c": render("model.c.j2", **context),
    }


def _layer_summary(program: Program, layer) -> str:
    ins = ", ".join(program.graph.tensors[t].describe() for t in layer.inputs)
    outs = ", ".join(program.graph.tensors[t].describe() for t in layer.outputs)
    return f"Layer {layer.index}: {layer.opcode}  {ins} -> {outs}"

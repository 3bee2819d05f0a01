"""`codegen report`: what a model costs and how much accuracy quantization took.

One self-contained HTML file (plots inlined as base64 PNGs, drawn with matplotlib's Agg
backend) and the same tables on the terminal:

- per layer: operator, shapes, MACs, constant bytes, live arena bytes (from the memory
  plan) and, given a benchmark JSON (`{"layers": [{"index", "op", "instructions",
  "macs"}]}`), instructions;
- the arena occupancy over the schedule against the lower bound, and the buffer layout;
- given the float model: per-layer quantization error (each int8 layer output, dequantized,
  against the float model's output of the matching Keras layer), float vs int8 outputs as
  a scatter, and for models with one or two input values the float and int8 responses over
  a grid of inputs (a curve, or heatmaps side by side with their difference);
- given another quantization of the same float model (`--compare OTHER.tflite`, e.g. the
  16x8 model beside the int8 one): both models' per-layer errors side by side, matched by
  their float counterpart, and both responses over the same grid, so that what 16x8
  recovers, and where, shows at a glance.

The int8 values come from the numpy reference (bit-exact with TFLM and with the generated
C), the float ones from the Keras model. A TFLite tensor is matched to the Keras layer
whose name appears in the tensor's name (the converter names tensors after the layers'
name scopes, e.g. `model/dense_1/MatMul;model/dense_1/Relu`), with the same number of
values per sample; the report lists the layers it could not match.

matplotlib and TensorFlow are imported inside the functions that need them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codegen.errors import CodegenError
from codegen.program import Program, load_program
from codegen.progress import Progress
from codegen.terminal import shown

GRID_1D = 201
GRID_2D = 61
RANDOM_SAMPLES = 1000  # float-model data drawn when --data is not given


# -- per-layer cost -----------------------------------------------------------------------


@dataclass
class LayerRow:
    step: int
    index: int
    op: str
    inputs: str
    output: str
    macs: int
    constant_bytes: int
    live_bytes: int
    aliased: bool
    instructions: int | None = None


def _shape(program: Program, tensors: tuple[int, ...]) -> str:
    return ", ".join("x".join(str(d) for d in program.graph.tensors[t].shape) or "scalar"
                     for t in tensors)


def live_bytes(program: Program) -> list[int]:
    """Arena bytes in use at each step of the schedule (buffers alive then, and the step's
    scratch buffer)."""
    plan = program.plan
    live = []
    for step, layer in enumerate(program.layers):
        used = sum(b.size for b in plan.buffers if b.first <= step <= b.last)
        if layer.index in plan.scratch:
            used += -(-layer.scratch_bytes() // 4) * 4
        live.append(used)
    return live


def unshared_bytes(program: Program) -> list[int]:
    """Bytes of every activation tensor alive at each step, inputs and outputs included,
    without any sharing (the quantity whose peak is the plan's lower bound)."""
    graph = program.graph
    first = {t: 0 for t in graph.inputs}
    last: dict[int, int] = {}
    for step, layer in enumerate(program.layers):
        for t in layer.outputs:
            first.setdefault(t, step)
        for t in (*layer.inputs, *layer.outputs):
            last[t] = step
    end = len(program.layers) - 1
    for t in graph.outputs:
        last[t] = end
    return [sum(graph.tensors[t].nbytes for t, f in first.items()
                if f <= step <= last.get(t, f)) for step in range(len(program.layers))]


BENCH_MAX_BYTES = 16 << 20  # codegen bench --json writes about 150 bytes per layer
BENCH_MAX_DEPTH = 16  # {"layers": [{...}]} is 3 deep
_JSON_ESCAPE = re.compile(r"\\.", re.DOTALL)
_JSON_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _nesting_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do
    not count), in linear time and without recursion."""
    unescaped = _JSON_ESCAPE.sub("", text)  # then no string holds a quote
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", unescaped)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, np.uint8)
    opening = (codes == ord("[")) | (codes == ord("{"))
    return int(np.cumsum(opening.astype(np.int8) * 2 - 1, dtype=np.int32).max())


def _finite(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a benchmark can hold")


def _read_benchmark(path: Path) -> object:
    label = f"benchmark {path}"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise CodegenError(f"{label} is not a regular file; give the JSON file that "
                               "codegen bench --json wrote")
        if info.st_size > BENCH_MAX_BYTES:
            raise CodegenError(f"{label} has {info.st_size} bytes; a benchmark JSON has "
                               f"at most {BENCH_MAX_BYTES >> 20} MiB")
        with path.open("rb") as f:
            raw = f.read(BENCH_MAX_BYTES + 1)
        text = raw.decode("utf-8")
        grew = len(raw) > BENCH_MAX_BYTES
        del raw
    except FileNotFoundError:
        raise CodegenError(f"{label}: no such file") from None
    except UnicodeDecodeError:
        raise CodegenError(f"{label} is not UTF-8 text, so not JSON") from None
    except OSError as exc:
        raise CodegenError(f"{label} cannot be read: {exc.strerror or exc}") from None
    if grew:  # it grew while we read it
        raise CodegenError(f"{label} has more than {BENCH_MAX_BYTES >> 20} MiB")
    depth = _nesting_depth(text)
    if depth > BENCH_MAX_DEPTH:
        raise CodegenError(f"{label} nests arrays and objects {depth} deep; a benchmark "
                           f"JSON is 3 deep (at most {BENCH_MAX_DEPTH} are read)")
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError, a number out of range, too many digits
        raise CodegenError(f"{label}: not readable JSON ({exc})") from None


def _count(value: object) -> bool:
    """A whole, finite, non-negative number (JSON true/false are not numbers here)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value < 2**63 and float(value).is_integer())


_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "true or false",
               int: "a number", float: "a number", type(None): "null"}


def load_benchmark(path: Path) -> dict[int, int]:
    """Layer index -> instructions, from a benchmark JSON (`codegen bench --json`)."""
    data = _read_benchmark(path)
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        if not isinstance(data, dict):
            got = _JSON_KINDS[type(data)]
        elif "layers" in data:
            got = f"'layers' as {_JSON_KINDS[type(data['layers'])]}"
        else:
            got = "an object without 'layers'"
        raise CodegenError(f"benchmark {path}: expected an object with a 'layers' list "
                           f"(what codegen bench --json writes), got {got}")
    layers = data["layers"]
    if layers and all(isinstance(e, dict) and e.get("instructions") is None for e in layers):
        raise CodegenError(f"benchmark {path} has no instruction counts (a host benchmark "
                           "measures time); benchmark on a Cortex-M target")
    result = {}
    for entry in layers:
        if not (isinstance(entry, dict) and _count(entry.get("index"))
                and _count(entry.get("instructions"))):
            raise CodegenError(f"benchmark {path}: every layer needs an 'index' and an "
                               "'instructions' count, whole numbers from 0 "
                               f"(got {shown(repr(entry))[:80]})")
        result[int(entry["index"])] = int(entry["instructions"])
    return result


def layer_rows(program: Program, bench: dict[int, int] | None = None) -> list[LayerRow]:
    live = live_bytes(program)
    rows = []
    for step, layer in enumerate(program.layers):
        rows.append(LayerRow(
            step=step, index=layer.index, op=layer.opcode,
            inputs=_shape(program, layer.inputs), output=_shape(program, layer.outputs),
            macs=layer.macs(), constant_bytes=sum(a.nbytes for a in layer.constants()),
            live_bytes=live[step], aliased=layer.index in program.plan.elided,
            instructions=None if bench is None else bench.get(layer.index),
        ))
    return rows


# -- quantization error ------------------------------------------------------------------


@dataclass
class ErrorRow:
    index: int
    op: str
    tensor: str
    matched: str  # the float counterpart: a Keras layer, "model output k", "model input k"
    rmse: float
    relative: float  # rmse / range of the float values
    max_error: float
    max_lsb: float  # max error in units of the tensor's scale (nan for float tensors)


@dataclass
class Accuracy:
    rows: list[ErrorRow]
    unmatched: list[str]
    float_out: list[np.ndarray]  # per output, (N, values)
    int8_out: list[np.ndarray]  # dequantized, (N, values)
    data_note: str


def _tokens(name: str) -> list[str]:
    return [part for piece in name.split(";") for part in piece.split(":")[0].split("/")]


def _layer_for(name: str, candidates: dict[str, int], size: int,
               float_layers: dict[str, list[np.ndarray]]) -> str | None:
    """The last Keras layer (in model order) named in the tensor name with `size` values
    per sample."""
    tokens = set(_tokens(name))
    found = None
    for layer, order in candidates.items():
        pattern = re.compile(re.escape(layer) + r"(_\d+)?")
        if not any(pattern.fullmatch(t) for t in tokens):
            continue
        outputs = float_layers[layer]
        if len(outputs) != 1 or outputs[0][0].size != size:
            continue
        if found is None or order > candidates[found]:
            found = layer
    return found


def _error_row(layer: Any, tensor: Any, matched: str, real: np.ndarray,
               reference: np.ndarray) -> ErrorRow:
    from codegen.quantize import dequantize

    got = dequantize(tensor, real).reshape(len(real), -1)
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    error = got - ref
    rmse = float(np.sqrt(np.mean(error ** 2)))
    span = float(ref.max() - ref.min())
    max_error = float(np.abs(error).max())
    lsb = float("nan")
    if tensor.quant is not None and tensor.dtype.is_integer and not tensor.quant.per_channel:
        lsb = max_error / tensor.quant.scale
    return ErrorRow(layer.index, layer.opcode, tensor.name, matched, rmse,
                    rmse / span if span > 0 else float("nan"), max_error, lsb)


def accuracy(program: Program, float_model: Any, samples: list[np.ndarray],
             data_note: str) -> Accuracy:
    from codegen.quantize import dequantize, int8_inputs
    from codegen.reference import reference_values

    graph = program.graph
    values = reference_values(program, int8_inputs(program, samples))
    float_outputs = float_model.predict(samples)
    float_layers = float_model.layer_outputs(samples)
    order = {name: i for i, name in enumerate(float_layers)}
    rows, unmatched = [], []
    for layer in program.reference_layers:  # the model's layers, not a schedule's bands
        for t in layer.outputs:
            tensor = graph.tensors[t]
            if t in graph.outputs:
                k = graph.outputs.index(t)
                matched, reference = f"model output {k}", float_outputs[k]
            elif (layer.opcode == "QUANTIZE" and layer.inputs
                  and layer.inputs[0] in graph.inputs):
                k = graph.inputs.index(layer.inputs[0])
                matched, reference = f"model input {k}", samples[k]
            else:
                name = _layer_for(tensor.name, order, tensor.size, float_layers)
                if name is None:
                    unmatched.append(f"[{layer.index}] {layer.opcode} '{shown(tensor.name)}'")
                    continue
                matched, reference = f"layer '{name}'", float_layers[name][0]
            if reference.reshape(len(reference), -1).shape[1] != tensor.size:
                unmatched.append(f"[{layer.index}] {layer.opcode} '{shown(tensor.name)}' "
                                 f"(float {matched} has another size)")
                continue
            rows.append(_error_row(layer, tensor, matched, values[t], reference))
    int8_out = [dequantize(graph.tensors[t], values[t]).reshape(len(values[t]), -1)
                for t in graph.outputs]
    float_out = [f.reshape(len(f), -1).astype(np.float64) for f in float_outputs]
    return Accuracy(rows, unmatched, float_out, int8_out, data_note)


# -- inputs ------------------------------------------------------------------------------


def input_ranges(program: Program) -> list[tuple[float, float]]:
    """The float range each model input can represent: its own quantization for int8
    inputs, the QUANTIZE reading it for float inputs; (0, 1) when neither says."""
    graph = program.graph
    ranges = []
    for index in graph.inputs:
        tensor = graph.tensors[index]
        quantized = tensor if tensor.quant is not None and tensor.dtype.is_integer else None
        if quantized is None:
            for layer in program.layers:
                if layer.opcode == "QUANTIZE" and index in layer.inputs:
                    quantized = graph.tensors[layer.outputs[0]]
        if quantized is None or quantized.quant is None:
            ranges.append((0.0, 1.0))
            continue
        q = quantized.quant
        ranges.append((q.scale * (quantized.dtype.qmin - q.zero_point),
                       q.scale * (quantized.dtype.qmax - q.zero_point)))
    return ranges


def random_samples(program: Program, count: int = RANDOM_SAMPLES) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = []
    for index, (lo, hi) in zip(program.graph.inputs, input_ranges(program), strict=True):
        shape = program.graph.tensors[index].shape
        arrays.append(rng.uniform(lo, hi, (count, *shape)).astype(np.float32))
    return arrays


# -- responses over a grid of inputs -----------------------------------------------------


@dataclass
class Response:
    axes: list[np.ndarray]  # one or two 1-D axes
    labels: list[str]
    int8: np.ndarray  # shaped like the grid
    float: np.ndarray | None
    output_label: str


def pretty_name(name: str, fallback: str) -> str:
    """A tensor name for a plot axis: without the converter's serving prefix and ':0'."""
    name = name.split(":")[0]
    name = name.removeprefix("serving_default_")
    return fallback if not name or name.startswith("StatefulPartitionedCall") else name


def _input_features(program: Program) -> list[tuple[int, int]]:
    """(input number, element) of every input value of the model."""
    graph = program.graph
    return [(k, e) for k, t in enumerate(graph.inputs) for e in range(graph.tensors[t].size)]


def response(program: Program, float_model: Any, data: list[np.ndarray] | None,
             grid: list[np.ndarray] | None = None) -> Response | None:
    """The first output over a grid spanning the inputs' range, for 1 or 2 input values
    (or over `grid`, the axes of another model's response)."""
    from codegen.quantize import dequantize, int8_inputs
    from codegen.reference import run_reference

    features = _input_features(program)
    if len(features) not in (1, 2):
        return None
    graph = program.graph
    ranges = input_ranges(program)
    axes, labels = [], []
    for k, e in features:
        if grid is not None:
            axes.append(grid[len(axes)])
            name = pretty_name(graph.tensors[graph.inputs[k]].name, f"input {k}")
            labels.append(f"{name}[{e}]" if graph.tensors[graph.inputs[k]].size > 1 else name)
            continue
        if data is not None:
            column = data[k].reshape(len(data[k]), -1)[:, e]
            lo, hi = float(column.min()), float(column.max())
        else:
            lo, hi = ranges[k]
        if hi <= lo:
            hi = lo + 1.0
        points = GRID_1D if len(features) == 1 else GRID_2D
        axes.append(np.linspace(lo, hi, points))
        name = pretty_name(graph.tensors[graph.inputs[k]].name, f"input {k}")
        label = f"{name}[{e}]" if graph.tensors[graph.inputs[k]].size > 1 else name
        labels.append(_plot_text(label))
    mesh = np.meshgrid(*axes, indexing="ij")
    flat = [m.ravel() for m in mesh]
    count = flat[0].size
    samples = []
    for k, t in enumerate(graph.inputs):
        columns = [flat[i] for i, (kk, _) in enumerate(features) if kk == k]
        shape = graph.tensors[t].shape
        samples.append(np.stack(columns, axis=1).reshape(count, *shape).astype(np.float32))
    out_tensor = graph.tensors[graph.outputs[0]]
    q = run_reference(program, int8_inputs(program, samples))[0]
    int8 = dequantize(out_tensor, q).reshape(count, -1)[:, 0].reshape(mesh[0].shape)
    floats = None
    if float_model is not None:
        shaped = [a.reshape(count, *spec.shape)
                  for a, spec in zip(samples, float_model.inputs, strict=True)]
        f = float_model.predict(shaped)[0]
        floats = f.reshape(count, -1)[:, 0].reshape(mesh[0].shape).astype(np.float64)
    out_name = pretty_name(out_tensor.name, "output 0")
    label = out_name if out_tensor.size == 1 else f"{out_name}[0]"
    return Response(axes, labels, int8, floats, _plot_text(label))


# -- plots -------------------------------------------------------------------------------


def _plot_text(text: str) -> str:
    """A name from the model as literal plot text: controls escaped, and `$` escaped so
    that matplotlib does not parse it as mathtext (a bad formula fails the whole plot)."""
    return shown(text).replace("$", r"\$")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise CodegenError("codegen report draws its plots with matplotlib; install it with "
                           "pip install 'codegen[report]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_memory(program: Program) -> str:
    plt = _pyplot()
    plan = program.plan
    steps = np.arange(len(program.layers))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    left.bar(steps, live_bytes(program), color="#4c78a8", label="live arena bytes (planned)")
    left.step(steps, unshared_bytes(program), where="mid", color="#f58518",
              label="all live activations, no sharing")
    left.axhline(plan.size, color="#4c78a8", linestyle="--", label=f"arena size {plan.size} B")
    left.axhline(plan.lower_bound, color="#e45756", linestyle=":",
                 label=f"lower bound {plan.lower_bound} B")
    if plan.budget is not None:
        left.axhline(plan.budget, color="#54a24b", linestyle="-.",
                     label=f"--ram-budget {plan.budget} B")
    left.set_xlabel("step of the schedule")
    left.set_ylabel("bytes")
    left.set_title("Arena occupancy")
    left.legend(fontsize=8, loc="upper right")
    for buffer in plan.buffers:
        right.broken_barh([(buffer.first - 0.4, buffer.last - buffer.first + 0.8)],
                          (buffer.offset, buffer.size), facecolors="#72b7b2",
                          edgecolors="#333333", linewidth=0.6)
    for layer_index, offset in plan.scratch.items():
        step = list(plan.order).index(layer_index)
        size = next(layer.scratch_bytes() for layer in program.layers
                    if layer.index == layer_index)
        right.broken_barh([(step - 0.4, 0.8)], (offset, size), facecolors="#eeca3b",
                          edgecolors="#333333", linewidth=0.6)
    right.set_xlim(-0.6, max(len(steps) - 0.4, 0.6))
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylim(0, max(plan.size, 1))
    right.set_xlabel("step of the schedule")
    right.set_ylabel("arena offset (bytes)")
    right.set_title("Buffer layout (scratch in yellow)")
    return _png(fig)


def plot_errors(acc: Accuracy) -> str:
    plt = _pyplot()
    rows = acc.rows
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows) + 2), 3.2))
    labels = [f"[{r.index}] {r.op}" for r in rows]
    ax.bar(range(len(rows)), [100 * r.relative for r in rows], color="#54a24b")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("RMS error, % of float range")
    ax.set_title("Quantization error per layer")
    return _png(fig)


def plot_scatter(acc: Accuracy, scheme: str = "int8") -> str:
    plt = _pyplot()
    count = len(acc.float_out)
    fig, axes = plt.subplots(1, count, figsize=(4.2 * count, 4), squeeze=False)
    for k, ax in enumerate(axes[0]):
        f, q = acc.float_out[k].ravel(), acc.int8_out[k].ravel()
        ax.scatter(f, q, s=6, alpha=0.5, color="#4c78a8")
        lo, hi = float(min(f.min(), q.min())), float(max(f.max(), q.max()))
        ax.plot([lo, hi], [lo, hi], color="#e45756", linewidth=1, label=f"{scheme} = float")
        ax.set_xlabel("float model output")
        ax.set_ylabel(f"{scheme} model output (dequantized)")
        ax.set_title(f"Output {k}")
        ax.legend(fontsize=8)
    return _png(fig)


def plot_response(resp: Response, scheme: str = "int8") -> str:
    plt = _pyplot()
    if len(resp.axes) == 1:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1]})
        x = resp.axes[0]
        if resp.float is not None:
            top.plot(x, resp.float, color="#4c78a8", label="float")
        top.plot(x, resp.int8, color="#e45756", label=scheme, drawstyle="steps-mid")
        top.set_ylabel(resp.output_label)
        top.legend()
        top.set_title("Response over the input range")
        if resp.float is not None:
            bottom.plot(x, resp.int8 - resp.float, color="#333333")
            bottom.axhline(0, color="#999999", linewidth=0.6)
            bottom.set_ylabel(f"{scheme} - float")
        bottom.set_xlabel(resp.labels[0])
        return _png(fig)
    panels = [(scheme, resp.int8)] if resp.float is None else \
        [("float", resp.float), (scheme, resp.int8), (f"{scheme} - float", resp.int8 - resp.float)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4), squeeze=False)
    x, y = resp.axes
    both = [p[1] for p in panels[:2]] if resp.float is not None else [resp.int8]
    vmin = float(min(a.min() for a in both))
    vmax = float(max(a.max() for a in both))
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        extent = (float(y[0]), float(y[-1]), float(x[0]), float(x[-1]))
        if title.endswith(" - float"):
            limit = float(np.abs(values).max()) or 1e-9
            image = ax.imshow(values, origin="lower", extent=extent, aspect="auto",
                              cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            image = ax.imshow(values, origin="lower", extent=extent, aspect="auto",
                              cmap="viridis", vmin=vmin, vmax=vmax)
            levels = np.linspace(vmin, vmax, 9)[1:-1]
            if vmax > vmin:
                ax.contour(y, x, values, levels=levels, colors="white", linewidths=0.6)
        fig.colorbar(image, ax=ax, shrink=0.85)
        ax.set_title(f"{title}: {resp.output_label}", fontsize=9)
        ax.set_xlabel(resp.labels[1])
        ax.set_ylabel(resp.labels[0])
    return _png(fig)


def plot_compare_errors(a: Accuracy, b: Accuracy, schemes: tuple[str, str]) -> str:
    """Both models' RMS error per float counterpart, bars side by side."""
    plt = _pyplot()
    matched = compare_rows(a, b)
    schemes = (_plot_text(schemes[0]), _plot_text(schemes[1]))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(matched) + 2), 3.4))
    x = np.arange(len(matched))
    for k, (scheme, color) in enumerate(zip(schemes, ("#e45756", "#54a24b"), strict=True)):
        values = [100 * row[k + 1].relative if row[k + 1] is not None else 0.0
                  for row in matched]
        ax.bar(x + (k - 0.5) * 0.4, values, width=0.4, color=color, label=scheme)
    ax.set_xticks(x)
    ax.set_xticklabels([_plot_text(row[0]) for row in matched], rotation=45, ha="right",
                       fontsize=8)
    ax.set_ylabel("RMS error, % of float range")
    ax.set_title("Quantization error per layer")
    ax.legend()
    return _png(fig)


def plot_compare_response(a: Response, b: Response, schemes: tuple[str, str]) -> str:
    """Both models' responses over one grid, beside the float model's, and their errors."""
    plt = _pyplot()
    colors = ("#e45756", "#54a24b")
    schemes = (_plot_text(schemes[0]), _plot_text(schemes[1]))
    if len(a.axes) == 1:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1.4]})
        x = a.axes[0]
        if a.float is not None:
            top.plot(x, a.float, color="#4c78a8", label="float")
        for resp, scheme, color in zip((a, b), schemes, colors, strict=True):
            top.plot(x, resp.int8, color=color, label=scheme, drawstyle="steps-mid")
            if resp.float is not None:
                bottom.plot(x, resp.int8 - resp.float, color=color, label=f"{scheme} - float")
        top.set_ylabel(a.output_label)
        top.legend()
        top.set_title("Response over the input range")
        bottom.axhline(0, color="#999999", linewidth=0.6)
        bottom.set_ylabel("error")
        bottom.legend(fontsize=8)
        bottom.set_xlabel(a.labels[0])
        return _png(fig)
    panels = [(scheme, resp.int8) for resp, scheme in zip((a, b), schemes, strict=True)]
    if a.float is not None:
        panels = [("float", a.float), *panels,
                  *((f"{scheme} - float", resp.int8 - resp.float)
                    for resp, scheme in zip((a, b), schemes, strict=True))]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    x, y = a.axes
    values_only = [v for title, v in panels if not title.endswith(" - float")]
    vmin = float(min(v.min() for v in values_only))
    vmax = float(max(v.max() for v in values_only))
    errors = [v for title, v in panels if title.endswith(" - float")]
    limit = float(max((np.abs(v).max() for v in errors), default=0.0)) or 1e-9
    extent = (float(y[0]), float(y[-1]), float(x[0]), float(x[-1]))
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        if title.endswith(" - float"):  # one colour scale for both errors
            image = ax.imshow(values, origin="lower", extent=extent, aspect="auto",
                              cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            image = ax.imshow(values, origin="lower", extent=extent, aspect="auto",
                              cmap="viridis", vmin=vmin, vmax=vmax)
        fig.colorbar(image, ax=ax, shrink=0.85)
        ax.set_title(f"{title}: {a.output_label}", fontsize=9)
        ax.set_xlabel(a.labels[1])
        ax.set_ylabel(a.labels[0])
    return _png(fig)


# -- tables ------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def layer_table(rows: list[LayerRow]) -> tuple[list[str], list[list[str]]]:
    bench = any(r.instructions is not None for r in rows)
    headers = ["layer", "operator", "in -> out", "MACs", "const B", "live arena B"]
    if bench:
        headers += ["instructions", "instr/MAC"]
    table = []
    for r in rows:
        op = r.op + (" (view)" if r.aliased else "")
        cells = [f"[{r.index}]", op, f"{r.inputs} -> {r.output}", f"{r.macs}",
                 f"{r.constant_bytes}", f"{r.live_bytes}"]
        if bench:
            if r.instructions is None:
                cells += ["-", "-"]
            else:
                ratio = f"{r.instructions / r.macs:.2f}" if r.macs else "-"
                cells += [f"{r.instructions}", ratio]
        table.append(cells)
    return headers, table


def error_table(acc: Accuracy) -> tuple[list[str], list[list[str]]]:
    headers = ["layer", "operator", "float counterpart", "RMSE", "RMSE/range", "max error",
               "max (LSB)"]
    table = [[f"[{r.index}]", r.op, shown(r.matched), f"{r.rmse:.4g}",
              "-" if np.isnan(r.relative) else f"{100 * r.relative:.2f}%",
              f"{r.max_error:.4g}", "-" if np.isnan(r.max_lsb) else f"{r.max_lsb:.1f}"]
             for r in acc.rows]
    return headers, table


def compare_rows(a: Accuracy, b: Accuracy) -> list[tuple[str, ErrorRow | None,
                                                          ErrorRow | None]]:
    """(float counterpart, row of a, row of b): a's counterparts in order, then b's others."""
    first = {r.matched: r for r in a.rows}
    second = {r.matched: r for r in b.rows}
    keys = list(first) + [k for k in second if k not in first]
    return [(k, first.get(k), second.get(k)) for k in keys]


def compare_table(a: Accuracy, b: Accuracy,
                  schemes: tuple[str, str]) -> tuple[list[str], list[list[str]]]:
    headers = ["float counterpart"]
    for scheme in schemes:
        headers += [f"{scheme} layer", f"{scheme} RMSE/range", f"{scheme} max error"]

    def cells(row: ErrorRow | None) -> list[str]:
        if row is None:
            return ["-", "-", "-"]
        relative = "-" if np.isnan(row.relative) else f"{100 * row.relative:.2f}%"
        return [f"[{row.index}] {row.op}", relative, f"{row.max_error:.4g}"]

    return headers, [[key, *cells(ra), *cells(rb)] for key, ra, rb in compare_rows(a, b)]


def scheme(program: Program) -> str:
    """The quantization of a model's activations: int8, 16x8 or, mixed, "int8 + 16x8"."""
    graph = program.graph
    types = {graph.tensors[t].dtype.numpy_name for layer in program.layers
             for t in layer.outputs if graph.tensors[t].quant is not None}
    if "int16" in types:
        return "int8 + 16x8" if types & {"int8", "uint8"} else "16x8"
    return "int8"


@dataclass
class Comparison:
    """Another quantization of the same float model, beside the report's model."""

    name: str
    schemes: tuple[str, str]  # the report's model's, the other's
    accuracy: Accuracy
    errors_png: str
    response_png: str | None


# -- the report --------------------------------------------------------------------------


@dataclass
class Report:
    program: Program
    model_name: str
    rows: list[LayerRow]
    memory_png: str
    accuracy: Accuracy | None = None
    errors_png: str | None = None
    scatter_png: str | None = None
    response_png: str | None = None
    notes: list[str] = field(default_factory=list)
    scheme: str = "int8"
    comparison: Comparison | None = None
    interpreters: str | None = None  # codegen compare's table (codegen/compare.py)

    def terminal(self) -> str:
        p = self.program
        parts = [f"{self.model_name}: {len(p.layers)} layers, {p.macs} MACs, "
                 f"{p.constant_bytes} constant bytes, arena {p.plan.size} bytes "
                 f"(lower bound {p.plan.lower_bound})", schedule_line(p), "",
                 _table(*layer_table(self.rows))]
        if self.accuracy is not None:
            parts += ["", f"quantization error ({self.accuracy.data_note}):",
                      _table(*error_table(self.accuracy))]
            if self.accuracy.unmatched:
                parts.append("no float counterpart: " + "; ".join(self.accuracy.unmatched))
        if self.comparison is not None:
            c = self.comparison
            parts += ["", f"{c.schemes[0]} ({self.model_name}) beside {c.schemes[1]} "
                          f"({c.name}), error against the float model:",
                      _table(*compare_table(self.accuracy, c.accuracy, c.schemes))]
        if self.interpreters is not None:
            parts += ["", "interpreters compared (codegen compare):", self.interpreters]
        parts += [f"note: {n}" for n in self.notes]
        return "\n".join(parts)

    def html(self) -> str:
        import jinja2

        from codegen.resources import templates_dir

        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                                 autoescape=True, undefined=jinja2.StrictUndefined)
        p = self.program
        graph = p.graph
        io_rows = []
        for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
            for k, t in enumerate(indices):
                tensor = graph.tensors[t]
                io_rows.append((f"{role} {k}", tensor.describe(), shown(tensor.name)))
        errors = error_table(self.accuracy) if self.accuracy is not None else None
        c = self.comparison
        compared = compare_table(self.accuracy, c.accuracy, c.schemes) if c else None
        return env.get_template("report.html.j2").render(
            title=self.model_name, program=p, io_rows=io_rows,
            layers=layer_table(self.rows), memory_png=self.memory_png,
            errors=errors, accuracy=self.accuracy, errors_png=self.errors_png,
            scatter_png=self.scatter_png, response_png=self.response_png, notes=self.notes,
            escape=html.escape, scheme=self.scheme, comparison=c, compared=compared,
            schedule=schedule_line(p),
            interpreters=self.interpreters,
        )


def schedule_line(program: Program) -> str:
    """The schedule in one line: patches and overlaps, the extra MACs, the budget."""
    plan = program.plan
    line = f"schedule: {plan.schedule}"
    if plan.extra_macs:
        line += (f"; {plan.extra_macs} MACs computed again "
                 f"(+{plan.extra_macs / max(1, program.macs - plan.extra_macs):.1%})")
    if plan.budget is not None:
        line += f"; --ram-budget {plan.budget}"
    return line


def build_report(model: Path, *, float_model_path: Path | None = None,
                 data_path: Path | None = None, bench_path: Path | None = None,
                 trust_keras_code: bool = False, compare_path: Path | None = None,
                 ram_budget: int | None = None, numerics: str = "tflm") -> Report:
    program = load_program(model, ram_budget=ram_budget, numerics=numerics)
    bench = load_benchmark(bench_path) if bench_path is not None else None
    if data_path is not None and float_model_path is None:
        raise CodegenError("--data is compared against the float model: give --float-model too")
    if compare_path is not None and float_model_path is None:
        raise CodegenError("--compare sets two quantizations side by side against the float "
                           "model: give --float-model too")
    other = (load_program(compare_path, numerics=numerics) if compare_path is not None
             else None)
    if other is not None:
        _check_same_io(program, other, compare_path)
    _pyplot()  # fail early, before the slow work, when matplotlib is missing
    steps = 3 + (4 if float_model_path is not None else 1)
    with Progress("report", steps) as bar:
        report = Report(program, shown(model.name), layer_rows(program, bench),
                        plot_memory(program), scheme=scheme(program))
        bar.advance()
        if bench is not None:
            missing = [r.index for r in report.rows if r.instructions is None]
            if missing:
                report.notes.append(f"the benchmark has no entry for layers {missing}")
        float_model = None
        data = None
        if float_model_path is not None:
            bar.set_label("report: loading the float model")
            from codegen.quantize import FloatModel, InputSpec, load_samples

            float_model = FloatModel(float_model_path, trust_code=trust_keras_code)
            _check_io(program, float_model)
            # Trace the float model with the int8 model's shapes.
            graph = program.graph
            float_model.inputs = [
                InputSpec(spec.name, tuple(graph.tensors[t].shape[1:])
                          if graph.tensors[t].shape[:1] == (1,) else graph.tensors[t].shape,
                          spec.dtype)
                for spec, t in zip(float_model.inputs, graph.inputs, strict=True)]
            bar.advance()
            if data_path is not None:
                data = load_samples(data_path, float_model.inputs, "--data")
                note = f"{data[0].shape[0]} samples from {shown(data_path.name)}"
            else:
                data = [a.reshape(len(a), *spec.shape) for a, spec in
                        zip(random_samples(program), float_model.inputs, strict=True)]
                note = (f"{data[0].shape[0]} random samples over the input range "
                        "(give --data for real ones)")
            bar.set_label("report: per-layer error")
            report.accuracy = accuracy(program, float_model, data, note)
            bar.advance()
            report.errors_png = plot_errors(report.accuracy) if report.accuracy.rows else None
            report.scatter_png = plot_scatter(report.accuracy, report.scheme)
            bar.advance()
        bar.set_label("report: response")
        resp = response(program, float_model, data)
        if resp is not None:
            report.response_png = plot_response(resp, report.scheme)
        else:
            report.notes.append(f"no response plot: the model takes "
                                f"{len(_input_features(program))} input values (1 or 2 "
                                "are plotted)")
        if other is not None and compare_path is not None and report.accuracy is not None:
            other_name = shown(compare_path.name)
            bar.set_label(f"report: {other_name}")
            other_accuracy = accuracy(other, float_model, data, report.accuracy.data_note)
            schemes = (report.scheme, scheme(other))
            if schemes[0] == schemes[1]:
                schemes = (f"{schemes[0]} ({report.model_name})", f"{schemes[1]} ({other_name})")
            other_resp = response(other, float_model, data,
                                  grid=resp.axes if resp is not None else None)
            report.comparison = Comparison(
                other_name, schemes, other_accuracy,
                plot_compare_errors(report.accuracy, other_accuracy, schemes),
                plot_compare_response(resp, other_resp, schemes)
                if resp is not None and other_resp is not None else None)
        bar.set_label("report: interpreters")
        report.interpreters = _interpreters(model, program, report.notes)
        bar.advance()
    return report


def _interpreters(model: Path, program: Program, notes: list[str]) -> str | None:
    """codegen compare's table over random full-range samples, or None with a note when the
    interpreters cannot run (no tflite-micro, float inputs)."""
    from codegen.compare import DEFAULT_SAMPLES, compare_inputs, compare_model, sample_limit
    from codegen.errors import CodegenError

    try:
        inputs = compare_inputs(program, min(DEFAULT_SAMPLES, sample_limit(program)))
        return compare_model(model.read_bytes(), model.name, inputs).text()
    except CodegenError as exc:
        notes.append(f"no comparison of interpreters: {exc}")
        return None


def _check_same_io(program: Program, other: Program, path: Path) -> None:
    """The compared model must take and give what the report's model does (in any type)."""
    shapes = [[program.graph.tensors[t].shape for t in ts]
              for ts in (program.graph.inputs, program.graph.outputs)]
    others = [[other.graph.tensors[t].shape for t in ts]
              for ts in (other.graph.inputs, other.graph.outputs)]
    if shapes != others:
        raise CodegenError(f"--compare {path}: its inputs and outputs {others} are not the "
                           f"report's model's {shapes}; compare two quantizations of one model")


def _check_io(program: Program, float_model: Any) -> None:
    graph = program.graph
    if len(float_model.inputs) != len(graph.inputs):
        raise CodegenError(f"the float model has {len(float_model.inputs)} inputs, the int8 "
                           f"model {len(graph.inputs)}")
    for spec, t in zip(float_model.inputs, graph.inputs, strict=True):
        size = graph.tensors[t].size
        known = [d for d in spec.shape if d is not None]
        if len(known) == len(spec.shape) and int(np.prod(known)) != size:
            raise CodegenError(
                f"the float model's input '{spec.name}' has shape {spec.shape}, which does "
                f"not fit the int8 model's input {list(graph.tensors[t].shape)}")

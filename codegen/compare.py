"""`codegen compare`: where TFLM, LiteRT's reference kernels, LiteRT's default interpreter
and codegen's references part ways, layer by layer.

Every interpreter runs the same samples and keeps its intermediate tensors (TFLM with
kPreserveAllTensors, LiteRT with experimental_preserve_all_tensors). LiteRT's default
interpreter hands whole partitions of the graph to XNNPACK, whose inner tensors it never
writes: a layer inside a partition has no value there ("-"), only the partition's outputs
and the layers LiteRT runs itself do. Our references run in each numerics mode that takes
the model. For each pair the table shows, per layer, how many values differ and by how much
at most, and names the first layer where the pair diverges, with the reason where it is
known.

TFLM (the `tflite-micro` package) and LiteRT (`ai-edge-litert`) are imported here only,
when the command runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from codegen.errors import CodegenError, UnsupportedError
from codegen.program import Program, load_program
from codegen.reference import reference_values
from codegen.terminal import one_line, shown

TFLM, LITERT_REF, LITERT = "TFLM", "LiteRT ref", "LiteRT"
# Each interpreter, and the numerics mode whose reference reproduces it.
MODE_OF = {TFLM: "tflm", LITERT_REF: "litert-ref", LITERT: "litert"}
PAIRS = ((TFLM, LITERT_REF), (TFLM, LITERT), (LITERT_REF, LITERT))
DEFAULT_SAMPLES = 30
MAX_SAMPLES = 1000

_XNNPACK_RQ = "XNNPACK's fp32 requantization (float32 scale, round to nearest even)"
_DOUBLE_RQ = ("LiteRT reference requantizes in floating point (double scale, round half "
              "away from zero)")
_FLOAT32_MULTIPLIER = "LiteRT's {} computes its multipliers in float32 (TFLM's in double)"
# Where LiteRT's builtin kernels differ from TFLM's in both interpreters (the int16 layers,
# which XNNPACK never takes, among them).
_BUILTIN = {
    opcode: _FLOAT32_MULTIPLIER.format(opcode) for opcode in ("RELU", "LEAKY_RELU", "PRELU")
} | {
    "RELU6": "LiteRT's RELU6 requantizes to its output scale (TFLM's only clamps)",
    "SOFTMAX": "LiteRT's int16 SOFTMAX builds its exp and reciprocal tables in double "
               "(TFLM's in float32)",
}
# LOGISTIC and TANH in LiteRT's default interpreter.
_UNARY = {opcode: f"XNNPACK's {opcode} table of its float formula; int16 of a power-of-two "
                  "input scale: LiteRT's optimized kernel, gemmlowp's fixed point"
          for opcode in ("LOGISTIC", "TANH")}
# Why a pair diverges at an operator, where the arithmetic is known (codegen/numerics.py).
REASONS: dict[tuple[str, str], dict[str, str]] = {
    (TFLM, LITERT_REF): _BUILTIN | {
        "FULLY_CONNECTED": _DOUBLE_RQ,
        "MUL": _FLOAT32_MULTIPLIER.format("MUL"),
    },
    (TFLM, LITERT): _BUILTIN | {
        "FULLY_CONNECTED": f"{_XNNPACK_RQ}; int16: {_DOUBLE_RQ} with an int64 bias, ruy's "
                           "fixed point (ties toward +infinity) otherwise",
        "CONV_2D": _XNNPACK_RQ,
        "DEPTHWISE_CONV_2D": _XNNPACK_RQ, "TRANSPOSE_CONV": _XNNPACK_RQ,
        "ADD": "XNNPACK's ADD (21-bit multipliers, one shift) in LiteRT",
        "MUL": f"XNNPACK's fp32 requantization; int16: {_FLOAT32_MULTIPLIER.format('MUL')}",
        "SOFTMAX": "LiteRT's optimized SOFTMAX (a float32 table of exps; int16: tables built "
                   "in double)",
        **_UNARY,
    },
    (LITERT_REF, LITERT): {
        "FULLY_CONNECTED": f"{_DOUBLE_RQ}; LiteRT uses {_XNNPACK_RQ}",
        "CONV_2D": _XNNPACK_RQ, "DEPTHWISE_CONV_2D": _XNNPACK_RQ, "TRANSPOSE_CONV": _XNNPACK_RQ,
        "ADD": "XNNPACK's ADD (21-bit multipliers, one shift) in LiteRT",
        "SOFTMAX": "LiteRT's optimized SOFTMAX (a float32 table of exps)",
        **_UNARY,
    },
}
for _pair in ((TFLM, LITERT), (LITERT_REF, LITERT)):
    REASONS[_pair].setdefault(
        "QUANTIZE", "LiteRT's optimized float -> int16 QUANTIZE (a float32 reciprocal, ties "
                    "to even, on its vector loop; a double division on the tail)")


@dataclass(frozen=True)
class Difference:
    count: int  # values that differ, over every sample
    total: int  # values compared
    largest: int  # largest |a - b|

    def text(self) -> str:
        if self.count == 0:
            return "="
        return f"{self.count}/{self.total} <={self.largest}"


@dataclass(frozen=True)
class LayerRow:
    index: int  # operator index in the model
    opcode: str
    tensor: int  # the output tensor compared (the layer's first)
    cells: dict[str, Difference | None]  # column -> difference (None: a side has no value)


@dataclass
class Comparison:
    model: str
    samples: int
    columns: list[str]
    rows: list[LayerRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, Difference | None] = field(default_factory=dict)  # model outputs

    def first_divergence(self, column: str) -> LayerRow | None:
        for row in self.rows:
            cell = row.cells.get(column)
            if cell is not None and cell.count:
                return row
        return None

    def reason(self, column: str, row: LayerRow) -> str:
        pair = _pair_of(column)
        if pair is None:  # ours against its oracle: never expected
            return "codegen's reference differs from its oracle: a bug, please report it"
        return REASONS.get(pair, {}).get(row.opcode, "unknown")

    def text(self) -> str:
        return format_comparison(self)


def _pair_name(a: str, b: str) -> str:
    return f"{a} vs {b}"


# Short column headings for the terminal table (the legend above it spells them out).
_SHORT = {TFLM: "TFLM", LITERT_REF: "ref", LITERT: "LiteRT"}


def _heading(column: str) -> str:
    pair = _pair_of(column)
    if pair is not None:
        return f"{_SHORT[pair[0]]}:{_SHORT[pair[1]]}"
    return column.removeprefix("ours (").split(")")[0] + ":" + _SHORT[column.split(" vs ")[1]]


def _pair_of(column: str) -> tuple[str, str] | None:
    for a, b in PAIRS:
        if column == _pair_name(a, b):
            return a, b
    return None


def _difference(a: np.ndarray, b: np.ndarray) -> Difference:
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return Difference(int(np.count_nonzero(d)), int(d.size), int(d.max()) if d.size else 0)


# -- the interpreters ------------------------------------------------------------------------

def _tflm_values(model: bytes, inputs: Sequence[np.ndarray], tensors: Sequence[int]
                 ) -> dict[int, np.ndarray]:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise CodegenError("codegen compare runs TFLM through the `tflite-micro` package, "
                           "which is not installed: pip install tflite-micro") from None
    interp = runtime.Interpreter.from_bytes(
        bytes(model), arena_size=max(1 << 20, 10 * len(model)),
        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    values: dict[int, list[np.ndarray]] = {t: [] for t in tensors}
    # One stream of invokes on a fresh interpreter, as the other interpreters and our
    # reference run: a model's state carries from sample to sample. (TFLM's reset() clears
    # it between samples, and its resource variables without running CALL_ONCE again.)
    for sample in range(len(inputs[0])):
        for k, batch in enumerate(inputs):
            interp.set_input(np.require(batch[sample], requirements="C"), k)
        interp.invoke()
        for t in tensors:
            values[t].append(np.array(interp.GetTensor(t, 0)["tensor_data"], copy=True))
    return {t: np.stack(v) for t, v in values.items()}


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """LiteRT's C++ logs "INFO: Created TensorFlow Lite XNNPACK delegate" on file
    descriptor 2: not for the user's terminal (nor `codegen report`'s clean stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _litert_interpreter(model: bytes, reference: bool):
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    with warnings.catch_warnings(), _native_stderr_silenced():
        warnings.simplefilter("ignore")  # preserve_all_tensors' warning about memory
        interp = Interpreter(model_content=bytes(model), experimental_op_resolver_type=resolver,
                             experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
    return interp


def _written_tensors(interp, tensors: Sequence[int], inputs: Sequence[np.ndarray]) -> set[int]:
    """The tensors an invoke writes: the others (inside a delegate's partition) keep what
    was put in them. Two fillings, so that a value cannot pass for written by chance."""
    details = interp.get_input_details()
    kept: dict[int, int] = {}
    for fill in (0x55, 0xAA):
        for t in tensors:
            d = interp._get_tensor_details(t, 0)  # LiteRT's own accessor
            dtype, shape = np.dtype(d["dtype"]), tuple(int(v) for v in d["shape"])
            raw = np.full(int(np.prod(shape)) * dtype.itemsize, fill, np.uint8)
            interp.set_tensor(t, raw.view(dtype).reshape(shape))
        for detail, batch in zip(details, inputs, strict=True):
            interp.set_tensor(detail["index"], np.require(batch[0], requirements="C"))
        interp.invoke()
        for t in tensors:
            raw = np.asarray(interp.get_tensor(t)).view(np.uint8)
            kept[t] = kept.get(t, 0) + int(np.all(raw == fill))
    return {t for t in tensors if kept[t] < 2}


def _litert_values(model: bytes, inputs: Sequence[np.ndarray], tensors: Sequence[int],
                   reference: bool) -> dict[int, np.ndarray]:
    interp = _litert_interpreter(model, reference)
    graph_outputs = {d["index"] for d in interp.get_output_details()}
    if not reference:
        written = (_written_tensors(interp, [t for t in tensors if t not in graph_outputs],
                                    inputs) | (set(tensors) & graph_outputs))
        # Those two invokes moved the model's state on: the stream starts afresh.
        interp = _litert_interpreter(model, reference)
    else:
        written = set(tensors)
    details = interp.get_input_details()
    values: dict[int, list[np.ndarray]] = {t: [] for t in tensors if t in written}
    for sample in range(len(inputs[0])):
        for detail, batch in zip(details, inputs, strict=True):
            interp.set_tensor(detail["index"], np.require(batch[sample], requirements="C"))
        interp.invoke()
        for t in values:
            values[t].append(np.array(interp.get_tensor(t), copy=True))
    return {t: np.stack(v) for t, v in values.items()}


# -- the comparison ----------------------------------------------------------------------------

def _ours(model: bytes, inputs: list[np.ndarray], notes: list[str]
          ) -> dict[str, dict[int, np.ndarray]]:
    """Our reference's tensors in each numerics mode that takes the model."""
    results: dict[str, dict[int, np.ndarray]] = {}
    for mode in MODE_OF.values():
        try:
            program = load_program(model, numerics=mode)
        except UnsupportedError as exc:
            notes.append(f"--numerics {mode} does not take this model: {one_line(str(exc))}")
            continue
        results[mode] = reference_values(program, inputs)
    return results


_WORKER_TIMEOUT = 900.0  # seconds per interpreter
_EXIT_USER_ERROR, _EXIT_CANNOT_RUN = 3, 4


def _interpreter_values(who: str, model: bytes, inputs: Sequence[np.ndarray],
                        tensors: Sequence[int]) -> dict[int, np.ndarray]:
    if who == TFLM:
        return _tflm_values(model, inputs, tensors)
    return _litert_values(model, inputs, tensors, reference=(who == LITERT_REF))


def _run(who: str, notes: list[str], model: bytes, inputs: Sequence[np.ndarray],
         tensors: Sequence[int]) -> dict[int, np.ndarray]:
    """An interpreter's tensors, computed in a child process (the interpreters are C++
    that a hostile or merely unusual model can crash: TFLM's DEPTHWISE_CONV_2D without a
    bias does), or none with a note when it cannot run the model."""
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="codegen-compare-") as tmp:
        Path(tmp, "model.tflite").write_bytes(bytes(model))
        np.savez(Path(tmp, "inputs.npz"), **{f"i{k}": a for k, a in enumerate(inputs)})
        np.save(Path(tmp, "tensors.npy"), np.asarray(tensors, dtype=np.int64))
        try:
            done = subprocess.run([sys.executable, "-m", "codegen.compare", who, tmp],
                                  capture_output=True, text=True, timeout=_WORKER_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            notes.append(f"{who} did not finish within {_WORKER_TIMEOUT:g} s")
            return {}
        message = " ".join(done.stderr.strip().splitlines()[-1:])[:200]
        if done.returncode == _EXIT_USER_ERROR:
            raise CodegenError(message)
        if done.returncode != 0:
            why = (message if done.returncode == _EXIT_CANNOT_RUN
                   else f"it crashed (exit status {done.returncode})")
            notes.append(f"{who} cannot run this model: {one_line(why)}")
            return {}
        with np.load(Path(tmp, "values.npz")) as data:
            return {int(key[1:]): data[key] for key in data.files}


def _worker(who: str, directory: str) -> int:
    """The child of `_run`: one interpreter's tensors into values.npz."""
    from pathlib import Path

    with np.load(Path(directory, "inputs.npz")) as data:
        inputs = [data[f"i{k}"] for k in range(len(data.files))]
    tensors = [int(t) for t in np.load(Path(directory, "tensors.npy"))]
    model = Path(directory, "model.tflite").read_bytes()
    try:
        values = _interpreter_values(who, model, inputs, tensors)
    except CodegenError as exc:
        print(exc, file=sys.stderr)
        return _EXIT_USER_ERROR
    except (RuntimeError, ValueError) as exc:
        print(" ".join(str(exc).split()) or type(exc).__name__, file=sys.stderr)
        return _EXIT_CANNOT_RUN
    np.savez(Path(directory, "values.npz"), **{f"t{t}": v for t, v in values.items()})
    return 0


def compare_model(model: bytes, name: str, inputs: list[np.ndarray]) -> Comparison:
    """Run every interpreter on `inputs` (one array per model input, (N, *shape)) as one
    stream of invokes (a model's state carried from sample to sample) and compare their
    layers' outputs pairwise and with our references."""
    program = load_program(model)
    check_samples(program, len(inputs[0]))
    graph = program.graph
    layers = [layer for layer in program.layers if layer.outputs]
    tensors = sorted({t for layer in layers for t in layer.outputs})
    notes: list[str] = []
    ours = _ours(model, inputs, notes)
    runs = {who: _run(who, notes, model, inputs, tensors) for who in (TFLM, LITERT_REF, LITERT)}
    columns = [_pair_name(a, b) for a, b in PAIRS]
    ours_columns = {f"ours ({mode}) vs {who}": (mode, who) for who, mode in MODE_OF.items()}
    columns += list(ours_columns)
    result = Comparison(shown(name), len(inputs[0]), columns, notes=notes)

    def value(column_side: str, mode: str | None, t: int) -> np.ndarray | None:
        if mode is not None:
            return ours.get(mode, {}).get(t)
        return runs[column_side].get(t)

    def cell(a: np.ndarray | None, b: np.ndarray | None) -> Difference | None:
        if a is None or b is None or a.shape != b.shape:
            return None
        return _difference(a, b)

    def cells(t: int) -> dict[str, Difference | None]:
        row: dict[str, Difference | None] = {}
        for a, b in PAIRS:
            row[_pair_name(a, b)] = cell(value(a, None, t), value(b, None, t))
        for column, (mode, who) in ours_columns.items():
            row[column] = cell(value("", mode, t), value(who, None, t))
        return row

    for layer in layers:
        t = layer.outputs[0]
        if graph.tensors[t].dtype.np.kind not in "iub":
            continue  # float outputs (DEQUANTIZE) are not compared value by value
        result.rows.append(LayerRow(layer.index, layer.opcode, t, cells(t)))
    return result


def format_comparison(c: Comparison) -> str:
    lines = [f"{c.model}: {c.samples} sample{'s' if c.samples != 1 else ''}. Per layer, the "
             "values that differ / values compared <= largest difference; '=' equal, '-' no",
             "value (inside an XNNPACK partition, or a mode that does not take the model).",
             "TFLM: TensorFlow Lite Micro; ref: LiteRT's reference kernels (BUILTIN_REF); "
             "LiteRT: its default interpreter",
             "(XNNPACK); tflm, litert-ref, litert: codegen's reference in that --numerics mode.",
             ""]
    header = ["layer", "operator", *(_heading(col) for col in c.columns)]
    table = [[str(r.index), r.opcode, *(r.cells[col].text() if r.cells[col] is not None
                                          else "-" for col in c.columns)] for r in c.rows]
    widths = [max(len(h), *(len(row[k]) for row in table)) if table else len(h)
              for k, h in enumerate(header)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines.extend("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                 for row in table)
    lines.append("")
    lines.append("first divergence:")
    for column in c.columns:
        row = c.first_divergence(column)
        if row is None:
            lines.append(f"  {column}: none")
        else:
            lines.append(f"  {column}: layer {row.index} ({row.opcode}): {c.reason(column, row)}")
    lines.extend(f"note: {note}" for note in c.notes)
    return "\n".join(lines)


def compare_inputs(program: Program, samples: int, seed: int = 0) -> list[np.ndarray]:
    """Full-range random inputs (integer inputs only: the interpreters are compared on the
    quantized values)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for index in program.graph.inputs:
        t = program.graph.tensors[index]
        if not t.dtype.is_integer:
            raise CodegenError(f"input '{shown(t.name)}' is {t.dtype.numpy_name}: codegen "
                               "compare takes models with integer inputs")
        arrays.append(rng.integers(t.dtype.qmin, t.dtype.qmax + 1, size=(samples, *t.shape),
                                   dtype=np.int64).astype(t.dtype.np))
    return arrays


# Every interpreter and reference keeps every layer's output of every sample: at most this
# many bytes of them all together.
MAX_KEPT_BYTES = 512 << 20
_KEEPERS = 6  # three interpreters, three references


def sample_limit(program: Program) -> int:
    """How many samples codegen compare runs at most on this model."""
    per_sample = _KEEPERS * 8 * sum(program.graph.tensors[t].size
                                    for layer in program.layers for t in layer.outputs)
    return max(1, min(MAX_SAMPLES, MAX_KEPT_BYTES // max(1, per_sample)))


def check_samples(program: Program, count: int) -> None:
    limit = sample_limit(program)
    if count > limit:
        raise CodegenError(f"{count} samples: codegen compare runs at most {limit} of this "
                           "model (every interpreter keeps every tensor of every sample); "
                           "give fewer")


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], sys.argv[2]))

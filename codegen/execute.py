"""Run a batch of samples through a model on a target: the numpy reference, the generated C
compiled for the host, or the generated C cross-compiled and run under QEMU."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from codegen.build import build_firmware, check_toolchain
from codegen.emit import EmitOptions, emit_files, io_tensors, render
from codegen.errors import CodegenError
from codegen.files import Content, claim_build_dir, write_files_atomically
from codegen.program import Program
from codegen.progress import Progress
from codegen.reference import run_reference
from codegen.runner import run_firmware
from codegen.targets import get_target

REFERENCE = "reference"
HARNESS_NAME = "model"


def target_names() -> list[str]:
    from codegen.targets import TARGETS

    return [REFERENCE, *TARGETS]


def check_inputs(program: Program, inputs: list[np.ndarray]) -> int:
    """Validate batch arrays against the graph inputs; returns the sample count."""
    graph = program.graph
    if len(inputs) != len(graph.inputs):
        raise CodegenError(f"the model has {len(graph.inputs)} inputs, {len(inputs)} given")
    counts = set()
    for array, index in zip(inputs, graph.inputs, strict=True):
        t = graph.tensors[index]
        if array.dtype != t.dtype.np or array.ndim == 0 or array.shape[1:] != t.shape:
            wanted = "".join(f", {d}" for d in t.shape) or ","
            raise CodegenError(
                f"input {t.name!r} must be a {t.dtype.numpy_name} array shaped "
                f"(N{wanted}), one sample per row; got {array.dtype} {tuple(array.shape)}"
            )
        counts.add(array.shape[0])
    if len(counts) != 1:
        raise CodegenError(f"inputs disagree on the number of samples: {sorted(counts)}")
    count = counts.pop()
    if count == 0:
        raise CodegenError("the input holds no samples (N = 0); give at least one")
    return count


def pack_samples(inputs: list[np.ndarray]) -> bytes:
    """Sample-major byte stream: all inputs of sample 0, then of sample 1, ..."""
    n = inputs[0].shape[0]
    flat = [np.ascontiguousarray(a).reshape(n, -1).view(np.uint8) for a in inputs]
    return np.concatenate([f.reshape(n, -1) for f in flat], axis=1).tobytes()


def unpack_samples(program: Program, data: bytes, n: int) -> list[np.ndarray]:
    graph = program.graph
    tensors = [graph.tensors[i] for i in graph.outputs]
    per_sample = sum(t.nbytes for t in tensors)
    if len(data) != n * per_sample:
        raise CodegenError(
            f"firmware wrote {len(data)} bytes, expected {n} samples of {per_sample} bytes"
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, per_sample)
    outputs, start = [], 0
    for t in tensors:
        chunk = np.ascontiguousarray(raw[:, start:start + t.nbytes])
        outputs.append(chunk.view(t.dtype.np).reshape(n, *t.shape))
        start += t.nbytes
    return outputs


def write_harness_sources(program: Program, directory: Path, name: str = HARNESS_NAME,
                          options: EmitOptions | None = None, *,
                          reset_each: bool = False) -> None:
    """The model's C files plus the glue that connects them to the generic harness.
    `reset_each`: reset the model's state before every sample (else it carries over)."""
    options = options or EmitOptions()
    if program.plan.io_in_arena:
        # the glue owns the arena then
        options = replace(options, static_arena=False, arena_section=None)
    files: dict[str, Content] = dict(emit_files(program, name, options))
    ins, outs = io_tensors(program)
    files["harness_glue.c"] = render(
        "harness_glue.c.j2",
        name=name,
        inputs=[{"c_type": io.c_type, "elements": io.tensor.size} for io in ins],
        outputs=[{"c_type": io.c_type, "elements": io.tensor.size} for io in outs],
        io_in_arena=program.plan.io_in_arena,
        stateful=program.state is not None,
        reset_each=reset_each,
    )
    write_files_atomically(files, directory)


def build_for_target(program: Program, target_name: str, work_dir: Path, *,
                     sanitize: bool = False, reset_each: bool = False) -> Path:
    """Generate and compile the harness for a target; returns the executable. work_dir
    (src/ and build/ in it) must be new, empty or made by codegen before (claim_build_dir)."""
    target = get_target(target_name)
    check_toolchain(target)
    source_dir = claim_build_dir(claim_build_dir(work_dir) / "src")
    # Sanitizer builds give every arena buffer an array of its own, so that ASan also sees
    # a kernel writing outside its planned buffer, not only outside the whole arena.
    write_harness_sources(program, source_dir, options=EmitOptions(debug_buffers=sanitize),
                          reset_each=reset_each)
    return build_firmware(source_dir, HARNESS_NAME, target, work_dir / "build",
                          sanitize=sanitize)


def run_executable(program: Program, target_name: str, executable: Path,
                   inputs: list[np.ndarray], timeout: float = 600.0, *,
                   bar: Progress | None = None) -> list[np.ndarray]:
    """Run the samples through a built harness. `bar` (total: the sample count) advances
    as the harness writes its outputs."""
    n = check_inputs(program, inputs)
    graph = program.graph
    per_sample = sum(graph.tensors[t].nbytes for t in graph.outputs)

    def samples_done(size: int) -> None:
        if bar is not None and per_sample:
            bar.advance(min(n, size // per_sample) - bar.done)

    data = run_firmware(executable, get_target(target_name), pack_samples(inputs),
                        timeout=timeout,
                        on_output=samples_done if bar is not None and bar.enabled else None)
    return unpack_samples(program, data, n)


def check_reset_each(program: Program, reset_each: bool) -> None:
    """Resetting a model that keeps no state would do nothing: refused, so that a user who
    expected state learns the model has none."""
    if reset_each and program.state is None:
        raise CodegenError(
            "--reset-each (reset_each) resets the model's state before every sample, but "
            "this model keeps no state (no SVDF, LSTM, variable tensor or resource "
            "variable): its samples are already independent; drop the option")


def execute(program: Program, target_name: str, inputs: list[np.ndarray], *,
            work_dir: Path | None = None, sanitize: bool = False,
            progress: bool | None = False, timeout: float = 600.0,
            reset_each: bool = False) -> list[np.ndarray]:
    """Run N samples on a target; inputs and outputs are arrays shaped (N, *tensor.shape).
    A model that keeps state runs them in order as one stream of invokes, its state carried
    from each to the next as TFLM's interpreter carries it, unless `reset_each` resets it
    before every sample. `progress`: a bar of samples done on stderr while the C runs
    (None: when stderr is a terminal)."""
    n = check_inputs(program, inputs)
    check_reset_each(program, reset_each)
    if target_name == REFERENCE:
        return run_reference(program, inputs, reset_each=reset_each)
    with Progress(f"{target_name}: building", n, enabled=progress) as bar, \
            _directory(work_dir) as directory:
        exe = build_for_target(program, target_name, directory, sanitize=sanitize,
                               reset_each=reset_each)
        bar.set_label(f"{target_name}: running")
        return run_executable(program, target_name, exe, inputs, timeout, bar=bar)


@contextlib.contextmanager
def _directory(work_dir: Path | None) -> Iterator[Path]:
    """work_dir, or a temporary directory while the block runs."""
    if work_dir is not None:
        yield work_dir
        return
    with tempfile.TemporaryDirectory(prefix="codegen-run-") as tmp:
        yield Path(tmp)

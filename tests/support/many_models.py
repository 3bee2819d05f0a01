"""Many generated models in one Cortex-M firmware, one QEMU boot: each model's C (its own
name, as README's "Several models in one firmware" generates them) against its reference.

One firmware per batch of models instead of one build and boot per model: the models'
generated files (m0.c, m1.c, ...; their symbols do not collide), a table of their I/O buffers
(written here) and many_models.c, which reads each model's samples in turn from the
semihosted input.bin and writes their outputs to output.bin. A model that keeps state runs
its samples as one stream of invokes from a fresh start, as the reference does. Each model
keeps its own static arena and I/O buffers: a batch that does not fit the board (QEMU's
mps2-an386: 4 MB of flash, 4 MB of RAM) fails to link, naming the region; split it then.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.emit import EmitOptions, emit_files, io_tensors
from codegen.errors import CodegenError
from codegen.execute import check_inputs, execute, pack_samples, unpack_samples
from codegen.files import write_files_atomically
from codegen.program import Program
from codegen.runner import run_harness
from codegen.targets import get_target
from support.firmware_build import compile_object, link
from support.policy import REPO_ROOT, require_tool
from support.verify import assert_same, edge_inputs, random_inputs

HERE = Path(__file__).resolve().parent
HARNESS_DIR = REPO_ROOT / "firmware" / "harness"
# The flags the harness build (meson.build) adds to compile_object's.
FLAGS = ("-Wpedantic", "-ffp-contract=off")


@dataclass(frozen=True)
class Case:
    """One model of a firmware: its label (named when it fails), program and samples."""

    label: str
    program: Program
    inputs: list[np.ndarray]


def case_with_edges(label: str, program: Program, samples: int, seed: int = 0) -> Case:
    """The all-minimum and all-maximum samples, then `samples` full-range random ones,
    seeded by `seed` and the label (a model's samples do not depend on its batch)."""
    random = random_inputs(program, samples, seed + zlib.crc32(label.encode()))
    edges = edge_inputs(program)
    return Case(label, program, [np.concatenate([e, x]) for e, x in
                                 zip(edges, random, strict=True)])


def c_matches_reference_in_one_firmware(cases: Sequence[Case], target: str, work_dir: Path,
                                        *, label: str = "", timeout: float = 600.0) -> Path:
    """Build every case's C into one firmware for Cortex-M `target`, run all their samples
    in one boot, and assert each model's outputs equal its program's reference exactly;
    the assertion names every model that differs (or the one the firmware failed on) and
    `label` (the numerics mode, say). Returns the firmware."""
    elf = build_firmware(cases, target, work_dir)
    outputs_match_references(cases, run_firmware(cases, elf, target, timeout=timeout),
                             f"{target}{', ' if label else ''}{label}")
    return elf


def run_firmware(cases: Sequence[Case], elf: Path, target: str, *,
                 timeout: float = 600.0) -> bytes:
    """One boot of the firmware on every case's samples: its output.bin. A failure of the
    firmware is an AssertionError naming the model it failed on."""
    try:
        return run_harness(elf, get_target(target), pack_samples_of(cases),
                           timeout=timeout).output
    except CodegenError as exc:
        raise AssertionError(name_failing_model(str(exc), cases)) from exc


def outputs_match_references(cases: Sequence[Case], output: bytes, where: str) -> None:
    """Split the firmware's output model by model and compare each with its reference;
    one assertion lists every model that differs (each "LABEL on WHERE")."""
    failures = []
    start = 0
    for case in cases:
        n = check_inputs(case.program, case.inputs)
        size = n * sum(io.tensor.nbytes for io in io_tensors(case.program)[1])
        if start + size > len(output):
            failures.append(f"{case.label}: the firmware wrote no (or a partial) output")
            break
        got = unpack_samples(case.program, output[start:start + size], n)
        start += size
        try:
            assert_same(got, execute(case.program, "reference", case.inputs),
                        f"{case.label} on {where} vs its reference")
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, f"{len(failures)} of {len(cases)} models differ:\n" + \
        "\n".join(failures)
    assert start == len(output), f"{where}: the firmware wrote {len(output)} bytes, not {start}"


def pack_samples_of(cases: Sequence[Case]) -> bytes:
    """The firmware's input: each model's samples in turn, sample-major."""
    return b"".join(pack_samples(case.inputs) for case in cases)


def build_firmware(cases: Sequence[Case], target: str, work_dir: Path) -> Path:
    """Generate each model as m0, m1, ..., the table and the runner; compile and link them
    (warnings as errors, the harness build's flags) into work_dir/many_models.elf."""
    if not cases:
        raise ValueError("no models to build")
    require_tool(get_target(target).toolchain_prefix + "gcc")
    source = work_dir / "src"
    objects = work_dir / "obj"
    objects.mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(cases):
        if case.program.plan.io_in_arena:
            raise ValueError(f"{case.label}: a model with its I/O in the arena is not taken")
        write_files_atomically(dict(emit_files(case.program, f"m{index}", EmitOptions())),
                               source)
    (source / "many_models_table.c").write_text(table_c(cases))
    flags = (*FLAGS, f"-I{source}", f"-I{HARNESS_DIR}", f"-I{HERE}")
    sources = [*(source / f"m{i}.c" for i in range(len(cases))),
               source / "many_models_table.c", HERE / "many_models.c",
               HARNESS_DIR / "io_semihost.c"]
    built = [compile_object(path, target, objects / f"{path.stem}.o", flags=flags)
             for path in sources]
    return link(built, target, work_dir / "many_models.elf")


def table_c(cases: Sequence[Case]) -> str:
    """many_models_table.c: each model's static I/O buffers, an invoke wrapper and the
    table many_models.c runs."""
    parts = ["/* The models of one firmware: written by tests/support/many_models.py. */",
             "#include <stddef.h>", "#include <stdint.h>", "", '#include "many_models.h"']
    parts += [f'#include "m{i}.h"' for i in range(len(cases))]
    entries = []
    for index, case in enumerate(cases):
        parts.append(_model_glue(f"m{index}", case))
        entries.append(f"    {{{len(io_tensors(case.program)[0])}u, m{index}_inputs, "
                       f"m{index}_input_bytes, {len(io_tensors(case.program)[1])}u, "
                       f"m{index}_outputs, m{index}_output_bytes, m{index}_run, "
                       f"{len(case.inputs[0])}ul}},  /* {_comment(case.label)} */")
    parts += ["", "const many_models_entry many_models[] = {", *entries, "};",
              f"const size_t many_models_count = {len(cases)}u;", ""]
    return "\n".join(parts)


def _model_glue(name: str, case: Case) -> str:
    ins, outs = io_tensors(case.program)
    lines = [""]
    buffers = [(f"{name}_in{i}", io) for i, io in enumerate(ins)]
    buffers += [(f"{name}_out{i}", io) for i, io in enumerate(outs)]
    lines += [f"static {io.c_type} {var}[{io.tensor.size}] __attribute__((aligned(16)));"
              for var, io in buffers]
    for kind, count in (("input", len(ins)), ("output", len(outs))):
        short = "in" if kind == "input" else "out"
        names = [f"{name}_{short}{i}" for i in range(count)]
        lines.append(f"static void *const {name}_{kind}s[] = {{{', '.join(names)}}};")
        lines.append(f"static const size_t {name}_{kind}_bytes[] = {{"
                     + ", ".join(f"sizeof {n}" for n in names) + "};")
    arguments = ", ".join(var for var, _ in buffers)
    lines += [f"static int {name}_run(void)", "{",
              f"    return {name}_invoke({arguments});", "}"]
    return "\n".join(lines)


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


def name_failing_model(message: str, cases: Sequence[Case]) -> str:
    """The firmware's failure with the model's label for its index."""
    found = re.search(r"many_models: model (\d+) ", message)
    if found is None or int(found.group(1)) >= len(cases):
        return message
    return f"{cases[int(found.group(1))].label}: {message}"

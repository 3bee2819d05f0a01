"""The Helium (cortex-m55) and RVV (riscv32-v) builds really run vector code.

A silent fallback to the scalar kernels (a feature macro that no longer matches, say) would
keep every bit-exact test green; these tests fail on it. For two shared models (KWS:
CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, FULLY_CONNECTED; ResNet: CONV_2D, ADD,
AVERAGE_POOL_2D, FULLY_CONNECTED), each vector target's benchmark build is disassembled
(objdump decodes MVE only with `-m armv8.1-m.main`): the matrix-product engines hold
vector instructions (CONV_2D and FULLY_CONNECTED on the Cortex-M55: the int8 engines,
VMLADAVA.S8 and a predicated depth tail), and the Cortex-M55's other kernels have
low-overhead loops (DLS/WLS ... LE), which an old QEMU crashed on. One sample runs under
QEMU with the counting plugin: the output equals the numpy reference, and every vector and
low-overhead-loop instruction of the engines that ran was executed (QEMU 7.2 executes each
of them, bit-exactly), as were low-overhead loops of the other kernels.
The scalar builds of the same models (cortex-m4, riscv32) hold none, so the detection
itself is checked.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.policy import require_file, require_tool

from codegen import bench
from codegen.bench import bench_program
from codegen.execute import pack_samples
from codegen.program import load_program
from codegen.targets import Target, get_target

MODELS = ("kws_ref_model", "pretrainedResnet_quant")
# prefixes of the engines' function names (CONV_2D and FULLY_CONNECTED take the int8 engines
# on Helium)
ENGINES = ("cg_gemm_conv", "cg_gemm_fc", "cg_gemm_mve8_conv", "cg_gemm_mve8_fc")
# The int8 Helium engine (runtime/gemm_mve8_conv.c.j2): sixteen-lane int8 dot products, the
# four-lane requantization and narrowing stores; and, where a layer's depth is not a multiple
# of 16 (KWS's first CONV_2D: 40), the predicated depth tail (the compiler drops it from a
# copy of the engine that only such layers call).
MVE8 = {"vmlava.s8", "vldrb.u8", "vrmulh.s32", "vshl.s32", "vstrb.32"}
MVE8_TAIL = {"vctp.8", "vpst", "vldrbt.u8"}
_LINE = re.compile(r"^\s*([0-9a-f]+):\t(?:[0-9a-f]{4} ?){1,2}\s*\t(\S+)\s*(.*)$")
_FUNCTION = re.compile(r"^([0-9a-f]+) <(.+)>:$")
LOW_OVERHEAD = {"dls", "dlstp.8", "dlstp.16", "dlstp.32", "dlstp.64", "wls", "wlstp.8",
                "wlstp.16", "wlstp.32", "wlstp.64", "le", "letp", "lctp"}


def _is_vector(target: Target, mnemonic: str, operands: str) -> bool:
    if target.platform == "riscv":
        return mnemonic.startswith("v")  # every RVV instruction, vsetvli included
    # MVE: an instruction with a Q register among its operands, or the tail predication.
    return mnemonic in LOW_OVERHEAD or re.search(r"\bq[0-7]\b", operands) is not None


def _listing(executable: Path, target: Target) -> dict[int, tuple[str, str, str]]:
    """address -> (function, mnemonic, operands)."""
    objdump = require_tool(target.toolchain_prefix + "objdump")
    text = subprocess.run([objdump, "-d", *target.objdump_flags, str(executable)],
                          capture_output=True, text=True, check=True).stdout
    found, function = {}, "?"
    for line in text.splitlines():
        if match := _FUNCTION.match(line):
            function = match[2]
        elif match := _LINE.match(line):
            found[int(match[1], 16)] = (function, match[2], match[3])
    return found


@dataclass(frozen=True)
class Benched:
    matches_reference: bool
    listing: dict[int, tuple[str, str, str]]  # address -> (function, mnemonic, operands)
    executed: set[int]  # the addresses one run executed (the plugin's rows)


@pytest.fixture(scope="module")
def benched(shared_models: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Benched]:
    cache: dict[tuple[str, str], Benched] = {}

    def run(model: str, name: str) -> Benched:
        if (model, name) not in cache:
            target = get_target(name)
            program = load_program(require_file(shared_models / f"{model}.tflite"))
            work = tmp_path_factory.mktemp(f"{name}-{model}")
            result = bench_program(program, name, work)
            executable = work / "build" / target.executable_name
            graph = program.graph
            running = [la for la in program.layers if la.index not in program.plan.elided]
            m = bench.measure(executable, target, pack_samples(bench.bench_input(program)),
                              sum(graph.tensors[t].nbytes for t in graph.outputs),
                              len(running), plugin_dir=work / "build")
            rows = m.rows or {}
            cache[model, name] = Benched(
                result.output_matches_reference, _listing(executable, target),
                {address for address, row in rows.items() if row.executions > 0})
        return cache[model, name]

    return run


@pytest.mark.qemu
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", ["cortex-m55", "riscv32-v"])
def test_vector_build_runs_vector_code(benched: Callable[[str, str], Benched], model: str,
                                       name: str) -> None:
    target = get_target(name)
    run = benched(model, name)
    assert run.matches_reference
    listing = run.listing
    engines = {f for f, _, _ in listing.values() if f.startswith(ENGINES)}
    assert engines, "no matrix-product engine in the image"
    for engine in engines:
        vector = {m for f, m, o in listing.values() if f == engine and _is_vector(target, m, o)}
        if name == "cortex-m55" and engine.startswith("cg_gemm_mve8"):
            # its inner loop counts with SUBS/BNE: lr holds the eighth accumulator
            assert vector >= MVE8, (engine, sorted(MVE8 - vector))
        elif name == "cortex-m55":
            assert "vmlava.s16" in vector, (engine, sorted(vector))
            assert {"dls", "le"} <= vector or {"wls", "le"} <= vector, (engine, sorted(vector))
        else:
            assert {"vwmacc.vv", "vredsum.vs"} <= vector, (engine, sorted(vector))
    # Every vector and low-overhead-loop instruction of the engines that ran, ran (QEMU
    # executed it, and the output is bit-exact); the other kernels' low-overhead loops ran
    # too where this model takes them.
    assert run.executed
    ran = {listing[a][0] for a in run.executed if a in listing}
    assert ran & engines
    if name == "cortex-m55":  # CONV_2D and FULLY_CONNECTED ran on the int8 engines
        for kind in ("conv", "fc"):
            assert {f for f in ran if f.startswith(f"cg_gemm_mve8_{kind}")}, sorted(ran)
            assert not {f for f in ran if f.startswith(f"cg_gemm_{kind}")}, sorted(ran)
    missed = sorted((hex(a), f, m) for a, (f, m, o) in listing.items()
                    if f in ran & engines and _is_vector(target, m, o)
                    and a not in run.executed)
    assert not missed, missed
    executed = {listing[a][1] for a in run.executed if a in listing}
    if name == "cortex-m55" and model == "kws_ref_model":
        tail = {listing[a][1] for a in run.executed
                if a in listing and listing[a][0].startswith("cg_gemm_mve8_conv")}
        assert tail >= MVE8_TAIL, sorted(MVE8_TAIL - tail)
    if name == "cortex-m55":
        assert {"dls", "le"} <= executed, sorted(executed & LOW_OVERHEAD)


@pytest.mark.qemu
@pytest.mark.parametrize("name", ["cortex-m4", "riscv32"])
def test_scalar_build_has_no_vector_code(benched: Callable[[str, str], Benched],
                                         name: str) -> None:
    target = get_target(name)
    run = benched("kws_ref_model", name)
    assert run.matches_reference
    engines = {f for f, _, _ in run.listing.values() if f.startswith(ENGINES)}
    assert engines
    vector = sorted({m for f, m, o in run.listing.values() if f.startswith("cg_")
                     and _is_vector(target, m, o)})
    assert vector == []


# (target, model) -> function prefix -> mnemonics that must have run there
VECTOR_KERNELS = {
    ("cortex-m55", "kws_ref_model"): {
        "cg_dw3x3_mve": {"vmul.i32", "vadd.i32", "vldrb.s32", "vrmulh.s32", "vrshl.s32",
                         "vqadd.s32", "vqshl.s32", "vstrb.32"},
    },
    ("riscv32-v", "kws_ref_model"): {
        "cg_dw3x3_rvv": {"vle16.v", "vwmacc.vx", "vmulh.vx", "vsra.vx", "vnsrl.wi",
                         "vsse8.v"},
    },
}


@pytest.mark.qemu
@pytest.mark.parametrize(("name", "model"), list(VECTOR_KERNELS))
def test_depthwise_runs_vector_code(
        benched: Callable[[str, str], Benched], name: str, model: str) -> None:
    """The 3x3 depthwise layers take the Helium driver (templates/runtime/
    depthwise3x3_mve.c.j2) or the RVV output lines (_depthwise3x3_lines_rvv.c.j2): their
    multiplies, high-word multiplies, rounding shifts and stores are in the image and ran."""
    target = get_target(name)
    run = benched(model, name)
    assert run.matches_reference
    executed = {(run.listing[a][0], run.listing[a][1]) for a in run.executed
                if a in run.listing}
    for prefix, mnemonics in VECTOR_KERNELS[name, model].items():
        functions = {f for f, m, o in run.listing.values()
                     if f.startswith(prefix) and _is_vector(target, m, o)}
        assert functions, f"no vector {prefix} in the image"
        ran = {m for f, m in executed if f in functions}
        assert mnemonics <= ran, (prefix, sorted(mnemonics - ran))


@pytest.mark.qemu
def test_helium_add_and_pool_ran(benched: Callable[[str, str], Benched]) -> None:
    """ResNet's ADDs gather their tables' words four at a time (VLDRW with a vector of
    offsets, runtime/add_tables.c.j2) and its global average pool divides four channels by a
    reciprocal high-word multiply (VMULH.U32): both in the image and executed, whichever
    function the compiler inlined them into."""
    run = benched("pretrainedResnet_quant", "cortex-m55")
    assert run.matches_reference
    executed = [run.listing[a] for a in run.executed if a in run.listing]
    gathers = [o for _, m, o in executed if m == "vldrw.u32" and re.search(r"\[r\d+, q[0-7]", o)]
    assert gathers, "no table gather ran"
    assert any(m == "vmulh.u32" for _, m, _ in executed), "no reciprocal multiply ran"

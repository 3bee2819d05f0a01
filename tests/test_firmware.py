"""Harness firmware: build a hand-written fake model, run it on the host and under QEMU.

The fake model has three inputs and three outputs of mixed types (declared in a different
order than the inputs) so the glue's buffer tables and the sample framing are exercised;
its expected outputs are computed with numpy and compared byte for byte. Sentinel samples
make it misbehave (fail, hang, trap, overflow the stack, report the FPU) to test the
runner, the fault handler and each target's startup code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support import armv6m
from support.policy import require

from codegen.build import build_firmware, check_toolchain
from codegen.emit import render
from codegen.errors import CodegenError
from codegen.runner import run_firmware
from codegen.targets import TARGETS, Target, cross_file_text, get_target

A_LEN, B_LEN, C_LEN = 37, 5, 3
QEMU_TARGETS = [name for name, target in TARGETS.items() if not target.is_host]
ARM_TARGETS = [name for name in QEMU_TARGETS if TARGETS[name].platform == "cortex-m"]
RISCV_TARGETS = [name for name in QEMU_TARGETS if TARGETS[name].platform == "riscv"]
STACK_LIMIT_TARGETS = ["cortex-m33", "cortex-m55"]  # ARMv8(.1)-M mainline: startup sets MSPLIM
# QEMU's Cortex-M3 (which also runs the Cortex-M0 build), M4 and M7 have an MPU: startup maps
# code and RAM only, so the stack, at the bottom of RAM, faults when it runs below it.
MPU_TARGETS = ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7"]

Built = tuple[Path, Target]
Builder = Callable[[str], Built]

FAKE_H = """\
#ifndef FAKE_H
#define FAKE_H
#include <stdint.h>
int fake_invoke(const int8_t *a, const float *b, const uint8_t *c,
                int8_t *doubled, uint8_t *inverted, float *halved);
#endif
"""

# a[0] == -128 selects a misbehaviour by a[1]: 0 -> status 5, 1 -> spin, 2 -> trap,
# 3 -> a stack frame larger than the Cortex-M stack, 4 -> unbounded recursion,
# 5 -> status 0x10000 | the FPU fields of MVFR0 (Cortex-M; status 5 elsewhere).
FAKE_C = f"""\
#include "fake.h"

__attribute__((noinline)) static int big_frame(void)
{{
    volatile uint8_t block[100000];
    block[0] = 1;
    block[sizeof block - 1] = 2;
    return block[0] + block[sizeof block - 1];
}}

/* The call goes through a volatile pointer so that it cannot become a loop. */
static int recurse(int depth);
static int (*volatile recurse_again)(int) = recurse;

static int recurse(int depth)
{{
    volatile int frame[2];
    frame[0] = depth;
    frame[1] = recurse_again(depth + 1);
    return frame[0] + frame[1];
}}

static int fpu_features(void)
{{
#if defined(__arm__)
    /* MVFR0: single precision in bits 7:4, double precision in bits 11:8. */
    return (int)(0x10000u | (*(volatile uint32_t *)0xe000ef40u & 0xff0u));
#else
    return 5;
#endif
}}

static int misbehave(int8_t how)
{{
    volatile int spin = 1;
    if (how == 1) {{
        while (spin) {{
        }}
    }}
    if (how == 2) {{
        __builtin_trap();
    }}
    if (how == 3) {{
        return big_frame();
    }}
    if (how == 4) {{
        return recurse(0);
    }}
    if (how == 5) {{
        return fpu_features();
    }}
    return 5;
}}

int fake_invoke(const int8_t *a, const float *b, const uint8_t *c,
                int8_t *doubled, uint8_t *inverted, float *halved)
{{
    int i;
    if (a[0] == -128) {{
        return misbehave(a[1]);
    }}
    for (i = 0; i < {A_LEN}; ++i) {{
        int v = 2 * a[i];
        doubled[i] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
    }}
    for (i = 0; i < {C_LEN}; ++i) {{
        inverted[i] = (uint8_t)(255 - c[i]);
    }}
    for (i = 0; i < {B_LEN}; ++i) {{
        halved[i] = b[i] * 0.5f;
    }}
    return 0;
}}
"""


def require_toolchain(target: Target, *, cc: str | None = None) -> None:
    """Skip when the target's tools are missing, except on CI (CI=true), where it fails."""
    try:
        check_toolchain(target, cc=cc)
    except CodegenError as error:
        require(False, f"toolchain missing: {error}")


def write_fake_model(directory: Path, source: str = FAKE_C) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fake.h").write_text(FAKE_H)
    (directory / "fake.c").write_text(source)
    glue = render(
        "harness_glue.c.j2",
        name="fake",
        io_in_arena=False,
        inputs=[
            {"c_type": "int8_t", "elements": A_LEN},
            {"c_type": "float", "elements": B_LEN},
            {"c_type": "uint8_t", "elements": C_LEN},
        ],
        outputs=[
            {"c_type": "int8_t", "elements": A_LEN},
            {"c_type": "uint8_t", "elements": C_LEN},
            {"c_type": "float", "elements": B_LEN},
        ],
    )
    (directory / "harness_glue.c").write_text(glue)
    return directory


@dataclass(frozen=True)
class Batch:
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray

    def input_bytes(self) -> bytes:
        return np.hstack([self.a.view(np.uint8), self.b.view(np.uint8), self.c]).tobytes()

    def expected_bytes(self) -> bytes:
        doubled = np.clip(self.a.astype(np.int16) * 2, -128, 127).astype(np.int8)
        inverted = (255 - self.c).astype(np.uint8)
        halved = self.b * np.float32(0.5)
        return np.hstack([doubled.view(np.uint8), inverted, halved.view(np.uint8)]).tobytes()


def random_batch(samples: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        a=rng.integers(-127, 128, size=(samples, A_LEN), dtype=np.int8),  # -128 is a sentinel
        b=(rng.standard_normal((samples, B_LEN)) * 1000).astype(np.float32),
        c=rng.integers(0, 256, size=(samples, C_LEN), dtype=np.uint8),
    )


def sentinel_sample(how: int) -> bytes:
    batch = random_batch(1, seed=how)
    batch.a[0, :2] = (-128, how)
    return batch.input_bytes()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_model(tmp_path_factory.mktemp("fake"))


@pytest.fixture(scope="module")
def build_for(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """Builds the fake model's harness once per target for this module."""
    cache: dict[str, Built] = {}

    def build(name: str) -> Built:
        if name not in cache:
            target = get_target(name)
            require_toolchain(target)
            build_dir = tmp_path_factory.mktemp(f"build-{name}")
            cache[name] = build_firmware(model_dir, "fake", target, build_dir), target
        return cache[name]

    return build


def _qemu(*names: str) -> list[object]:
    return [pytest.param(name, marks=pytest.mark.qemu) for name in names]


@pytest.fixture(params=["host", *_qemu(*QEMU_TARGETS)])
def built(request: pytest.FixtureRequest, build_for: Builder) -> Built:
    return build_for(request.param)


@pytest.fixture(params=_qemu(*QEMU_TARGETS))
def built_qemu(request: pytest.FixtureRequest, build_for: Builder) -> Built:
    return build_for(request.param)


def symbol_at(executable: Path, address: int, target: Target) -> str:
    """The name of the function in `executable` that holds `address`."""
    table = subprocess.run([target.toolchain_prefix + "nm", "-S", str(executable)],
                           capture_output=True, text=True, check=True).stdout
    for line in table.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tT":
            start, size = int(fields[0], 16), int(fields[1], 16)
            if start <= address < start + size:
                return fields[3]
    return "?"


def fault_message(executable: Path, target: Target, how: int) -> str:
    with pytest.raises(CodegenError, match=r"exit status 70: ") as caught:
        run_firmware(executable, target, sentinel_sample(how), timeout=30)
    return str(caught.value).split("exit status 70: ", 1)[1]


def test_batch_matches_numpy(built: Built) -> None:
    executable, target = built
    batch = random_batch(100)
    assert run_firmware(executable, target, batch.input_bytes()) == batch.expected_bytes()


def test_empty_input_gives_empty_output(built: Built) -> None:
    executable, target = built
    assert run_firmware(executable, target, b"") == b""


def test_invoke_failure_is_reported(built: Built) -> None:
    executable, target = built
    data = random_batch(2).input_bytes() + sentinel_sample(0)
    with pytest.raises(CodegenError, match=r"sample 2: model invoke failed with status 5"):
        run_firmware(executable, target, data)


def test_partial_sample_is_reported(built: Built) -> None:
    executable, target = built
    data = random_batch(3).input_bytes()[:-1]
    sample_bytes = A_LEN + 4 * B_LEN + C_LEN
    with pytest.raises(CodegenError,
                       match=rf"sample 2: partial sample .*\({sample_bytes - 1} of {sample_bytes}"):
        run_firmware(executable, target, data)


# The timeout is the runner's, the same for every QEMU target: one of them is enough.
@pytest.mark.parametrize("name", ["host", *_qemu("cortex-m4")])
def test_hang_times_out(build_for: Builder, name: str) -> None:
    executable, target = build_for(name)
    with pytest.raises(CodegenError, match=r"timed out after 2 s"):
        run_firmware(executable, target, sentinel_sample(1), timeout=2)


def test_fault_handler_reports_the_trap(built_qemu: Built) -> None:
    executable, target = built_qemu
    message = fault_message(executable, target, 2)
    if target.platform == "riscv":  # __builtin_trap() is an ebreak
        found = re.fullmatch(r"fault: breakpoint \(mcause 0x00000003\) at pc 0x([0-9a-f]{8}), "
                             r"mtval 0x[0-9a-f]{8}", message)
    else:
        # ARMv6-M has no fault status register; elsewhere the trap is an undefined
        # instruction.
        status = "" if target.name == "cortex-m0" else r", cfsr 0x00010000"
        found = re.fullmatch(rf"fault: HardFault \(exception 0x00000003\) at pc "
                             rf"0x([0-9a-f]{{8}}){status}", message)
    assert found, message
    assert symbol_at(executable, int(found[1], 16), target) in ("misbehave", "fake_invoke")


@pytest.mark.parametrize("name", _qemu(*STACK_LIMIT_TARGETS))
def test_stack_overflow_faults(build_for: Builder, name: str) -> None:
    """MSPLIM catches both an oversized frame (the instruction lowering SP faults, after
    which the fault frame is still stacked) and a recursion whose fault frame itself no
    longer fits (SP is left at the limit, there is no PC to report)."""
    executable, target = build_for(name)
    overflow = r": stack overflow \(SP below MSPLIM\), cfsr 0x00100000"
    message = fault_message(executable, target, 3)
    found = re.fullmatch(rf"fault: HardFault \(exception 0x00000003\) at pc 0x([0-9a-f]{{8}})"
                         rf"{overflow}", message)
    assert found, message
    assert symbol_at(executable, int(found[1], 16), target) == "big_frame"
    message = fault_message(executable, target, 4)
    assert re.fullmatch(rf"fault: HardFault \(exception 0x00000003\){overflow}", message), message


@pytest.mark.parametrize("name", _qemu(*MPU_TARGETS))
def test_stack_overflow_faults_through_the_mpu(build_for: Builder, name: str) -> None:
    """Both an oversized frame and unbounded recursion fault at the first access below RAM;
    the exception frame cannot be stacked there either, so there is no PC to report
    (ARMv7-M's fault status shows the data access violation and the stacking error)."""
    executable, target = build_for(name)
    status = "" if name == "cortex-m0" else ", cfsr 0x00000092"
    for how in (3, 4):
        message = fault_message(executable, target, how)
        assert message == ("fault: HardFault (exception 0x00000003): stack overflow "
                           f"(SP below the stack){status}"), message


@pytest.mark.parametrize("name", _qemu(*RISCV_TARGETS))
def test_stack_overflow_faults_through_the_pmp(build_for: Builder, name: str) -> None:
    """RISC-V: the code below the stack is read-only for machine mode too (a locked PMP
    region), so an oversized frame and unbounded recursion fault at their first store
    below the stack; the handler sees SP below it and names the function."""
    executable, target = build_for(name)
    for how, function in ((3, "big_frame"), (4, "recurse")):
        message = fault_message(executable, target, how)
        found = re.fullmatch(r"fault: store access fault \(mcause 0x00000007\) at pc "
                             r"0x([0-9a-f]{8}): stack overflow \(SP below the stack\), "
                             r"mtval 0x([0-9a-f]{8})", message)
        assert found, message
        assert symbol_at(executable, int(found[1], 16), target) == function
        assert int(found[2], 16) < 0x80400000  # the store hit the code, below RAM


@pytest.mark.parametrize("name", _qemu(*ARM_TARGETS))
def test_fpu_is_the_one_the_flags_name(build_for: Builder, name: str) -> None:
    """The core QEMU emulates has the FPU the target's flags compile for (MVFR0), the startup
    enables it (the batch test runs the fake model's float arithmetic) and hard-float builds
    do use it. The Cortex-M55's -mcpu implies its FPU (double precision, as the M55 has)."""
    executable, target = build_for(name)
    with pytest.raises(CodegenError, match=r"model invoke failed with status (\d+)") as caught:
        run_firmware(executable, target, sentinel_sample(5))
    status = int(re.search(r"invoke failed with status (\d+)", str(caught.value))[1])
    assert status >> 16 == 1, status
    single, double = (status >> 4) & 0xF, (status >> 8) & 0xF
    fpu = next((f.split("=", 1)[1] for f in target.machine_flags if f.startswith("-mfpu=")),
               "fpv5-d16" if target.name == "cortex-m55" else None)
    assert (single != 0) == (fpu is not None), f"MVFR0 {status:#x} vs -mfpu={fpu}"
    assert (double != 0) == (fpu is not None and "-sp-" not in fpu), f"MVFR0 {status:#x} vs {fpu}"
    listing = subprocess.run(["arm-none-eabi-objdump", "-d", str(executable)],
                             capture_output=True, text=True, check=True).stdout
    assert ("\tvmul.f32" in listing) == (fpu is not None)


def test_cortex_m0_image_is_armv6m(build_for: Builder) -> None:
    """Startup, harness, newlib and libgcc: no instruction the Cortex-M0 lacks, although
    the Cortex-M3 that runs the image under QEMU would execute one."""
    executable, _ = build_for("cortex-m0")
    assert armv6m.violations(executable) == []
    executable, _ = build_for("cortex-m3")  # the check does see ARMv7-M code
    assert any(v.endswith(("cbz", "cbnz")) for v in armv6m.violations(executable))


@pytest.mark.qemu
def test_icount_run_matches(build_for: Builder) -> None:
    executable, target = build_for("cortex-m4")
    batch = random_batch(10, seed=3)
    output = run_firmware(executable, target, batch.input_bytes(), icount=True)
    assert output == batch.expected_bytes()


@pytest.mark.parametrize("cc", [None, "clang"])
def test_host_sanitized_build(model_dir: Path, tmp_path: Path, cc: str | None) -> None:
    if cc is not None:
        require(shutil.which(cc) is not None, f"{cc} is not installed (scripts/setup installs it)")
    target = get_target("host")
    require_toolchain(target, cc=cc)
    executable = build_firmware(model_dir, "fake", target, tmp_path, sanitize=True, cc=cc)
    batch = random_batch(100, seed=1)
    assert run_firmware(executable, target, batch.input_bytes()) == batch.expected_bytes()


def test_compile_error_names_the_log(tmp_path: Path) -> None:
    target = get_target("host")
    require_toolchain(target)
    broken = write_fake_model(tmp_path / "model", FAKE_C.replace("return 0;", "return zero;"))
    with pytest.raises(CodegenError, match=r"error: .*zero.*full log: .*build\.log") as caught:
        build_firmware(broken, "fake", target, tmp_path / "build")
    assert "\n" not in str(caught.value)
    assert "zero" in (tmp_path / "build" / "build.log").read_text()


def test_rebuild_in_same_dir_with_other_options(model_dir: Path, tmp_path: Path) -> None:
    target = get_target("host")
    require_toolchain(target)
    first = build_firmware(model_dir, "fake", target, tmp_path, optimization="0")
    second = build_firmware(model_dir, "fake", target, tmp_path, optimization="s")
    assert first == second and second.is_file()


def test_rebuild_after_the_model_changed(model_dir: Path, tmp_path: Path) -> None:
    """A configured build directory builds a changed model with ninja alone, even when the
    new file carries the old one's timestamp (rewritten within the clock's granularity)."""
    target = get_target("host")
    require_toolchain(target)
    first = write_fake_model(tmp_path / "model")
    executable = build_firmware(first, "fake", target, tmp_path / "build")
    with pytest.raises(CodegenError, match=r"failed with status 5"):
        run_firmware(executable, target, sentinel_sample(0))
    stat = (first / "fake.c").stat()
    write_fake_model(first, FAKE_C.replace("return 5;\n}", "return 6;\n}"))
    os.utime(first / "fake.c", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert build_firmware(first, "fake", target, tmp_path / "build") == executable
    assert "meson setup" not in (tmp_path / "build" / "build.log").read_text()
    with pytest.raises(CodegenError, match=r"failed with status 6"):
        run_firmware(executable, target, sentinel_sample(0))


def test_get_target_lists_valid_names() -> None:
    with pytest.raises(CodegenError, match=r"unknown target 'cortex-m99'; valid targets: host, "
                       r"cortex-m0, cortex-m3, cortex-m4, cortex-m7, cortex-m33"):
        get_target("cortex-m99")
    assert get_target("cortex-m4") is TARGETS["cortex-m4"]


def test_cross_file_comes_from_the_target() -> None:
    text = cross_file_text(get_target("cortex-m4"))
    assert "c = 'arm-none-eabi-gcc'" in text
    assert "'-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=hard', '-mfpu=fpv4-sp-d16'" in text
    assert "skip_sanity_check = true" in text
    with pytest.raises(CodegenError):
        cross_file_text(get_target("host"))


@pytest.mark.parametrize("name", QEMU_TARGETS)
def test_every_cross_target_has_its_cross_file_and_board(name: str) -> None:
    target = get_target(name)
    text = cross_file_text(target)
    assert f"c_args = {list(target.machine_flags)!r}" in text
    assert f"c_link_args = {list(target.linker_flags)!r}" in text
    assert f"cpu = '{target.cpu}'" in text
    assert f"cpu_family = '{target.cpu_family}'" in text
    flag = "-mcpu" if target.platform == "cortex-m" else "-march"
    assert target.machine_flags[0] == f"{flag}={target.cpu}"
    firmware = Path(__file__).parents[1] / "firmware" / target.platform
    assert (firmware / f"{target.board}.ld").is_file()


def test_riscv_links_against_the_multilib_of_its_isa() -> None:
    """gcc picks the C library by -march: riscv32 has its own multilib; rv32gcv has none
    (the V extension) and links against rv32imafdc/ilp32d, the same ISA without V."""
    for name, directory in (("riscv32", "rv32imac/ilp32"), ("riscv32-v", "rv32imafdc/ilp32d")):
        target = get_target(name)
        gcc = require_tool_of(target)
        found = subprocess.run([gcc, *target.linker_flags, "-print-multi-directory"],
                               capture_output=True, text=True, check=True).stdout.strip()
        assert found == directory, (name, found)


def require_tool_of(target: Target) -> str:
    gcc = shutil.which(target.toolchain_prefix + "gcc")
    require(gcc is not None, f"{target.toolchain_prefix}gcc is not installed")
    return str(gcc)

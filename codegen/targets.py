"""The targets the harness firmware builds and runs on: one table read by build and runner.

A cross target names the gcc machine flags, the board (which selects the linker script
`firmware/PLATFORM/BOARD.ld`, holding the board's memory map; PLATFORM is `cortex-m` or
`riscv`, the directory of its startup code) and the QEMU machine that emulates it. Adding
a core is a row in `TARGETS` plus, for a board with a new memory map, a linker script.
The meson cross file and the CMake toolchain file are generated from the row
(`cross_file_text`, `toolchain_file_text`).
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen.errors import CodegenError

HOST_BOARD = "host"


@dataclass(frozen=True)
class Target:
    """One place the harness runs: the build machine itself, or a QEMU-emulated core."""

    name: str
    """Name used on the command line, e.g. "host" or "cortex-m4"."""
    board: str
    """Board selector for meson: "host", or a linker script name in firmware/cortex-m."""
    cpu: str = ""
    """Core name for the meson cross file, e.g. "cortex-m4"; empty for the host."""
    machine_flags: tuple[str, ...] = ()
    """gcc flags selecting the core, used for compiling and linking."""
    qemu_binary: str = ""
    """QEMU system emulator for the target; empty for the host."""
    qemu_machine: str = ""
    """qemu-system-arm -M value; empty for the host."""
    qemu_cpu: str = ""
    """qemu-system-arm -cpu value (on mps2 boards it must be the board's own core)."""
    toolchain_prefix: str = ""
    """Prefix of the cross tools, e.g. "arm-none-eabi-"; empty for the host compiler."""
    cpu_family: str = ""
    """meson's cpu_family of the core ("arm", "riscv32"); it picks the firmware platform."""
    link_flags: tuple[str, ...] | None = None
    """gcc machine flags for linking when they differ from `machine_flags` (a -march that
    no multilib matches links against the closest library)."""
    qemu_args: tuple[str, ...] = ()
    """More qemu-system arguments (RISC-V virt: -bios none)."""
    objdump_flags: tuple[str, ...] = ()
    """objdump options that decode every instruction the core runs (Helium needs -m)."""
    note: str = ""
    """What the README's targets table says about it besides its flags and machine."""
    instructions_per_tick: float = 0
    """Under QEMU with -icount shift=0 (one instruction per virtual nanosecond): guest
    instructions per tick of the SysTick on the processor clock, i.e. 1e9 / the board's
    clock in Hz (codegen bench's fallback when it cannot count instructions exactly)."""

    @property
    def is_host(self) -> bool:
        return self.board == HOST_BOARD

    @property
    def platform(self) -> str:
        """The firmware directory of its startup code and linker scripts."""
        return "riscv" if self.cpu_family == "riscv32" else "cortex-m"

    @property
    def linker_flags(self) -> tuple[str, ...]:
        return self.machine_flags if self.link_flags is None else self.link_flags

    @property
    def executable_name(self) -> str:
        return "harness" if self.is_host else "harness.elf"


def _cortex_m(name: str, board: str, qemu_cpu: str, *fpu_flags: str,
              instructions_per_tick: float = 40, note: str = "",
              objdump_flags: tuple[str, ...] = ()) -> Target:
    return Target(
        name=name,
        board=board,
        cpu=name,
        machine_flags=(f"-mcpu={name}", "-mthumb", *fpu_flags),
        qemu_binary="qemu-system-arm",
        qemu_machine=board,
        qemu_cpu=qemu_cpu,
        toolchain_prefix="arm-none-eabi-",
        cpu_family="arm",
        objdump_flags=objdump_flags,
        note=note,
        instructions_per_tick=instructions_per_tick,
    )


# Debian's riscv64-unknown-elf toolchain has no newlib: picolibc's headers and library,
# for compiling (its -isystem) as for linking.
_PICOLIBC = ("--specs=picolibc.specs",)


def _riscv32(name: str, march: str, mabi: str, qemu_cpu: str, note: str,
             link_march: str | None = None) -> Target:
    return Target(
        name=name,
        board="virt",
        cpu=march,
        machine_flags=(f"-march={march}", f"-mabi={mabi}", *_PICOLIBC),
        qemu_binary="qemu-system-riscv32",
        qemu_machine="virt",
        qemu_cpu=qemu_cpu,
        toolchain_prefix="riscv64-unknown-elf-",
        cpu_family="riscv32",
        link_flags=(None if link_march is None
                    else (f"-march={link_march}", f"-mabi={mabi}", *_PICOLIBC)),
        qemu_args=("-bios", "none"),
        note=note,
        instructions_per_tick=1,
    )


# QEMU's mps2 boards accept only their own core as -cpu. QEMU has no Cortex-M0 board, so
# the cortex-m0 build (ARMv6-M code, a subset of ARMv7-M) runs on mps2-an385's Cortex-M3;
# tests/test_firmware.py checks that its image holds no instruction the M0 lacks.
# The FPU flags follow the core each board emulates: the AN386 Cortex-M4 has the
# single-precision FPv4; QEMU's Cortex-M7 (AN500) has the double-precision FPv5 (MVFR0
# reports double precision) and its Cortex-M33 (AN505) the single-precision FPv5. The
# Cortex-M33 runs in the Secure state, where it resets (see mps2-an505.ld).
# SysTick rates under -icount shift=0, measured against exact instruction counts: the
# 25 MHz AN385, AN386 and AN500 tick every 40 instructions, the 20 MHz AN505 every 50, the
# 32 MHz AN547 every 31.25.
# The Cortex-M55 (MPS3 AN547, the one QEMU board with Helium) stands for the Cortex-M85
# too, which runs the same code: GCC 12 has no -mcpu=cortex-m85 and QEMU 7.2 no such CPU.
# Its -mcpu implies the double-precision FPv5 and MVE with floating point.
# RISC-V: QEMU's virt board, machine mode. riscv32 is rv32imac (ESP32-C6 class; the
# ESP32-C3 is rv32imc), linked against the rv32imac/ilp32 multilib, and runs on a CPU with
# the F and D extensions switched off. riscv32-v is rv32gcv (RVV 1.0, VLEN 128 under QEMU);
# no multilib of Debian's toolchain has V, so it links against rv32imafdc/ilp32d. minstret
# counts instructions, one per tick.
TARGETS: dict[str, Target] = {
    "host": Target(name="host", board=HOST_BOARD),
    "cortex-m0": _cortex_m("cortex-m0", "mps2-an385", "cortex-m3", "-mfloat-abi=soft"),
    "cortex-m3": _cortex_m("cortex-m3", "mps2-an385", "cortex-m3", "-mfloat-abi=soft"),
    "cortex-m4": _cortex_m(
        "cortex-m4", "mps2-an386", "cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"
    ),
    "cortex-m7": _cortex_m(
        "cortex-m7", "mps2-an500", "cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16"
    ),
    "cortex-m33": _cortex_m(
        "cortex-m33", "mps2-an505", "cortex-m33", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16",
        instructions_per_tick=50,
    ),
    "cortex-m55": _cortex_m(
        "cortex-m55", "mps3-an547", "cortex-m55", "-mfloat-abi=hard",
        instructions_per_tick=31.25,
        objdump_flags=("-m", "armv8.1-m.main"),  # Debian's binutils 2.40 takes no "+mve"
        note="Helium (MVE) kernels; stands for the Cortex-M85 too (same code; GCC 12 and "
             "QEMU 7.2 have no M85)",
    ),
    "riscv32": _riscv32("riscv32", "rv32imac", "ilp32", "rv32,f=false,d=false",
                        "plain C kernels; the ESP32-C3/C6 class"),
    "riscv32-v": _riscv32("riscv32-v", "rv32gcv", "ilp32d", "rv32,v=true,vlen=128",
                          "RVV 1.0 vector kernels (VLEN 128 under QEMU)",
                          link_march="rv32gc"),
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        valid = ", ".join(TARGETS)
        raise CodegenError(f"unknown target {name!r}; valid targets: {valid}") from None


def _meson_array(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_meson_string(v) for v in values) + "]"


def _meson_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cross_file_text(target: Target) -> str:
    """The meson cross file for a Cortex-M target (the host builds natively)."""
    if target.is_host:
        raise CodegenError("the host target builds natively and has no cross file")
    prefix = target.toolchain_prefix
    flags = _meson_array(target.machine_flags)
    link_flags = _meson_array(target.linker_flags)
    return "\n".join([
        f"# meson cross file for target {target.name}, generated from codegen/targets.py",
        "[binaries]",
        f"c = {_meson_string(prefix + 'gcc')}",
        f"ar = {_meson_string(prefix + 'ar')}",
        f"strip = {_meson_string(prefix + 'strip')}",
        "",
        "[built-in options]",
        f"c_args = {flags}",
        f"c_link_args = {link_flags}",
        "",
        "[properties]",
        "# the bare-metal toolchain cannot link a test program without startup code",
        "skip_sanity_check = true",
        "",
        "[host_machine]",
        "system = 'none'",
        f"cpu_family = {_meson_string(target.cpu_family)}",
        f"cpu = {_meson_string(target.cpu)}",
        "endian = 'little'",
        "",
    ])


def _cmake_string(value: str) -> str:
    """A CMake quoted argument holding exactly `value` (no variable reference, no list
    separator, no line break survives)."""
    escaped = value
    for char, escape in (("\\", "\\\\"), ('"', '\\"'), ("$", "\\$"), (";", "\\;"),
                         ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        escaped = escaped.replace(char, escape)
    return f'"{escaped}"'


def toolchain_file_text(target: Target) -> str:
    """The CMake toolchain file for a Cortex-M target, the counterpart of the meson cross
    file: the cross compilers and the target's machine flags (`CMAKE_<LANG>_FLAGS_INIT`,
    so a project's own flags come on top of them)."""
    if target.is_host:
        raise CodegenError("the host target builds natively and has no toolchain file")
    prefix = target.toolchain_prefix
    flags = _cmake_string(" ".join(target.machine_flags))
    link_flags = _cmake_string(" ".join(target.linker_flags))
    return "\n".join([
        f"# CMake toolchain file for target {target.name}, generated by codegen from its",
        "# targets table. Configure with: cmake -DCMAKE_TOOLCHAIN_FILE=<this file> ...",
        "set(CMAKE_SYSTEM_NAME Generic)",
        f"set(CMAKE_SYSTEM_PROCESSOR {target.cpu_family})",
        f"set(CMAKE_C_COMPILER {_cmake_string(prefix + 'gcc')})",
        f"set(CMAKE_CXX_COMPILER {_cmake_string(prefix + 'g++')})",
        f"set(CMAKE_ASM_COMPILER {_cmake_string(prefix + 'gcc')})",
        f"set(CMAKE_C_FLAGS_INIT {flags})",
        f"set(CMAKE_CXX_FLAGS_INIT {flags})",
        f"set(CMAKE_ASM_FLAGS_INIT {flags})",
        f"set(CMAKE_EXE_LINKER_FLAGS_INIT {link_flags})",
        "# the bare-metal toolchain cannot link a test program without startup code",
        "set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)",
        "",
    ])

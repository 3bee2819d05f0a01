"""A second, independent implementation of the cycle model's Cortex-M4 table, to check the
QEMU plugin (firmware/qemu/bench_plugin.c + cycle_model.c) against on the same binaries.

It shares nothing with the plugin but the rules as README/BENCHMARKS.md state them:
- the instructions come from arm-none-eabi-objdump's disassembly (mnemonics and
  operands), not from decoding the encodings;
- the executed instructions come from QEMU's own log (`-d in_asm,exec,nochain`: each
  translation block's instructions, each block execution, blocks that QEMU stopped before
  running them and blocks it rewound for an I/O access), in program order, not from the
  plugin's callbacks;
- the Cortex-M4 rules are applied to that stream instruction by instruction: the table's
  cost, the pipelining of a single load or register-offset store behind a single load
  whose loaded register it does not use for its address, IT folding behind a 16-bit
  instruction that is not a branch, and a taken branch's refill (1 for a target in the
  instruction, 2 for one from a register or memory, 1 more for a 32-bit target at an
  address 2 mod 4); a conditional branch is taken when the next instruction executed is
  not the one after it. Layer marks (`mov fp, fp`) cost nothing and are transparent.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codegen.runner import INPUT_FILE, qemu_command
from codegen.targets import Target

CONDITIONS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge",
              "lt", "gt", "le", "al"}
REGISTERS = {**{f"r{i}": i for i in range(16)}, "sb": 9, "sl": 10, "fp": 11, "ip": 12,
             "sp": 13, "lr": 14, "pc": 15}

CLASSES: dict[str, set[str]] = {
    "load": {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrt", "ldrbt", "ldrht", "ldrsbt",
             "ldrsht", "ldrex", "ldrexb", "ldrexh", "pld", "pli"},
    "store": {"str", "strb", "strh", "strt", "strbt", "strht", "strex", "strexb", "strexh"},
    "load_dual": {"ldrd"},
    "store_dual": {"strd"},
    "load_multi": {"ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "pop"},
    "store_multi": {"stm", "stmia", "stmea", "stmdb", "stmfd", "push"},
    "branch": {"b", "bl", "bx", "blx", "cbz", "cbnz"},
    "table_branch": {"tbb", "tbh"},
    "mul": {"mul"},
    "mla": {"mla", "mls"},
    "mul_long": {"smull", "umull"},
    "mac_long": {"smlal", "umlal", "umaal", "smlalbb", "smlalbt", "smlaltb", "smlaltt",
                 "smlald", "smlaldx", "smlsld", "smlsldx"},
    "div": {"sdiv", "udiv"},
    "dsp_mul": {"smlabb", "smlabt", "smlatb", "smlatt", "smulbb", "smulbt", "smultb",
                "smultt", "smlawb", "smlawt", "smulwb", "smulwt", "smlad", "smladx", "smlsd",
                "smlsdx", "smuad", "smuadx", "smusd", "smusdx", "smmul", "smmulr", "smmla",
                "smmlar", "smmls", "smmlsr", "usad8", "usada8"},
    "nop": {"nop", "yield", "sev"},
    "barrier": {"dmb", "dsb", "isb", "clrex"},
    "system": {"mrs", "msr", "cpsid", "cpsie", "svc", "bkpt", "udf", "wfi", "wfe"},
    "fp_load": {"vldr"},
    "fp_store": {"vstr"},
    "fp_load_multi": {"vldm", "vldmia", "vldmdb", "vpop"},
    "fp_store_multi": {"vstm", "vstmia", "vstmdb", "vpush"},
    "fp_mac": {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"},
    "fp_div": {"vdiv", "vsqrt"},
    "fp_move": {"vmrs", "vmsr"},
}
MNEMONIC_CLASS = {name: cls for cls, names in CLASSES.items() for name in names}

# The Cortex-M4 table; multiple transfers add one per word.
M4_CYCLES = {"alu": 1, "mul": 1, "mla": 1, "dsp_mul": 1, "mul_long": 1, "mac_long": 1,
             "div": 12, "load": 2, "store": 1, "load_dual": 3, "store_dual": 3,
             "load_multi": 1, "store_multi": 1, "branch": 1, "table_branch": 2, "it": 1,
             "nop": 1, "barrier": 1, "system": 2, "fp_alu": 1, "fp_mac": 3, "fp_div": 14,
             "fp_load": 2, "fp_store": 2, "fp_load_multi": 1, "fp_store_multi": 1,
             "fp_move": 1, "mark": 0}
IMMEDIATE_TARGET = {"b", "bl", "cbz", "cbnz"}


@dataclass(frozen=True)
class Insn:
    address: int
    size: int
    mnemonic: str
    operands: str
    cls: str
    base: str  # the mnemonic without condition, flag-setting or width suffixes
    conditional: bool  # B<cond>, CBZ, CBNZ
    writes_pc: bool
    loaded: frozenset[int]  # registers a load fills from memory
    address_registers: frozenset[int]  # registers in the [...] of a load or store
    words: int  # words moved by a multiple load or store
    it_length: int  # instructions an IT makes conditional

    def cycles(self) -> int:
        cost = M4_CYCLES[self.cls]
        if self.cls == "store" and (len(self.address_registers) > 1 or
                                    self.base.startswith("strex")):
            cost = 2  # only a store with an immediate offset is always one cycle
        return cost + self.words


def _registers(text: str) -> list[int]:
    """Core registers named in an operand text, ranges ("r4-r7") expanded."""
    found: list[int] = []
    for first, last in re.findall(r"\b(r\d+|sb|sl|fp|ip|sp|lr|pc)\b(?:-(r\d+|sb|sl|fp|ip|lr))?",
                                  text):
        start = REGISTERS[first]
        found += list(range(start, REGISTERS[last] + 1)) if last else [start]
    return found


def _fp_words(text: str) -> int:
    words = 0
    for kind, first, last in re.findall(r"\b([sd])(\d+)(?:-[sd](\d+))?", text):
        count = int(last) - int(first) + 1 if last else 1
        words += count * (2 if kind == "d" else 1)
    return words


def _resolve(mnemonic: str) -> tuple[str, bool]:
    """(base mnemonic, has a condition suffix)."""
    name = mnemonic.split(".")[0]
    if name in MNEMONIC_CLASS or re.fullmatch(r"it[te]{0,3}", name):
        return name, False
    if name[-2:] in CONDITIONS and name[:-2] in MNEMONIC_CLASS:
        return name[:-2], True
    if name.endswith("s") and name[:-1] in MNEMONIC_CLASS:
        return name[:-1], False
    return name, False


def classify(address: int, size: int, mnemonic: str, operands: str) -> Insn:
    base, suffixed = _resolve(mnemonic)
    cls = MNEMONIC_CLASS.get(base, "alu")
    registers = _registers(operands)
    bracket = re.search(r"\[([^\]]*)\]", operands)
    address_registers = frozenset(_registers(bracket[1])) if bracket else frozenset()
    loaded: frozenset[int] = frozenset()
    words = 0
    it_length = 0
    if mnemonic == "mov" and operands.replace(" ", "") == "fp,fp":
        cls = "mark"
    elif re.fullmatch(r"it[te]{0,3}", base):
        cls, it_length = "it", len(base) - 1
    elif base.startswith("v") and cls == "alu":
        core = [r for r in registers if r != 13]  # vmov with a core register
        cls = "fp_move" if base == "vmov" and core else "fp_alu"
    if cls == "load" and base not in ("pld", "pli"):
        loaded = frozenset(registers[:1])
    elif cls == "load_dual":
        loaded = frozenset(registers[:2])
    elif cls in ("load_multi", "store_multi"):
        listed = re.search(r"\{([^}]*)\}", operands)
        names = _registers(listed[1]) if listed else []
        words = len(names)
        if cls == "load_multi":
            loaded = frozenset(names)
    elif cls in ("fp_load_multi", "fp_store_multi"):
        words = _fp_words(operands.split("{", 1)[-1])
    writes_pc = (cls in ("branch", "table_branch") or 15 in loaded or
                 (cls == "alu" and registers[:1] == [15]))
    if cls == "alu" and writes_pc:
        cls = "branch"
    conditional = cls == "branch" and (suffixed or base in ("cbz", "cbnz"))
    return Insn(address, size, mnemonic, operands, cls, base, conditional, writes_pc, loaded,
                address_registers, words, it_length)


# "   a94:\te92d 4ff0 \tstmdb\tsp!, {r4, r5, r6, r7, r8, r9, sl, fp, lr}"
_LINE = re.compile(r"\s*([0-9a-f]+):\t([0-9a-f]{4})( [0-9a-f]{4})? *\t(\S+)\t?([^@;]*)")


def disassemble(elf: Path, objdump: str = "arm-none-eabi-objdump") -> dict[int, Insn]:
    listing = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True,
                             check=True).stdout
    found = {}
    for line in listing.splitlines():
        if match := _LINE.match(line):
            address = int(match[1], 16)
            found[address] = classify(address, 4 if match[3] else 2, match[4],
                                      match[5].strip())
    return found


def executed(log: Path) -> Iterator[int]:
    """The addresses of the instructions QEMU executed, in order, from its
    `-d in_asm,exec,nochain` log."""
    blocks: dict[str, list[int]] = {}
    translating: list[int] = []
    last: list[int] | None = None
    with log.open() as lines:
        for line in lines:
            if line.startswith("0x"):
                translating.append(int(line.split(":", 1)[0], 16))
            elif line.startswith("Trace "):
                pointer = line.split()[2]
                if translating:
                    blocks[pointer] = translating
                    translating = []
                if last is not None:
                    yield from last
                last = blocks[pointer]
            elif line.startswith("Stopped execution of TB chain before"):
                last = None  # QEMU left the block before its first instruction
            elif line.startswith("cpu_io_recompile: rewound execution of TB to"):
                resume = int(line.split()[-1], 16)
                if last is not None and resume in last:
                    last = last[:last.index(resume)]
    if last is not None:
        yield from last


@dataclass(frozen=True)
class MarkCount:
    instructions: int  # executed before the mark, marks not counted
    cycles: int


def model(addresses: Iterator[int], program: dict[int, Insn]) -> list[MarkCount]:
    """The instructions and Cortex-M4 cycles at every mark of the executed stream."""
    marks: list[MarkCount] = []
    instructions = total = 0
    previous: Insn | None = None
    branch: Insn | None = None  # a branch whose outcome the next address tells
    branch_conditional = False
    it_left = 0
    for address in addresses:
        insn = program[address]
        if branch is not None:
            fall_through = branch.address + branch.size
            if not branch_conditional or address != fall_through:
                refill = 1 if branch.base in IMMEDIATE_TARGET else 2
                total += refill + (1 if insn.size == 4 and address % 4 == 2 else 0)
            branch = None
        if insn.cls == "mark":
            marks.append(MarkCount(instructions, total))
            continue
        conditional = insn.conditional or it_left > 0
        it_left = insn.it_length if insn.cls == "it" else max(it_left - 1, 0)
        cost = insn.cycles()
        if previous is not None:
            cost += _pairing(previous, insn)
        total += cost
        instructions += 1
        if insn.writes_pc:
            branch, branch_conditional = insn, conditional
        previous = insn
    return marks


def _pairing(previous: Insn, insn: Insn) -> int:
    pipelines = insn.cls == "load" or (insn.cls == "store" and insn.cycles() == 2)
    if (previous.cls == "load" and not previous.writes_pc and pipelines and
            not insn.writes_pc and not previous.loaded & insn.address_registers):
        return -1
    if insn.cls == "it" and previous.size == 2 and not previous.writes_pc:
        return -1  # folded
    return 0


def trace(executable: Path, target: Target, input_bytes: bytes, log: Path,
          timeout: float = 600.0) -> None:
    """Run the benchmark harness under QEMU with its execution log in `log`."""
    with tempfile.TemporaryDirectory(prefix="m4-trace-") as tmp:
        (Path(tmp) / INPUT_FILE).write_bytes(input_bytes)
        command = [*qemu_command(executable, target, icount=True)[:-2],
                   "-d", "in_asm,exec,nochain", "-D", str(log), "-kernel",
                   str(executable.resolve())]
        subprocess.run(command, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True,
                       check=True, timeout=timeout)


def cycles_at_marks(executable: Path, target: Target, input_bytes: bytes,
                    work: Path) -> list[MarkCount]:
    """Trace the harness under QEMU and apply the table: every mark's counts."""
    log = work / "qemu-trace.log"
    trace(executable, target, input_bytes, log)
    try:
        return model(executed(log), disassemble(executable))
    finally:
        log.unlink()

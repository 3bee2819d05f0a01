"""Is an ELF image pure ARMv6-M (Cortex-M0) code?

QEMU has no Cortex-M0 board, so the cortex-m0 build runs on a Cortex-M3, which would
happily execute ARMv7-M instructions an M0 lacks. This check closes that gap by reading
the disassembly: ARMv6-M has every 16-bit Thumb encoding except CBZ, CBNZ and IT, and of
the 32-bit encodings only BL, DMB, DSB, ISB, MRS and MSR. Literal pools and tables are
marked as data in the ELF and are not disassembled as instructions.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

OBJDUMP = "arm-none-eabi-objdump"
WIDE_ALLOWED = frozenset({"bl", "dmb", "dsb", "isb", "mrs", "msr"})
NARROW_FORBIDDEN = re.compile(r"(cbn?z|it[te]{0,3})\Z")

# "   5c:\tf000 fc52 \tbl\t904 <__aeabi_uidivmod>": address, one or two halfwords, mnemonic.
_INSTRUCTION = re.compile(
    r"\s*(?P<address>[0-9a-f]+):\t(?P<first>[0-9a-f]{4})(?: (?P<second>[0-9a-f]{4}))? *\t"
    r"(?P<mnemonic>\S+)"
)


def violations(elf: Path) -> list[str]:
    """The instructions of `elf` that ARMv6-M lacks, as "address: mnemonic" lines."""
    listing = subprocess.run(
        [OBJDUMP, "-d", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    found = []
    count = 0
    for line in listing.splitlines():
        match = _INSTRUCTION.match(line)
        if match is None:
            continue
        count += 1
        mnemonic = match["mnemonic"].split(".")[0]
        wide = match["second"] is not None
        if (mnemonic not in WIDE_ALLOWED) if wide else NARROW_FORBIDDEN.match(mnemonic):
            found.append(f"{match['address']}: {match['mnemonic']}")
    if count == 0:
        raise AssertionError(f"{OBJDUMP} found no Thumb instructions in {elf}")
    return found

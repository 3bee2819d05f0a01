"""Run a command as a child of this small process and report the child's own peak memory
and CPU time (tests/test_bounded_input.py).

A process's ru_maxrss includes what it held before exec: forked straight from a pytest
worker (hundreds of MB once TensorFlow is loaded), a command inherits the worker's resident
size as its peak. Forked from this interpreter instead, its peak is its own plus this
process's few MB: an overestimate, never an underestimate.

usage: python measured.py REPORT ADDRESS_SPACE_BYTES CPU_SECONDS COMMAND [ARG...]
REPORT receives {"status": wait status, "cpu_s": ..., "peak_bytes": ...} as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import sys


def main(argv: list[str]) -> int:
    report, address_space, cpu = argv[0], int(argv[1]), int(argv[2])
    command = argv[3:]
    pid = os.fork()
    if pid == 0:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            os.execv(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(report, "w", encoding="utf-8") as out:
        json.dump({"status": status, "cpu_s": usage.ru_utime + usage.ru_stime,
                   "peak_bytes": usage.ru_maxrss * 1024}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

/* RISC-V half of the benchmark harness.
 *
 * Clock: the low 32 bits of minstret, the instructions retired (under QEMU with -icount
 * it advances once per instruction, as mcycle does); codegen bench counts instructions
 * exactly with a QEMU plugin and uses this as a cross-check.
 *
 * Stack: painted and measured as on Cortex-M (firmware/cortex-m/bench_cortex_m.c):
 * bench_stack_paint() (assembly) writes a pattern below its caller's stack pointer,
 * bench_stack_peak() finds the lowest word that no longer holds it.
 */
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

#define STACK_PATTERN 0xc5a3e1d7
#define TEXT(x) #x
#define NUMBER_TEXT(x) TEXT(x)

extern uint32_t __stack_start[];

const char bench_clock_unit[] = "minstret";
const unsigned bench_clock_bits = 32;

/* Written by bench_stack_paint (assembly), so not static. */
uint32_t *bench_painted_top;

void bench_clock_start(void)
{
}

uint64_t bench_clock(void)
{
    uint32_t count;
    __asm__ volatile(".option push\n\t.option arch, +zicsr\n\t"
                     "csrr %0, minstret\n\t.option pop" : "=r"(count));
    return count;
}

/* In assembly, as on Cortex-M: it writes the pattern from __stack_start up to its own SP,
 * which is its caller's (it saves nothing on the stack). */
__attribute__((naked)) void bench_stack_paint(void)
{
    __asm__("la t0, __stack_start\n\t"
            "mv t1, sp\n\t"
            "la t2, bench_painted_top\n\t"
            "sw t1, 0(t2)\n\t"
            "li t2, " NUMBER_TEXT(STACK_PATTERN) "\n"
            "1:\n\t"
            "bgeu t0, t1, 2f\n\t"
            "sw t2, 0(t0)\n\t"
            "addi t0, t0, 4\n\t"
            "j 1b\n"
            "2:\n\t"
            "ret");
}

long bench_stack_peak(void)
{
    const uint32_t *word = __stack_start;
    if (bench_painted_top == NULL) {
        return -1;
    }
    while (word < bench_painted_top && *word == STACK_PATTERN) {
        ++word;
    }
    return (long)((uintptr_t)bench_painted_top - (uintptr_t)word);
}

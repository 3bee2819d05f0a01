/* Cortex-M half of the benchmark harness.
 *
 * Clock: SysTick on the processor clock, free-running over its 24 bits (no interrupt).
 * Under QEMU with -icount shift=0 one instruction takes 1 ns of virtual time, so a tick
 * is a fixed number of instructions (40 on the 25 MHz mps2 boards); codegen bench counts
 * instructions exactly with a QEMU plugin and uses the ticks as a cross-check.
 *
 * Stack: bench_stack_paint() writes a pattern over the stack below its caller's stack
 * pointer (in assembly, see there); bench_stack_peak() finds the lowest word that no
 * longer holds it. Stack that a function reserves but never writes is not seen; a written
 * word that happens to equal the pattern is not either (one chance in 2^32 per word).
 */
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

#define SYST_CSR (*(volatile uint32_t *)0xe000e010u)
#define SYST_RVR (*(volatile uint32_t *)0xe000e014u)
#define SYST_CVR (*(volatile uint32_t *)0xe000e018u)
#define SYST_CSR_ENABLE 1u
#define SYST_CSR_CLKSOURCE_CPU 4u
#define SYST_MAX 0xffffffu
#define STACK_PATTERN 0xc5a3e1d7
#define TEXT(x) #x
#define NUMBER_TEXT(x) TEXT(x)

extern uint32_t __stack_start[];

const char bench_clock_unit[] = "systick";
const unsigned bench_clock_bits = 24;

/* Written by bench_stack_paint (assembly), so not static: the compiler must not assume
 * that nothing writes it. */
uint32_t *bench_painted_top;

void bench_clock_start(void)
{
    SYST_CSR = 0u;
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0u; /* any write clears the counter; it reloads on the next tick */
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_CLKSOURCE_CPU;
}

uint64_t bench_clock(void)
{
    return (uint64_t)(SYST_MAX - (SYST_CVR & SYST_MAX)); /* SysTick counts down */
}

/* In assembly: a C version may save registers after reading SP (shrink-wrapping, as gcc
 * does for the Cortex-M55) and then paint over them. It writes the pattern from
 * __stack_start up to its own SP, which is its caller's: it pushes nothing. ARMv6-M
 * instructions only (the cortex-m0 build). */
__attribute__((naked)) void bench_stack_paint(void)
{
    __asm__("ldr r0, =__stack_start\n\t"
            "mov r1, sp\n\t"
            "ldr r2, =bench_painted_top\n\t"
            "str r1, [r2]\n\t"
            "ldr r2, =" NUMBER_TEXT(STACK_PATTERN) "\n"
            "1:\n\t"
            "cmp r0, r1\n\t"
            "bhs 2f\n\t"
            "str r2, [r0]\n\t"
            "add r0, #4\n\t" /* ADDS: inline assembly is in divided syntax */
            "b 1b\n"
            "2:\n\t"
            "bx lr\n\t"
            ".ltorg");
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

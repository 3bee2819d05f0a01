/* Cortex-M half of the benchmark harness.
 *
 * Clock: SysTick on the processor clock, free-running over its 24 bits (no interrupt).
 * Under QEMU with -icount shift=0 one instruction takes 1 ns of virtual time, so a tick
 * is a fixed number of instructions (40 on the 25 MHz mps2 boards); codegen bench counts
 * instructions exactly with a QEMU plugin and uses the ticks as a cross-check.
 *
 * Stack: bench_stack_paint() writes a pattern over the stack below its caller's stack
 * pointer; bench_stack_peak() finds the lowest word that no longer holds it. Stack that a
 * function reserves but never writes is not seen; a written word that happens to equal
 * the pattern is not either (one chance in 2^32 per word).
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
#define STACK_PATTERN 0xc5a3e1d7u

extern uint32_t __stack_start[];

const char bench_clock_unit[] = "systick";
const unsigned bench_clock_bits = 24;

static uint32_t *painted_top;

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

static uint32_t *stack_pointer(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

/* A leaf that keeps everything in registers, so its stack pointer is its caller's.
 * It writes only below its own stack pointer, never into a live frame. */
void bench_stack_paint(void)
{
    uint32_t *word = __stack_start;
    uint32_t *top = stack_pointer();
    painted_top = top;
    while (word < top) {
        *word++ = STACK_PATTERN;
    }
}

long bench_stack_peak(void)
{
    const uint32_t *word = __stack_start;
    if (painted_top == NULL) {
        return -1;
    }
    while (word < painted_top && *word == STACK_PATTERN) {
        ++word;
    }
    return (long)((uintptr_t)painted_top - (uintptr_t)word);
}

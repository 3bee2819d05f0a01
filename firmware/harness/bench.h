/* Platform half of the benchmark harness (bench_main.c): a free-running clock and stack
 * painting. Implemented by bench_host.c (wall clock, no stack measurement) and by
 * firmware/cortex-m/bench_cortex_m.c (SysTick, stack painting). */
#ifndef HARNESS_BENCH_H
#define HARNESS_BENCH_H

#include <stdint.h>

/* The clock's unit ("ns", "systick") and width: readings wrap modulo 2^bench_clock_bits. */
extern const char bench_clock_unit[];
extern const unsigned bench_clock_bits;

/* Records the clock (bench_main.c); the host's profiled model calls it between layers. */
void codegen_profile_layer(unsigned int index);

/* Starts the clock; bench_clock() reads it. */
void bench_clock_start(void);
uint64_t bench_clock(void);

/* Fills the unused stack below the caller's stack pointer with a pattern and remembers
 * that stack pointer. A no-op where the stack is not measured. */
void bench_stack_paint(void);

/* Bytes of stack below the stack pointer remembered by bench_stack_paint() that have
 * been written since (the high-water mark), or -1 where the stack is not measured. */
long bench_stack_peak(void);

#endif /* HARNESS_BENCH_H */

/* Host half of the benchmark harness: a monotonic wall clock in nanoseconds. The host's
 * stack is not measured (its frames say nothing about a microcontroller's). */
#define _POSIX_C_SOURCE 199309L

#include <time.h>

#include "bench.h"

const char bench_clock_unit[] = "ns";
const unsigned bench_clock_bits = 64;

void bench_clock_start(void)
{
}

uint64_t bench_clock(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

void bench_stack_paint(void)
{
}

long bench_stack_peak(void)
{
    return -1;
}

/* Benchmark harness (codegen bench): runs one sample through the model, measuring the
 * whole invoke and each layer.
 *
 * The benchmark build forces a profiling header into every source (meson.build):
 * profile_cortex_m.h makes the generated model's CODEGEN_PROFILE_LAYER(k) hook a one-
 * instruction mark that a QEMU plugin counts instructions at (codegen bench reads the
 * plugin's counts, exact and per layer); profile_host.h makes it a call of
 * codegen_profile_layer(), which records the wall clock. BENCH_MARK() puts marks around the
 * measured invoke.
 *
 * codegen_profile_layer() records the clock (bench.h). Sequence: read one sample; a warm-up
 * invoke; then for every measured invoke: three calls back to back (their distances are
 * the cost of one call, which the analysis subtracts from every region), harness_invoke()
 * between BENCH_MARK()s, one call after it. Cortex-M measures one invoke; the host as many
 * as fit in about BENCH_HOST_NANOSECONDS (at least BENCH_MIN_ROUNDS), for medians. The
 * stack is painted before the last measured invoke, its high-water mark read after it.
 *
 * Output: the model's outputs for the sample, then text lines:
 *     codegen-bench 1
 *     clock UNIT BITS
 *     invoke N T1 ... TN        (one line per measured invoke: its N clock readings)
 *     stack BYTES               (-1: not measured)
 *     end
 */
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "harness.h"
#include "io.h"

#ifndef BENCH_MAX_MARKS
#define BENCH_MAX_MARKS 1024
#endif
#define BENCH_HOST_NANOSECONDS 500000000u
#define BENCH_MIN_ROUNDS 11
#define BENCH_MAX_ROUNDS 2001
#define LINE_CAPACITY 64

#ifndef BENCH_MARK
#define BENCH_MARK() ((void)0)
#endif

#if defined(__GNUC__)
/* Real calls, so that the calibration calls cost what the calls from the model cost. */
#define BENCH_NOINLINE __attribute__((noinline))
#else
#define BENCH_NOINLINE
#endif

static uint64_t marks[BENCH_MAX_MARKS];
static size_t mark_count;

BENCH_NOINLINE void codegen_profile_layer(unsigned int index)
{
    (void)index;
    if (mark_count < BENCH_MAX_MARKS) {
        marks[mark_count] = bench_clock();
    }
    ++mark_count;
}

typedef struct {
    char text[LINE_CAPACITY];
    size_t length;
} line;

static void put_text(line *l, const char *s)
{
    while (*s != '\0' && l->length < LINE_CAPACITY) {
        l->text[l->length++] = *s++;
    }
}

static void put_number(line *l, uint64_t value)
{
    char digits[24];
    size_t count = 0;
    do {
        digits[count++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    while (count > 0u && l->length < LINE_CAPACITY) {
        l->text[l->length++] = digits[--count];
    }
}

static int flush(line *l)
{
    int status = io_write(l->text, l->length);
    l->length = 0;
    return status;
}

static int write_text(const char *s)
{
    line l = {{0}, 0};
    put_text(&l, s);
    return flush(&l);
}

/* Writes "invoke N T1 ... TN\n" in pieces that fit a line. */
static int write_marks(void)
{
    line l = {{0}, 0};
    size_t i;
    int status = 0;
    put_text(&l, "invoke ");
    put_number(&l, mark_count);
    for (i = 0; i < mark_count; ++i) {
        status |= flush(&l);
        put_text(&l, " ");
        put_number(&l, marks[i]);
    }
    put_text(&l, "\n");
    return status | flush(&l);
}

static int write_signed_line(const char *key, long value)
{
    line l = {{0}, 0};
    put_text(&l, key);
    put_text(&l, value < 0 ? " -" : " ");
    put_number(&l, value < 0 ? 0u - (unsigned long)value : (unsigned long)value);
    put_text(&l, "\n");
    return flush(&l);
}

static int read_one_sample(void)
{
    size_t i;
    for (i = 0; i < harness_input_count; ++i) {
        long got = io_read(harness_inputs[i], harness_input_bytes[i]);
        if (got < 0 || (size_t)got != harness_input_bytes[i]) {
            io_message("bench: the input must hold one whole sample");
            return -1;
        }
    }
    return 0;
}

/* One measured invoke; returns the model's status. This function's stack pointer is the
 * same when it paints the stack and when it calls harness_invoke(). */
static int measured_invoke(int paint_stack)
{
    int status;
    if (paint_stack) {
        bench_stack_paint();
    }
    mark_count = 0;
    codegen_profile_layer(0);
    codegen_profile_layer(0);
    codegen_profile_layer(0);
    BENCH_MARK();
    status = harness_invoke();
    BENCH_MARK();
    codegen_profile_layer(0);
    return status;
}

static int rounds_for(uint64_t once)
{
    uint64_t rounds = BENCH_HOST_NANOSECONDS / (once + 1u);
    if (rounds < BENCH_MIN_ROUNDS) {
        return BENCH_MIN_ROUNDS;
    }
    return rounds > BENCH_MAX_ROUNDS ? BENCH_MAX_ROUNDS : (int)rounds;
}

static int run(void)
{
    int rounds = 1;
    int round;
    int status;
    size_t i;
    long stack;
    if (read_one_sample() != 0) {
        return 1;
    }
    bench_clock_start();
    /* A model that keeps state starts each checked invoke from its reset state, so that
     * the written outputs are those of one invoke on the sample. */
    harness_reset();
    if (harness_invoke() != 0) { /* warm-up */
        io_message("bench: model invoke failed");
        return 1;
    }
    if (bench_clock_bits == 64) { /* a wall clock: repeat for a median */
        uint64_t start;
        harness_reset();
        start = bench_clock();
        if (harness_invoke() != 0) {
            return 1;
        }
        rounds = rounds_for(bench_clock() - start);
    }
    for (i = 0; i < harness_output_count; ++i) {
        if (io_write(harness_outputs[i], harness_output_bytes[i]) != 0) {
            return 1;
        }
    }
    {
        line l = {{0}, 0};
        put_text(&l, "codegen-bench 1\n");
        status = flush(&l);
        put_text(&l, "clock ");
        put_text(&l, bench_clock_unit);
        put_text(&l, " ");
        put_number(&l, bench_clock_bits);
        put_text(&l, "\n");
        if ((status | flush(&l)) != 0) {
            return 1;
        }
    }
    for (round = 0; round < rounds; ++round) {
        if (measured_invoke(round == rounds - 1) != 0) {
            io_message("bench: model invoke failed");
            return 1;
        }
        if (mark_count > BENCH_MAX_MARKS) {
            io_message("bench: more clock readings than BENCH_MAX_MARKS");
            return 1;
        }
        if (write_marks() != 0) {
            return 1;
        }
    }
    stack = bench_stack_peak();
    if (write_signed_line("stack", stack) != 0 || write_text("end\n") != 0) {
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int status;
    if (io_open(argc, argv) != 0) {
        return 1;
    }
    status = run();
    if (io_close() != 0 && status == 0) {
        io_message("bench: cannot close the output");
        status = 1;
    }
    return status;
}

/* Generic model harness: streams samples from the input through the model.
 *
 * The input holds whole samples back to back, each being every model input's bytes in
 * argument order; for each sample the harness writes every output's bytes in argument
 * order. It stops cleanly at the end of the input and fails (message, exit status 1) on
 * a partial sample, an I/O error or a non-zero status from the model. A model that keeps
 * state sees the samples as one stream of invokes, unless the glue asks for a reset
 * before each.
 */
#include <stddef.h>

#include "harness.h"
#include "io.h"
#include "message.h"

static void append_signed(message *m, long value)
{
    if (value < 0) {
        append_text(m, "-");
        append_number(m, 0ul - (unsigned long)value);
    } else {
        append_number(m, (unsigned long)value);
    }
}

/* Starts the diagnostic "harness: sample N: WHAT". */
static void begin(message *m, unsigned long sample, const char *what)
{
    m->length = 0;
    m->text[0] = '\0';
    append_text(m, "harness: sample ");
    append_number(m, sample);
    append_text(m, ": ");
    append_text(m, what);
}

static size_t sample_input_bytes(void)
{
    size_t total = 0;
    size_t i;
    for (i = 0; i < harness_input_count; ++i) {
        total += harness_input_bytes[i];
    }
    return total;
}

/* Returns 1 after reading a whole sample, 0 at a clean end of input, -1 on failure. */
static int read_sample(unsigned long sample)
{
    message m;
    size_t total = 0;
    size_t i;
    for (i = 0; i < harness_input_count; ++i) {
        long got = io_read(harness_inputs[i], harness_input_bytes[i]);
        if (got < 0) {
            begin(&m, sample, "cannot read the input");
            io_message(m.text);
            return -1;
        }
        total += (size_t)got;
        if ((size_t)got < harness_input_bytes[i]) {
            break;
        }
    }
    if (total == 0) {
        return 0;
    }
    if (total < sample_input_bytes()) {
        begin(&m, sample, "partial sample at end of input (");
        append_number(&m, (unsigned long)total);
        append_text(&m, " of ");
        append_number(&m, (unsigned long)sample_input_bytes());
        append_text(&m, " bytes)");
        io_message(m.text);
        return -1;
    }
    return 1;
}

static int write_sample(void)
{
    size_t i;
    for (i = 0; i < harness_output_count; ++i) {
        if (io_write(harness_outputs[i], harness_output_bytes[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

static int run(void)
{
    message m;
    unsigned long sample;
    for (sample = 0;; ++sample) {
        int status;
        int got = read_sample(sample);
        if (got == 0) {
            return 0;
        }
        if (got < 0) {
            return 1;
        }
        if (harness_reset_each) {
            harness_reset();
        }
        status = harness_invoke();
        if (status != 0) {
            begin(&m, sample, "model invoke failed with status ");
            append_signed(&m, status);
            io_message(m.text);
            return 1;
        }
        if (write_sample() != 0) {
            begin(&m, sample, "cannot write the output");
            io_message(m.text);
            return 1;
        }
    }
}

int main(int argc, char **argv)
{
    int status;
    if (io_open(argc, argv) != 0) {
        return 1;
    }
    status = run();
    if (io_close() != 0 && status == 0) {
        io_message("harness: cannot close the output");
        status = 1;
    }
    return status;
}

/* Runs several generated models in one firmware (tests/support/many_models.py).
 *
 * The input holds each model's samples in table order, each sample being every input's
 * bytes in argument order; for each sample the firmware writes every output's bytes. A
 * model that keeps state sees its samples as one stream of invokes from a fresh start.
 * A failure is one line naming the model's index and the sample, and exit status 1.
 */
#include <stddef.h>

#include "io.h"
#include "many_models.h"

static void report(size_t model, unsigned long sample, const char *what)
{
    char line[96];
    size_t length = 0;
    const char *prefix = "many_models: model ";
    unsigned long numbers[2];
    size_t n;
    numbers[0] = (unsigned long)model;
    numbers[1] = sample;
    while (*prefix != '\0') {
        line[length++] = *prefix++;
    }
    for (n = 0; n < 2u; ++n) {
        char digits[24];
        size_t count = 0;
        unsigned long value = numbers[n];
        do {
            digits[count++] = (char)('0' + value % 10u);
            value /= 10u;
        } while (value != 0u);
        while (count > 0u) {
            line[length++] = digits[--count];
        }
        if (n == 0u) {
            const char *middle = " sample ";
            while (*middle != '\0') {
                line[length++] = *middle++;
            }
        }
    }
    line[length++] = ':';
    line[length++] = ' ';
    while (*what != '\0' && length + 1u < sizeof line) {
        line[length++] = *what++;
    }
    line[length] = '\0';
    io_message(line);
}

static int run_model(size_t index)
{
    const many_models_entry *model = &many_models[index];
    unsigned long sample;
    size_t i;
    for (sample = 0; sample < model->samples; ++sample) {
        for (i = 0; i < model->input_count; ++i) {
            long got = io_read(model->inputs[i], model->input_bytes[i]);
            if (got < 0 || (size_t)got != model->input_bytes[i]) {
                report(index, sample, "the input ended or failed");
                return 1;
            }
        }
        if (model->invoke() != 0) {
            report(index, sample, "invoke failed");
            return 1;
        }
        for (i = 0; i < model->output_count; ++i) {
            if (io_write(model->outputs[i], model->output_bytes[i]) != 0) {
                report(index, sample, "cannot write the output");
                return 1;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    char extra;
    size_t index;
    int status = 0;
    if (io_open(argc, argv) != 0) {
        return 1;
    }
    for (index = 0; index < many_models_count && status == 0; ++index) {
        status = run_model(index);
    }
    if (status == 0 && io_read(&extra, 1) != 0) {
        io_message("many_models: the input holds more samples than the models take");
        status = 1;
    }
    if (io_close() != 0 && status == 0) {
        io_message("many_models: cannot close the output");
        status = 1;
    }
    return status;
}

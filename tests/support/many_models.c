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
#include "message.h"

static void report(size_t model, unsigned long sample, const char *what)
{
    message m = {{0}, 0};
    append_text(&m, "many_models: model ");
    append_number(&m, (unsigned long)model);
    append_text(&m, " sample ");
    append_number(&m, sample);
    append_text(&m, ": ");
    append_text(&m, what);
    io_message(m.text);
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

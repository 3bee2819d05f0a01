/* Several generated models in one firmware (tests/support/many_models.py): the table of
 * models that many_models_table.c (written per firmware by the helper) defines and
 * many_models.c runs. */
#ifndef MANY_MODELS_H
#define MANY_MODELS_H

#include <stddef.h>

typedef struct {
    size_t input_count;
    void *const *inputs;        /* the model's input buffers, in argument order */
    const size_t *input_bytes;  /* and their sizes in bytes */
    size_t output_count;
    void *const *outputs;
    const size_t *output_bytes;
    int (*invoke)(void);        /* runs the model once on those buffers; 0 on success */
    unsigned long samples;      /* how many samples of the input are this model's */
} many_models_entry;

extern const many_models_entry many_models[];
extern const size_t many_models_count;

#endif /* MANY_MODELS_H */

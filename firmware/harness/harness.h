/* Interface between the generic harness (main.c) and a model's generated glue.
 *
 * The glue file (harness_glue.c, rendered per model) owns one static buffer per model
 * input and output and publishes them through these tables; main.c streams samples
 * through them without knowing the model.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stddef.h>

/* Number of model inputs and outputs (each at least 1). */
extern const size_t harness_input_count;
extern const size_t harness_output_count;

/* Size in bytes of each input / output tensor, in the model's argument order. */
extern const size_t harness_input_bytes[];
extern const size_t harness_output_bytes[];

/* The static tensor buffers, in the model's argument order. */
extern void *const harness_inputs[];
extern void *const harness_outputs[];

/* Runs the model once on the input buffers, filling the output buffers.
 * Returns the model's status: 0 on success. */
int harness_invoke(void);

/* Nonzero when the model's state (if it keeps any) is to be reset before every sample;
 * otherwise it is carried from one sample to the next. */
extern const int harness_reset_each;

/* Resets the model's state (nothing for a model that keeps none). */
void harness_reset(void);

#endif /* HARNESS_H */

/* Profiling hook of the host benchmark build (forced into every source with -include, see
 * meson.build): before each layer and after the last, the generated model calls
 * codegen_profile_layer() (bench_main.c), which records the wall clock. */
#ifndef PROFILE_HOST_H
#define PROFILE_HOST_H

void codegen_profile_layer(unsigned int index);

#define CODEGEN_PROFILE_LAYER(index) codegen_profile_layer(index)

/* The boundaries of the measured invoke: the clock readings around it suffice here. */
#define BENCH_MARK() ((void)0)

#endif /* PROFILE_HOST_H */

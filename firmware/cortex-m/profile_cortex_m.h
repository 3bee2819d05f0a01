/* Profiling hook of the Cortex-M benchmark build (forced into every source with -include,
 * see meson.build).
 *
 * A mark is one instruction, `mov r11, r11`: it changes nothing, compilers do not emit it
 * (it is not the Thumb NOP, which assemblers also use as padding), and the QEMU plugin
 * firmware/qemu/bench_plugin.c records the instruction count each time one executes. Unlike
 * a function call it clobbers no register, so the profiled model compiles to the code of
 * a normal build plus one instruction per layer. The "memory" clobber keeps each layer's
 * loads and stores between its two marks.
 */
#ifndef PROFILE_CORTEX_M_H
#define PROFILE_CORTEX_M_H

#define BENCH_MARK() __asm__ volatile("mov r11, r11" ::: "memory")
#define BENCH_MARK_ENCODING 0x46db /* the Thumb encoding of mov r11, r11 */

#define CODEGEN_PROFILE_LAYER(index) BENCH_MARK()

/* The model reads no clock, so the harness records only its own 4 readings per invoke. */
#define BENCH_MAX_MARKS 8

#endif /* PROFILE_CORTEX_M_H */

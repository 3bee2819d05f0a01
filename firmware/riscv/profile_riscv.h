/* Profiling hook of the RISC-V benchmark build (forced into every source with -include,
 * see meson.build).
 *
 * A mark is one instruction, `slti x0, x0, 0x2a5`: a HINT (an instruction that writes x0
 * changes nothing; the specification leaves SLTI to x0 for custom hints), which compilers
 * never emit and assemblers never use as padding (unlike `addi x0, x0, 0`, the NOP), and
 * which the semihosting sequence (SLLI and SRAI to x0) does not use either. The QEMU
 * plugin firmware/qemu/bench_plugin.c records the instruction count each time one
 * executes. It clobbers no register; the "memory" clobber keeps each layer's loads and
 * stores between its two marks.
 */
#ifndef PROFILE_RISCV_H
#define PROFILE_RISCV_H

#define BENCH_MARK() __asm__ volatile("slti x0, x0, 0x2a5" ::: "memory")
#define BENCH_MARK_ENCODING 0x2a502013u /* its 32-bit encoding */

#define CODEGEN_PROFILE_LAYER(index) BENCH_MARK()

/* The model reads no clock, so the harness records only its own 4 readings per invoke. */
#define BENCH_MAX_MARKS 8

#endif /* PROFILE_RISCV_H */

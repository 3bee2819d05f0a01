/* RISC-V uses ARM's semihosting protocol and its operations unchanged (QEMU implements it
 * for both): the one header is the Cortex-M one; firmware/riscv/semihost.c signals the
 * requests the RISC-V way. */
#include "../cortex-m/semihost.h"

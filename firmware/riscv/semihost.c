/* ARM semihosting on RISC-V (the RISC-V semihosting specification): a0 = operation,
 * a1 = argument, signalled by the uncompressed sequence `slli x0, x0, 0x1f; ebreak;
 * srai x0, x0, 7`, which QEMU (-semihosting-config enable=on) recognises when the three
 * instructions lie in one page: they are aligned to 16 bytes here. A lone ebreak is a
 * breakpoint exception (the trap handler reports it). */
#include "semihost.h"

/* Reason codes for SYS_EXIT. */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN 0x20023u

int32_t semihost_call(uint32_t operation, void *argument)
{
    register uintptr_t a0 __asm__("a0") = operation;
    register void *a1 __asm__("a1") = argument;
    __asm__ volatile(".option push\n\t"
                     ".option norvc\n\t"
                     ".balign 16\n\t"
                     "slli x0, x0, 0x1f\n\t"
                     "ebreak\n\t"
                     "srai x0, x0, 7\n\t"
                     ".option pop"
                     : "+r"(a0) : "r"(a1) : "memory");
    return (int32_t)a0;
}

void semihost_write0(const char *text)
{
    semihost_call(SEMIHOST_SYS_WRITE0, (void *)text);
}

void semihost_exit(int status)
{
    /* As on Cortex-M: SYS_EXIT_EXTENDED carries the status; the 32-bit SYS_EXIT (its
     * argument the reason itself) says only success or failure. */
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)status;
    semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, block);
    semihost_call(SEMIHOST_SYS_EXIT, (void *)(uintptr_t)(status == 0
        ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN));
    for (;;) {
    }
}

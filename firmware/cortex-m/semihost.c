#include "semihost.h"

/* Reason codes for SYS_EXIT. */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN 0x20023u

int32_t semihost_call(uint32_t operation, void *argument)
{
    register uint32_t r0 __asm__("r0") = operation;
    register void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

void semihost_write0(const char *text)
{
    semihost_call(SEMIHOST_SYS_WRITE0, (void *)text);
}

void semihost_exit(int status)
{
    /* SYS_EXIT_EXTENDED carries the exit status; the 32-bit SYS_EXIT can only say
     * success or failure, so it is the fallback for hosts without the extension. */
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)status;
    semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, block);
    semihost_call(SEMIHOST_SYS_EXIT, (void *)(uintptr_t)(status == 0
        ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN));
    for (;;) {
    }
}

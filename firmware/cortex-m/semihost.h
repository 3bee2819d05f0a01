/* ARM semihosting: the debugger (here QEMU, -semihosting-config enable=on) services
 * requests that the target signals with `bkpt 0xab` (r0 = operation, r1 = argument). */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stdint.h>

enum semihost_operation {
    SEMIHOST_SYS_OPEN = 0x01,
    SEMIHOST_SYS_CLOSE = 0x02,
    SEMIHOST_SYS_WRITE0 = 0x04,
    SEMIHOST_SYS_WRITE = 0x05,
    SEMIHOST_SYS_READ = 0x06,
    SEMIHOST_SYS_FLEN = 0x0c,
    SEMIHOST_SYS_EXIT = 0x18,
    SEMIHOST_SYS_EXIT_EXTENDED = 0x20
};

/* SYS_OPEN modes (ISO C fopen modes "rb" and "wb"). */
enum semihost_open_mode {
    SEMIHOST_OPEN_READ_BINARY = 1,
    SEMIHOST_OPEN_WRITE_BINARY = 5
};

/* Performs one semihosting request; returns the host's r0. */
int32_t semihost_call(uint32_t operation, void *argument);

/* Prints a NUL-terminated string on the host's console. */
void semihost_write0(const char *text);

/* Ends the program; the host (QEMU) exits with `status`. */
void semihost_exit(int status) __attribute__((noreturn));

#endif /* SEMIHOST_H */

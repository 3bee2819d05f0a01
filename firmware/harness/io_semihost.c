/* Cortex-M I/O for the harness over ARM semihosting. The files are "input.bin" and
 * "output.bin", resolved by the host (QEMU) relative to its working directory;
 * diagnostics go to the host's semihosting console. */
#include <stdint.h>
#include <string.h>

#include "io.h"
#include "semihost.h"

static int32_t input_handle = -1;
static int32_t output_handle = -1;
static uint32_t input_remaining;

static int32_t open_file(const char *path, uint32_t mode)
{
    uint32_t block[3];
    block[0] = (uint32_t)(uintptr_t)path;
    block[1] = mode;
    block[2] = (uint32_t)strlen(path);
    return semihost_call(SEMIHOST_SYS_OPEN, block);
}

static int close_file(int32_t handle)
{
    uint32_t block[1];
    block[0] = (uint32_t)handle;
    return semihost_call(SEMIHOST_SYS_CLOSE, block) == 0 ? 0 : -1;
}

int io_open(int argc, char **argv)
{
    int32_t length;
    (void)argc;
    (void)argv;
    input_handle = open_file("input.bin", SEMIHOST_OPEN_READ_BINARY);
    if (input_handle < 0) {
        io_message("harness: cannot open input file 'input.bin'");
        return -1;
    }
    {
        uint32_t block[1];
        block[0] = (uint32_t)input_handle;
        length = semihost_call(SEMIHOST_SYS_FLEN, block);
    }
    if (length < 0) {
        io_message("harness: cannot get the length of 'input.bin'");
        close_file(input_handle);
        return -1;
    }
    input_remaining = (uint32_t)length;
    output_handle = open_file("output.bin", SEMIHOST_OPEN_WRITE_BINARY);
    if (output_handle < 0) {
        io_message("harness: cannot open output file 'output.bin'");
        close_file(input_handle);
        return -1;
    }
    return 0;
}

long io_read(void *buf, size_t n)
{
    /* SYS_READ answers with the number of bytes it did NOT read. */
    uint32_t wanted = n < input_remaining ? (uint32_t)n : input_remaining;
    uint32_t done = 0;
    while (done < wanted) {
        uint32_t block[3];
        int32_t left;
        block[0] = (uint32_t)input_handle;
        block[1] = (uint32_t)(uintptr_t)((uint8_t *)buf + done);
        block[2] = wanted - done;
        left = semihost_call(SEMIHOST_SYS_READ, block);
        if (left < 0 || (uint32_t)left >= wanted - done) {
            return -1; /* an error, or the file ended before its length said */
        }
        done = wanted - (uint32_t)left;
    }
    input_remaining -= done;
    return (long)done;
}

int io_write(const void *buf, size_t n)
{
    uint32_t block[3];
    if (n == 0) {
        return 0;
    }
    block[0] = (uint32_t)output_handle;
    block[1] = (uint32_t)(uintptr_t)buf;
    block[2] = (uint32_t)n;
    return semihost_call(SEMIHOST_SYS_WRITE, block) == 0 ? 0 : -1;
}

int io_close(void)
{
    int status = close_file(output_handle);
    if (close_file(input_handle) != 0) {
        status = -1;
    }
    return status;
}

void io_message(const char *line)
{
    semihost_write0(line);
    semihost_write0("\n");
}

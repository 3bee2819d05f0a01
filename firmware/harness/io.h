/* Minimal byte-stream I/O for the harness, implemented once per platform:
 * io_stdio.c (host, stdio files) and io_semihost.c (Cortex-M, ARM semihosting). */
#ifndef HARNESS_IO_H
#define HARNESS_IO_H

#include <stddef.h>

/* Opens the sample input and the result output. The host takes their paths from
 * argv[1] and argv[2]; every platform defaults to "input.bin" and "output.bin" in the
 * working directory. Returns 0 on success; on failure it has reported a message. */
int io_open(int argc, char **argv);

/* Reads up to n bytes into buf, stopping early only at end of input.
 * Returns the number of bytes read (0 at end of input), or -1 on an I/O error. */
long io_read(void *buf, size_t n);

/* Writes n bytes. Returns 0 on success, -1 on an I/O error. */
int io_write(const void *buf, size_t n);

/* Closes both streams, flushing the output. Returns 0 on success, -1 on an error. */
int io_close(void);

/* Reports one line of diagnostics (without the trailing newline). */
void io_message(const char *line);

#endif /* HARNESS_IO_H */

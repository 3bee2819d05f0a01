/* Host I/O for the harness: plain stdio files, diagnostics on stderr.
 * Usage: harness [INPUT [OUTPUT]] (defaults: input.bin, output.bin). */
#include <stdio.h>

#include "io.h"

static FILE *input_file;
static FILE *output_file;

static void report_open_failure(const char *role, const char *path)
{
    fprintf(stderr, "harness: cannot open %s file '%s'\n", role, path);
}

int io_open(int argc, char **argv)
{
    const char *input_path = argc > 1 ? argv[1] : "input.bin";
    const char *output_path = argc > 2 ? argv[2] : "output.bin";
    if (argc > 3) {
        io_message("usage: harness [INPUT [OUTPUT]]");
        return -1;
    }
    input_file = fopen(input_path, "rb");
    if (input_file == NULL) {
        report_open_failure("input", input_path);
        return -1;
    }
    output_file = fopen(output_path, "wb");
    if (output_file == NULL) {
        report_open_failure("output", output_path);
        fclose(input_file);
        return -1;
    }
    return 0;
}

long io_read(void *buf, size_t n)
{
    size_t got = fread(buf, 1, n, input_file);
    if (got < n && ferror(input_file)) {
        return -1;
    }
    return (long)got;
}

int io_write(const void *buf, size_t n)
{
    return fwrite(buf, 1, n, output_file) == n ? 0 : -1;
}

int io_close(void)
{
    int status = 0;
    if (fclose(output_file) != 0) {
        status = -1;
    }
    if (fclose(input_file) != 0) {
        status = -1;
    }
    return status;
}

void io_message(const char *line)
{
    fputs(line, stderr);
    fputc('\n', stderr);
    fflush(stderr);
}

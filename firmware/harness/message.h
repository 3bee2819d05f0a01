/* One line of diagnostic text built piece by piece without the C library's formatting
 * (the harness mains: main.c, and tests/support/many_models.c): text and decimal numbers
 * appended up to the capacity, always terminated. */
#ifndef CODEGEN_HARNESS_MESSAGE_H
#define CODEGEN_HARNESS_MESSAGE_H

#include <stddef.h>

#define MESSAGE_CAPACITY 160

typedef struct {
    char text[MESSAGE_CAPACITY];
    size_t length;
} message;

static inline void append_text(message *m, const char *s)
{
    while (*s != '\0' && m->length + 1 < MESSAGE_CAPACITY) {
        m->text[m->length++] = *s++;
    }
    m->text[m->length] = '\0';
}

static inline void append_number(message *m, unsigned long value)
{
    char digits[24];
    size_t count = 0;
    do {
        digits[count++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    while (count > 0u && m->length + 1 < MESSAGE_CAPACITY) {
        m->text[m->length++] = digits[--count];
    }
    m->text[m->length] = '\0';
}

#endif

/* QEMU TCG plugin for `codegen bench`: exact instruction counts at marked points.
 *
 * Counts every guest instruction executed (an inline add per instruction, so an
 * instruction is counted when it executes, whatever the translation block boundaries)
 * and, each time the guest executes a 16-bit instruction whose encoding is `insn` (the
 * benchmark build's mark, see firmware/cortex-m/profile_cortex_m.h), appends the count so
 * far to the file `out`:
 *
 *     qemu-system-arm ... -plugin insn_marks.so,insn=0x46db,out=marks.txt
 *
 * The file gets one line per mark, then "total N" at exit. The difference between two
 * lines is the instructions executed from one mark to the next, the first mark included.
 *
 * QEMU installs no header for its plugin API, so the few declarations used are written
 * here, as plugin API version 1 has them (checked with QEMU 7.2): the inline operation
 * "add to a 64-bit counter" is 0 and a callback that reads no registers has flag 0.
 * Build: cc -shared -fPIC -O2 -o insn_marks.so insn_marks.c
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define INLINE_ADD_U64 0
#define CALLBACK_NO_REGISTERS 0

typedef uint64_t plugin_id;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

extern void qemu_plugin_register_vcpu_tb_trans_cb(
    plugin_id id, void (*callback)(plugin_id, struct qemu_plugin_tb *));
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb,
                                                        size_t index);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                       int operation, void *counter,
                                                       uint64_t amount);
extern void qemu_plugin_register_vcpu_insn_exec_cb(
    struct qemu_plugin_insn *insn, void (*callback)(unsigned int, void *), int flags,
    void *data);
extern void qemu_plugin_register_atexit_cb(plugin_id id,
                                           void (*callback)(plugin_id, void *), void *data);

EXPORT int qemu_plugin_version = 1;

static uint64_t executed;
static unsigned long mark_encoding;
static FILE *out;

static int is_mark(const struct qemu_plugin_insn *insn)
{
    const unsigned char *bytes = qemu_plugin_insn_data(insn);
    return qemu_plugin_insn_size(insn) == 2 &&
           (bytes[0] | (unsigned long)bytes[1] << 8) == mark_encoding; /* little-endian */
}

static void on_mark(unsigned int vcpu, void *data)
{
    (void)vcpu;
    (void)data;
    fprintf(out, "%" PRIu64 "\n", executed);
}

static void on_translate(plugin_id id, struct qemu_plugin_tb *tb)
{
    size_t count = qemu_plugin_tb_n_insns(tb);
    size_t i;
    (void)id;
    for (i = 0; i < count; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, INLINE_ADD_U64, &executed, 1);
        if (is_mark(insn)) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, CALLBACK_NO_REGISTERS,
                                                   NULL);
        }
    }
}

static void on_finish(plugin_id id, void *data)
{
    (void)id;
    (void)data;
    fprintf(out, "total %" PRIu64 "\n", executed);
    fclose(out);
}

EXPORT int qemu_plugin_install(plugin_id id, const void *info, int argc, char **argv)
{
    const char *path = NULL;
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "insn=", 5) == 0) {
            mark_encoding = strtoul(argv[i] + 5, NULL, 0);
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else {
            fprintf(stderr, "insn_marks: unknown argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (path == NULL || mark_encoding == 0 || mark_encoding > 0xffff) {
        fprintf(stderr, "insn_marks: needs insn=ENCODING (16 bits) and out=FILE\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "insn_marks: cannot write '%s'\n", path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_finish, NULL);
    return 0;
}

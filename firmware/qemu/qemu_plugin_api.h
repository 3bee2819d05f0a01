/* The part of QEMU's TCG plugin API (API version 1, as QEMU 7.2 implements it) that the
 * benchmark plugin uses.
 *
 * QEMU's packages install no header for the plugin API, so the declarations are written
 * here from the API's documentation: the functions below are resolved against the QEMU
 * binary when it loads the plugin. Only what bench_plugin.c calls is declared. The values
 * of the enumerations used are part of the API: the inline operation "add an immediate
 * to a 64-bit counter" is 0, a callback that reads no guest registers has flag 0, and a
 * memory callback for reads and writes has filter 3 (QEMU 7.2 mixes up the filters for
 * reads only and writes only, so the plugin asks for both and tells them apart itself).
 */
#ifndef QEMU_PLUGIN_API_H
#define QEMU_PLUGIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLUGIN_EXPORT __attribute__((visibility("default")))
#define PLUGIN_INLINE_ADD_U64 0
#define PLUGIN_CB_NO_REGS 0
#define PLUGIN_MEM_RW 3

typedef uint64_t plugin_id;
typedef uint32_t plugin_meminfo;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

extern void qemu_plugin_register_vcpu_tb_trans_cb(
    plugin_id id, void (*callback)(plugin_id, struct qemu_plugin_tb *));
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
                                                 void (*callback)(unsigned int, void *),
                                                 int flags, void *data);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb,
                                                        size_t index);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                       int operation, void *counter,
                                                       uint64_t amount);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                                   void (*callback)(unsigned int, void *),
                                                   int flags, void *data);
extern void qemu_plugin_register_vcpu_mem_cb(
    struct qemu_plugin_insn *insn,
    void (*callback)(unsigned int, plugin_meminfo, uint64_t, void *), int flags,
    int filter, void *data);
extern bool qemu_plugin_mem_is_store(plugin_meminfo info);
extern void qemu_plugin_register_atexit_cb(plugin_id id,
                                           void (*callback)(plugin_id, void *), void *data);

#endif /* QEMU_PLUGIN_API_H */

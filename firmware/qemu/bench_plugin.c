/* QEMU TCG plugin for `codegen bench`: exact instruction counts and modelled cycles at
 * marked points, per instruction address.
 *
 *     qemu-system-arm ... -plugin bench_plugin.so,insn=0x46db,out=marks.txt,core=cortex-m4
 *         [,small_multiplier=1][,wait_states=N,flash=0xSTART:0xEND,line=BYTES]
 *     qemu-system-riscv32 ... -plugin bench_plugin.so,insn=0x0a502013,out=marks.txt,core=none
 *
 * `core=none` counts instructions only (every cycle 0, every instruction of class
 * "unknown" but the marks): the cycle model is a Thumb one, for the cores it has a table
 * of; any other guest (RISC-V) is counted without it. A mark
 * `insn` above 0xffff is a 32-bit instruction (RISC-V's, see firmware/riscv/profile_riscv.h),
 * else a 16-bit one.
 *
 * Every executed guest instruction is counted (an inline add on a counter of its address,
 * so an instruction counts when it executes, whatever the translation block boundaries)
 * and charged the cycles of the core's timing table (cycle_model.c): the part known when
 * QEMU translates the instruction is an inline add too; what depends on the instruction
 * executed before it across a block boundary, on whether a branch was taken (always for
 * an unconditional branch; a conditional one when the next block does not start at its
 * fall-through address) and on wait states is added
 * by callbacks at the start of each block and at each load. Such an addition to the first
 * instruction of a block that starts with a mark waits until that mark has reported, so
 * that every row's cycles fall in the interval its instruction ran in.
 *
 * Wait states (`wait_states=N`, 0 by default): a load whose address is in the flash region
 * [START, END) costs N more cycles per access (every word of an LDM or LDRD; no cache);
 * an instruction fetch from flash costs N more when execution moves to a fetch line of
 * `line` bytes (16 by default) that is neither the line of the previously executed
 * instruction nor the next one, i.e. after a taken branch out of the current and next
 * line: sequential execution is hidden by the prefetch of the next line.
 *
 * Each time the guest executes a 16-bit instruction whose encoding is `insn` (the
 * benchmark build's mark, see firmware/cortex-m/profile_cortex_m.h) the plugin writes to
 * `out`
 *
 *     mark INSTRUCTIONS CYCLES                the totals so far
 *     ADDRESS CLASS EXECUTIONS CYCLES         one line per instruction address that ran
 *     ...                                     since the previous mark (hexadecimal address)
 *
 * and "total INSTRUCTIONS CYCLES" at exit. A mark costs no cycles and is transparent to
 * the pairing rules, so the cycles are those of the code without the marks.
 *
 * Build: cc -shared -fPIC -O2 -o bench_plugin.so bench_plugin.c cycle_model.c
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cycle_model.h"
#include "qemu_plugin_api.h"

#define BUCKETS 4096u
#define RECORDS_PER_CHUNK 1024u

/* What ran at one address. Records never move: inline operations point into them. */
struct record {
    uint64_t executions;
    uint64_t cycles;
    uint64_t shown_executions; /* the counts at the last mark */
    uint64_t shown_cycles;
    uint64_t address;
    unsigned cls;
    struct record *next; /* in its hash bucket */
};

/* A translation block: what its neighbours in execution need to know. */
struct block {
    uint64_t start;
    uint64_t fall_through;      /* the address after its last instruction */
    uint64_t last_address;      /* of its last instruction */
    unsigned last_size;
    int ends_in_branch;         /* its last instruction writes the PC */
    int conditional;            /* ... and may fall through */
    int first_wide_unaligned;   /* its first instruction is 32-bit at an address 2 mod 4 */
    int has_first, has_last;    /* it has an instruction other than a mark */
    int marked_first;           /* a mark runs before its first other instruction */
    struct cm_insn first, last; /* its first and last instruction other than a mark */
    struct record *first_record, *last_record;
};

PLUGIN_EXPORT int qemu_plugin_version = 1;

static struct cm_model model;
static int no_cycle_model; /* core=none: count instructions only */
static unsigned long mark_encoding;
static uint64_t wait_states, flash_start, flash_end, line_bytes = 16;
static FILE *out;
static struct record *buckets[BUCKETS];
static struct record **all_records;
static size_t record_count, record_capacity;
static struct record *chunk;
static size_t chunk_used = RECORDS_PER_CHUNK;
static const struct block *previous_block;
/* An adjustment of the first instruction of a block that starts with a mark, added only
 * after that mark has written its report: it belongs to the interval the mark opens. */
static struct record *pending_record;
static int64_t pending_cycles;
static int out_of_memory;

static struct record *record_at(uint64_t address)
{
    size_t bucket = (size_t)((address >> 1) % BUCKETS);
    struct record *r;
    for (r = buckets[bucket]; r != NULL; r = r->next) {
        if (r->address == address) {
            return r;
        }
    }
    if (record_count == record_capacity) {
        size_t capacity = record_capacity ? 2 * record_capacity : 4096;
        struct record **grown = realloc(all_records, capacity * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        all_records = grown;
        record_capacity = capacity;
    }
    if (chunk_used == RECORDS_PER_CHUNK) {
        chunk = calloc(RECORDS_PER_CHUNK, sizeof *chunk);
        if (chunk == NULL) {
            return NULL;
        }
        chunk_used = 0;
    }
    r = &chunk[chunk_used++];
    r->address = address;
    r->next = buckets[bucket];
    buckets[bucket] = r;
    all_records[record_count++] = r;
    return r;
}

static int in_flash(uint64_t address)
{
    return address >= flash_start && address < flash_end;
}

static void add(struct record *r, int64_t cycles)
{
    r->cycles += (uint64_t)cycles; /* wraps for a negative adjustment, as intended */
}

/* Adds `cycles` to the row of block b's first instruction other than a mark. */
static void add_first(const struct block *b, int64_t cycles)
{
    if (b->marked_first) {
        pending_record = b->first_record;
        pending_cycles += cycles;
    } else {
        add(b->first_record, cycles);
    }
}

static void on_block(unsigned int vcpu, void *data)
{
    const struct block *b = data;
    const struct block *p = previous_block;
    (void)vcpu;
    previous_block = b;
    if (p == NULL) {
        return;
    }
    if (p->ends_in_branch && (!p->conditional || b->start != p->fall_through)) {
        add(p->last_record, cm_taken(&model, &p->last, b->first_wide_unaligned));
    }
    if (p->has_last && b->has_first) {
        add_first(b, cm_after(&model, &p->last, &b->first));
    }
    if (wait_states != 0 && b->has_first && in_flash(b->start)) {
        uint64_t line = b->start / line_bytes;
        uint64_t from = (p->last_address + p->last_size - 1) / line_bytes;
        if (line != from && line != from + 1) {
            add_first(b, (int64_t)wait_states);
        }
    }
}

static void on_load(unsigned int vcpu, plugin_meminfo info, uint64_t address, void *data)
{
    (void)vcpu;
    if (!qemu_plugin_mem_is_store(info) && in_flash(address)) {
        add(data, (int64_t)wait_states);
    }
}

static void on_mark(unsigned int vcpu, void *data)
{
    uint64_t executions = 0, cycles = 0;
    size_t i;
    (void)vcpu;
    (void)data;
    for (i = 0; i < record_count; ++i) {
        executions += all_records[i]->executions;
        cycles += all_records[i]->cycles;
    }
    fprintf(out, "mark %" PRIu64 " %" PRIu64 "\n", executions, cycles);
    for (i = 0; i < record_count; ++i) {
        struct record *r = all_records[i];
        if (r->executions != r->shown_executions || r->cycles != r->shown_cycles) {
            fprintf(out, "%" PRIx64 " %s %" PRIu64 " %" PRIu64 "\n", r->address,
                    cm_class_name(r->cls), r->executions - r->shown_executions,
                    r->cycles - r->shown_cycles);
            r->shown_executions = r->executions;
            r->shown_cycles = r->cycles;
        }
    }
    if (pending_record != NULL) {
        add(pending_record, pending_cycles);
        pending_record = NULL;
        pending_cycles = 0;
    }
}

static int is_load(unsigned cls)
{
    return cls == CM_LOAD || cls == CM_LOAD_DUAL || cls == CM_LOAD_MULTI ||
           cls == CM_FP_LOAD || cls == CM_FP_LOAD_MULTI || cls == CM_TABLE_BRANCH;
}

/* The size of a Thumb instruction, from its first halfword. QEMU 7.2 reports 4 bytes for
 * a 16-bit instruction that ends a block because the next one crosses a page: it counts
 * the halfword it peeked at. */
static unsigned thumb_size(const unsigned char *bytes, unsigned reported)
{
    unsigned top = bytes[1] >> 3;
    return (reported >= 4 && (top == 0x1du || top == 0x1eu || top == 0x1fu)) ? 4u : 2u;
}

/* Whether the instruction of `size` bytes at `bytes` is the mark. */
static int is_mark(const unsigned char *bytes, unsigned size)
{
    unsigned long value = 0;
    unsigned i;
    if (size != (mark_encoding > 0xffffu ? 4u : 2u)) {
        return 0;
    }
    for (i = size; i-- > 0;) {
        value = value << 8 | bytes[i];
    }
    return value == mark_encoding;
}

/* core=none: every instruction counted, none charged, a callback at each mark. */
static void translate_counting_only(struct qemu_plugin_tb *tb)
{
    size_t count = qemu_plugin_tb_n_insns(tb);
    size_t i;
    for (i = 0; i < count; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const unsigned char *bytes = qemu_plugin_insn_data(insn);
        unsigned size = (unsigned)qemu_plugin_insn_size(insn);
        struct record *r = record_at(qemu_plugin_insn_vaddr(insn));
        if (mark_encoding <= 0xffffu) { /* a Thumb guest with core=none: see thumb_size */
            size = thumb_size(bytes, size);
        }
        if (r == NULL) {
            out_of_memory = 1;
            return;
        }
        r->cls = is_mark(bytes, size) ? CM_MARK : CM_UNKNOWN;
        qemu_plugin_register_vcpu_insn_exec_inline(insn, PLUGIN_INLINE_ADD_U64,
                                                   &r->executions, 1);
        if (r->cls == CM_MARK) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, PLUGIN_CB_NO_REGS, NULL);
        }
    }
}

static void on_translate(plugin_id id, struct qemu_plugin_tb *tb)
{
    size_t count = qemu_plugin_tb_n_insns(tb);
    size_t i;
    struct block *b = calloc(1, sizeof *b);
    struct cm_insn previous;
    int has_previous = 0, paired = 0;
    unsigned in_it_block = 0; /* instructions an IT before makes conditional */
    (void)id;
    if (no_cycle_model) {
        free(b);
        translate_counting_only(tb);
        return;
    }
    if (b == NULL) {
        out_of_memory = 1;
        return;
    }
    b->start = qemu_plugin_tb_vaddr(tb);
    for (i = 0; i < count; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t address = qemu_plugin_insn_vaddr(insn);
        const unsigned char *bytes = qemu_plugin_insn_data(insn);
        unsigned size = thumb_size(bytes, (unsigned)qemu_plugin_insn_size(insn));
        struct record *r = record_at(address);
        struct cm_insn d;
        int64_t cycles = 0;
        if (r == NULL) {
            out_of_memory = 1;
            return;
        }
        cm_decode(bytes, size, (unsigned)mark_encoding, &d);
        if (d.cls == CM_IT) {
            in_it_block = d.transfers;
        } else if (in_it_block != 0 && d.cls != CM_MARK) {
            d.flags |= CM_CONDITIONAL;
            --in_it_block;
        }
        if (i == 0) { /* where a branch to this block lands */
            b->first_wide_unaligned = size == 4 && (address & 2u) != 0;
        }
        r->cls = d.cls;
        qemu_plugin_register_vcpu_insn_exec_inline(insn, PLUGIN_INLINE_ADD_U64,
                                                   &r->executions, 1);
        if (d.cls == CM_MARK) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, PLUGIN_CB_NO_REGS, NULL);
            b->marked_first |= !has_previous;
        } else {
            cycles = cm_base(&model, &d);
            if (!has_previous) {
                b->has_first = 1;
                b->first = d;
                b->first_record = r;
            } else if (!paired && cm_dual_issue(&model, &previous, &d)) {
                cycles = 0;
                paired = 1;
            } else {
                cycles += cm_after(&model, &previous, &d);
                paired = 0;
            }
            previous = d;
            has_previous = 1;
            b->has_last = 1;
            b->last = d;
            b->last_record = r;
        }
        if (cycles != 0) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, PLUGIN_INLINE_ADD_U64,
                                                       &r->cycles, (uint64_t)cycles);
        }
        if (wait_states != 0 && is_load(d.cls)) {
            qemu_plugin_register_vcpu_mem_cb(insn, on_load, PLUGIN_CB_NO_REGS, PLUGIN_MEM_RW,
                                             r);
        }
        b->last_address = address;
        b->last_size = size;
        b->fall_through = address + size;
        b->ends_in_branch = (d.flags & CM_WRITES_PC) != 0;
        b->conditional = (d.flags & CM_CONDITIONAL) != 0;
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, PLUGIN_CB_NO_REGS, b);
}

static void on_finish(plugin_id id, void *data)
{
    uint64_t executions = 0, cycles = 0;
    size_t i;
    (void)id;
    (void)data;
    for (i = 0; i < record_count; ++i) {
        executions += all_records[i]->executions;
        cycles += all_records[i]->cycles;
    }
    if (out_of_memory) {
        fprintf(out, "error out of memory\n");
    }
    fprintf(out, "total %" PRIu64 " %" PRIu64 "\n", executions, cycles);
    fclose(out);
}

static int parse_number(const char *text, uint64_t *value)
{
    char *end;
    unsigned long long parsed = strtoull(text, &end, 0);
    if (end == text || *end != '\0') {
        return 0;
    }
    *value = (uint64_t)parsed;
    return 1;
}

static int parse_region(const char *text, uint64_t *start, uint64_t *end)
{
    char copy[64];
    char *colon;
    if (strlen(text) >= sizeof copy) {
        return 0;
    }
    strcpy(copy, text);
    colon = strchr(copy, ':');
    if (colon == NULL) {
        return 0;
    }
    *colon = '\0';
    return parse_number(copy, start) && parse_number(colon + 1, end) && *start < *end;
}

static int parse_argument(const char *argument, const char **path)
{
    uint64_t value;
    if (strncmp(argument, "insn=", 5) == 0) {
        if (!parse_number(argument + 5, &value) || value == 0 || value > 0xffffffffu) {
            return 0;
        }
        mark_encoding = (unsigned long)value;
        return 1;
    }
    if (strncmp(argument, "out=", 4) == 0) {
        *path = argument + 4;
        return 1;
    }
    if (strncmp(argument, "core=", 5) == 0) {
        if (strcmp(argument + 5, "none") == 0) {
            no_cycle_model = 1;
            model.core = CM_M0; /* unused */
            return 1;
        }
        return cm_core_named(argument + 5, &model.core);
    }
    if (strncmp(argument, "small_multiplier=", 17) == 0) {
        if (!parse_number(argument + 17, &value) || value > 1) {
            return 0;
        }
        model.small_multiplier = (int)value;
        return 1;
    }
    if (strncmp(argument, "wait_states=", 12) == 0) {
        return parse_number(argument + 12, &wait_states);
    }
    if (strncmp(argument, "flash=", 6) == 0) {
        return parse_region(argument + 6, &flash_start, &flash_end);
    }
    if (strncmp(argument, "line=", 5) == 0) {
        return parse_number(argument + 5, &line_bytes) && line_bytes != 0;
    }
    return 0;
}

PLUGIN_EXPORT int qemu_plugin_install(plugin_id id, const void *info, int argc, char **argv)
{
    const char *path = NULL;
    int i;
    (void)info;
    model.core = CM_CORES;
    for (i = 0; i < argc; ++i) {
        if (!parse_argument(argv[i], &path)) {
            fprintf(stderr, "bench_plugin: bad argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (path == NULL || mark_encoding == 0 || model.core == CM_CORES) {
        fprintf(stderr, "bench_plugin: needs insn=ENCODING, out=FILE and core=CORE (or none)\n");
        return -1;
    }
    if (mark_encoding > 0xffffu && !no_cycle_model) {
        fprintf(stderr, "bench_plugin: a 32-bit mark needs core=none (the model is Thumb's)\n");
        return -1;
    }
    if (no_cycle_model && (wait_states != 0 || model.small_multiplier)) {
        fprintf(stderr, "bench_plugin: core=none takes no cycle model options\n");
        return -1;
    }
    if (wait_states != 0 && flash_end == 0) {
        fprintf(stderr, "bench_plugin: wait_states needs flash=START:END\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "bench_plugin: cannot write '%s'\n", path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_finish, NULL);
    return 0;
}

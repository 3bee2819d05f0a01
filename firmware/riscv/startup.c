/* Startup for RV32 in machine mode under QEMU's virt board (-bios none).
 *
 * _start: set the global pointer, the stack pointer (sections.ld: __stack_end) and the
 * trap vector, then reset(): make a stack overflow fault instead of going unnoticed (the
 * stack is at the bottom of RAM, right above the code: a locked PMP region makes the code
 * read and execute only, for machine mode too, so the first store below the stack
 * faults); enable the FPU and the vector unit when the code is built for them (mstatus.FS
 * and .VS, else their instructions are illegal); initialise .data and .bss, run main()
 * and exit through semihosting with its status. Every trap reports its cause, the
 * faulting PC and mtval on the semihosting console and exits with status
 * FAULT_EXIT_STATUS. The symbols used here come from virt.ld.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "semihost.h"

#define FAULT_EXIT_STATUS 70
#define FAULT_STACK_BYTES 512
#define MSTATUS_FS_INITIAL (1u << 13)
#define MSTATUS_VS_INITIAL (1u << 9) /* RVV 1.0 */
#define PMPCFG_R 0x01u
#define PMPCFG_X 0x04u
#define PMPCFG_NAPOT 0x18u
#define PMPCFG_LOCKED 0x80u /* the region binds machine mode too */
#define MCAUSE_INTERRUPT 0x80000000u
/* The CSR instructions (Zicsr) wrapped for assemblers that want the extension named, as
 * binutils 2.40 does, while -march stays that of a multilib (rv32imac has none with it). */
#define CSR(instructions) ".option push\n\t.option arch, +zicsr\n\t" instructions \
    "\n\t.option pop"
#define TEXT(x) #x
#define NUMBER_TEXT(x) TEXT(x)

extern uint32_t __data_load_start[];
extern uint32_t __data_start[];
extern uint32_t __data_end[];
extern uint32_t __bss_start[];
extern uint32_t __bss_end[];
extern uint32_t __stack_start[];
extern uint8_t __code_region_start[];
extern uint8_t __code_region_size[];

/* The trap handler runs on its own stack (in .bss, above the main stack), so it can
 * report a trap that left SP below the main stack. */
uint64_t fault_stack[FAULT_STACK_BYTES / 8];

int main(int argc, char **argv);
void reset(void) __attribute__((noreturn, used));
void trap_report(uintptr_t sp) __attribute__((noreturn, used));

__asm__(".section .text.start, \"ax\", @progbits\n"
        ".globl _start\n"
        "_start:\n"
        ".option push\n"
        ".option norelax\n"
        "    la gp, __global_pointer$\n"
        ".option pop\n"
        "    la sp, __stack_end\n"
        "    la t0, trap_entry\n"
        CSR("    csrw mtvec, t0") "\n"
        "    j reset\n"
        /* mtvec in direct mode: every trap lands here (4-byte aligned). SP as it was
         * goes to trap_report, which runs on fault_stack. */
        ".balign 4\n"
        "trap_entry:\n"
        "    mv a0, sp\n"
        "    la sp, fault_stack + " NUMBER_TEXT(FAULT_STACK_BYTES) "\n"
        "    j trap_report\n"
        ".text\n");

/* A locked NAPOT region over the code, readable and executable but not writable. The
 * region must be a power of two of at least 8 bytes, aligned to its size (virt.ld). */
static void protect_code(void)
{
    uintptr_t start = (uintptr_t)__code_region_start;
    uintptr_t size = (uintptr_t)__code_region_size;
    uintptr_t address = (start >> 2) | ((size >> 3) - 1u);
    uintptr_t config = PMPCFG_LOCKED | PMPCFG_NAPOT | PMPCFG_R | PMPCFG_X;
    __asm__ volatile(CSR("csrw pmpaddr0, %0\n\tcsrw pmpcfg0, %1") "\n\tfence"
                     : : "r"(address), "r"(config) : "memory");
}

static void enable_units(void)
{
    uintptr_t enable = 0u;
#if defined(__riscv_flen)
    enable |= MSTATUS_FS_INITIAL;
#endif
#if defined(__riscv_vector)
    enable |= MSTATUS_VS_INITIAL;
#endif
    if (enable != 0u) {
        __asm__ volatile(CSR("csrs mstatus, %0") : : "r"(enable) : "memory");
    }
}

void reset(void)
{
    protect_code();
    enable_units();
    memcpy(__data_start, __data_load_start,
           (size_t)((uintptr_t)__data_end - (uintptr_t)__data_start));
    memset(__bss_start, 0, (size_t)((uintptr_t)__bss_end - (uintptr_t)__bss_start));
    semihost_exit(main(0, NULL));
}

static const char *cause_name(uint32_t cause)
{
    static const char *const names[] = {
        "instruction address misaligned", "instruction access fault", "illegal instruction",
        "breakpoint", "load address misaligned", "load access fault",
        "store address misaligned", "store access fault", "user ecall",
        "supervisor ecall", "reserved", "machine ecall", "instruction page fault",
        "load page fault", "reserved", "store page fault"
    };
    if (cause & MCAUSE_INTERRUPT) {
        return "interrupt";
    }
    return cause < sizeof names / sizeof names[0] ? names[cause] : "reserved";
}

static void append(char **cursor, const char *text)
{
    while (*text != '\0') {
        *(*cursor)++ = *text++;
    }
}

static void append_hex(char **cursor, uint32_t value)
{
    int shift;
    append(cursor, "0x");
    for (shift = 28; shift >= 0; shift -= 4) {
        *(*cursor)++ = "0123456789abcdef"[(value >> shift) & 0xfu];
    }
}

void trap_report(uintptr_t sp)
{
    char text[160];
    char *cursor = text;
    uint32_t cause, pc, value;
    __asm__ volatile(CSR("csrr %0, mcause") : "=r"(cause));
    __asm__ volatile(CSR("csrr %0, mepc") : "=r"(pc));
    __asm__ volatile(CSR("csrr %0, mtval") : "=r"(value));
    append(&cursor, "fault: ");
    append(&cursor, cause_name(cause));
    append(&cursor, " (mcause ");
    append_hex(&cursor, cause);
    append(&cursor, ") at pc ");
    append_hex(&cursor, pc);
    if (sp < (uintptr_t)__stack_start) {
        append(&cursor, ": stack overflow (SP below the stack)");
    }
    append(&cursor, ", mtval ");
    append_hex(&cursor, value);
    append(&cursor, "\n");
    *cursor = '\0';
    semihost_write0(text);
    semihost_exit(FAULT_EXIT_STATUS);
}

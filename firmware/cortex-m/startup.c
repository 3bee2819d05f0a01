/* Startup for Cortex-M (ARMv6-M, ARMv7-M, ARMv8-M mainline) under QEMU's mps2 boards.
 *
 * Reset: make a stack overflow fault instead of going unnoticed (the stack is at the bottom
 * of RAM and QEMU ignores writes below it): on ARMv8-M mainline set the stack limit
 * (MSPLIM) to the bottom of the stack; on ARMv6-M and ARMv7-M, when the core has an MPU
 * (QEMU's Cortex-M3, M4 and M7 have one; it also runs the Cortex-M0 build), map only the
 * code (read-only) and RAM (not executable) with no background map, so that any access
 * below RAM faults. Then enable the FPU if the code is built for one; initialise .data and
 * .bss, run main() and exit through semihosting with its status. Every other exception reports its name, the faulting PC and (ARMv7-M and
 * ARMv8-M) the fault status on the semihosting console and exits with status
 * FAULT_EXIT_STATUS. The symbols used here come from sections.ld.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "semihost.h"

#define FAULT_EXIT_STATUS 70
#define CPACR (*(volatile uint32_t *)0xe000ed88u)
#define CPACR_CP10_CP11_FULL_ACCESS (0xfu << 20)
#define CFSR (*(volatile uint32_t *)0xe000ed28u)
#define CFSR_STKOF (1u << 20) /* UsageFault: stack limit violation (ARMv8-M) */
#define CFSR_STACKING ((1u << 4) | (1u << 12)) /* MemManage or BusFault on exception entry */
#define FAULT_STACK_BYTES 512
#define MPU_TYPE (*(volatile uint32_t *)0xe000ed90u)
#define MPU_CTRL (*(volatile uint32_t *)0xe000ed94u)
#define MPU_RNR (*(volatile uint32_t *)0xe000ed98u)
#define MPU_RBAR (*(volatile uint32_t *)0xe000ed9cu)
#define MPU_RASR (*(volatile uint32_t *)0xe000eda0u)
#define MPU_CTRL_ENABLE 1u /* no PRIVDEFENA: what no region maps is inaccessible */
#define MPU_RASR_XN (1u << 28)
#define MPU_RASR_AP_FULL (3u << 24)
#define MPU_RASR_AP_READ_ONLY (6u << 24)
#define MPU_RASR_NORMAL_WRITE_BACK (3u << 16) /* TEX 0, C 1, B 1 */
#define MPU_RASR_ENABLE 1u
#define TEXT(x) #x
#define NUMBER_TEXT(x) TEXT(x)

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
#define HAS_CFSR 1
#else
#define HAS_CFSR 0 /* ARMv6-M: HardFault is the only fault and has no status register */
#endif

extern uint32_t __data_load_start[];
extern uint32_t __data_start[];
extern uint32_t __data_end[];
extern uint32_t __bss_start[];
extern uint32_t __bss_end[];
extern uint32_t __stack_start[];
extern uint32_t __stack_end[];
extern uint8_t __code_region_start[];
extern uint8_t __code_region_size[];
extern uint8_t __ram_region_start[];
extern uint8_t __ram_region_size[];

/* The fault handler runs on its own stack (in .bss, above the main stack), so it can
 * report a fault that left SP at or below the main stack's limit. */
uint64_t fault_stack[FAULT_STACK_BYTES / 8];

int main(int argc, char **argv);
void Reset_Handler(void) __attribute__((noreturn));
void Fault_Handler(void) __attribute__((naked, noreturn));
void fault_report(const uint32_t *frame) __attribute__((noreturn));

static void enable_fpu(void)
{
#if defined(__ARM_FP)
    CPACR |= CPACR_CP10_CP11_FULL_ACCESS;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
}

static void set_stack_limit(void)
{
#if defined(__ARM_ARCH_8M_MAIN__)
    __asm__ volatile("msr msplim, %0" : : "r"(__stack_start) : "memory");
#endif
}

#if defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
/* RASR for a region of `size` bytes at `start`, or 0 when the MPU cannot map it (the size
 * must be a power of two of at least 256 bytes, the start a multiple of it). */
static uint32_t mpu_region(uintptr_t start, uintptr_t size, uint32_t attributes)
{
    uint32_t log2 = 8;
    while (log2 < 32u && ((uintptr_t)1 << log2) < size) {
        ++log2;
    }
    if (log2 >= 32u || ((uintptr_t)1 << log2) != size || start % size != 0u) {
        return 0u;
    }
    return attributes | (log2 - 1u) << 1 | MPU_RASR_ENABLE;
}
#endif

/* Maps code and RAM and nothing else (the System Control Space stays accessible): the
 * stack, at the bottom of RAM, faults when it overflows. Cores without an MPU (the
 * Cortex-M0) report no regions in MPU_TYPE and are left alone. */
static void protect_memory(void)
{
#if defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
    uint32_t code = mpu_region((uintptr_t)__code_region_start, (uintptr_t)__code_region_size,
                               MPU_RASR_AP_READ_ONLY | MPU_RASR_NORMAL_WRITE_BACK);
    uint32_t ram = mpu_region((uintptr_t)__ram_region_start, (uintptr_t)__ram_region_size,
                              MPU_RASR_XN | MPU_RASR_AP_FULL | MPU_RASR_NORMAL_WRITE_BACK);
    if (((MPU_TYPE >> 8) & 0xffu) < 2u || code == 0u || ram == 0u) {
        return;
    }
    MPU_RNR = 0u;
    MPU_RBAR = (uint32_t)(uintptr_t)__code_region_start;
    MPU_RASR = code;
    MPU_RNR = 1u;
    MPU_RBAR = (uint32_t)(uintptr_t)__ram_region_start;
    MPU_RASR = ram;
    MPU_CTRL = MPU_CTRL_ENABLE;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
}

void Reset_Handler(void)
{
    set_stack_limit();
    protect_memory();
    enable_fpu();
    memcpy(__data_start, __data_load_start,
           (size_t)((uintptr_t)__data_end - (uintptr_t)__data_start));
    memset(__bss_start, 0, (size_t)((uintptr_t)__bss_end - (uintptr_t)__bss_start));
    semihost_exit(main(0, NULL));
}

/* Handler mode always runs on MSP and the harness never switches to PSP, so on entry
 * SP points at the exception frame: r0-r3, r12, lr, pc, xpsr (unless the stacking itself
 * overflowed). fault_report gets that frame and runs on fault_stack. */
void Fault_Handler(void)
{
    __asm__("mov r0, sp\n\t"
            "ldr r1, =fault_stack + " NUMBER_TEXT(FAULT_STACK_BYTES) "\n\t"
            "mov sp, r1\n\t"
            "bl fault_report\n");
}

static const char *exception_name(uint32_t number)
{
    static const char *const names[] = {
        "thread", "Reset", "NMI", "HardFault", "MemManage", "BusFault", "UsageFault",
        "SecureFault", "reserved", "reserved", "reserved", "SVCall", "DebugMonitor",
        "reserved", "PendSV", "SysTick"
    };
    return number < sizeof names / sizeof names[0] ? names[number] : "interrupt";
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

void fault_report(const uint32_t *frame)
{
    char text[160];
    char *cursor = text;
    uint32_t ipsr;
    uint32_t cfsr = HAS_CFSR ? CFSR : 0u;
    int below;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    append(&cursor, "fault: ");
    append(&cursor, exception_name(ipsr & 0x1ffu));
    append(&cursor, " (exception ");
    append_hex(&cursor, ipsr & 0x1ffu);
    append(&cursor, ")");
    /* MSPLIM: when the stacking itself overflowed, SP was left at the limit and no frame
     * (so no PC) was saved; an instruction that would have moved SP below it left SP
     * alone. MPU: a frame below the stack, or one whose stacking faulted, is not
     * readable (the fault that left SP there was an overflow). */
    below = (uintptr_t)frame < (uintptr_t)__stack_start || (cfsr & CFSR_STACKING) != 0u;
    if (!below && ((cfsr & CFSR_STKOF) == 0u || (uintptr_t)frame > (uintptr_t)__stack_start)) {
        append(&cursor, " at pc ");
        append_hex(&cursor, frame[6]);
    }
    if (cfsr & CFSR_STKOF) {
        append(&cursor, ": stack overflow (SP below MSPLIM)");
    } else if (below) {
        append(&cursor, ": stack overflow (SP below the stack)");
    }
    if (HAS_CFSR) {
        append(&cursor, ", cfsr ");
        append_hex(&cursor, cfsr);
    }
    append(&cursor, "\n");
    *cursor = '\0';
    semihost_write0(text);
    semihost_exit(FAULT_EXIT_STATUS);
}

typedef union {
    void (*handler)(void);
    uint32_t *stack_top;
} vector_entry;

/* The system part of the vector table; the harness enables no interrupts. */
__attribute__((section(".vectors"), used))
const vector_entry vector_table[16] = {
    {.stack_top = __stack_end},
    {.handler = Reset_Handler},
    {.handler = Fault_Handler}, /* NMI */
    {.handler = Fault_Handler}, /* HardFault */
    {.handler = Fault_Handler}, /* MemManage */
    {.handler = Fault_Handler}, /* BusFault */
    {.handler = Fault_Handler}, /* UsageFault */
    {.handler = Fault_Handler}, /* SecureFault (ARMv8-M) */
    {.handler = NULL},
    {.handler = NULL},
    {.handler = NULL},
    {.handler = Fault_Handler}, /* SVCall */
    {.handler = Fault_Handler}, /* DebugMonitor */
    {.handler = NULL},
    {.handler = Fault_Handler}, /* PendSV */
    {.handler = Fault_Handler}, /* SysTick */
};

/* Cycle-model micro-benchmark: wait states (run on cortex-m4 with 0 and 3 wait states).
 *
 * Regions between layer marks; "@@ NAME instructions=N cortex-m4=C cortex-m4+ws3=C" states
 * the cycles with zero and with 3 wait states and 16-byte fetch lines
 * (firmware/qemu/bench_plugin.c): a load from flash (the CODE region of the board's linker
 * script) costs 3 more per access, RAM none; an instruction fetch costs 3 more when
 * execution continues in a line that is neither the line of the instruction before nor
 * the next one. Each region starts at a 16-byte line boundary, reached by a taken branch
 * from at least two lines away (the last instruction of the region before), so its costs
 * are those of the region's last instruction.
 *
 * Registers: r8 = a table in flash whose words hold its own address, r9 = scratch RAM.
 */
#include "harness.inc"

    .purgem REGION
    .macro REGION name
    b \name
    .balign 16
    .space 32
\name:
    mov r11, r11
    .endm

Reset_Handler:
    ldr r8, =table
    ldr r9, =ram

@@ flash_loads instructions=6 cortex-m4=11 cortex-m4+ws3=29
@ ldr from flash 2 (+3); ldr from flash, pipelined 1 (+3); ldr from RAM, pipelined 1;
@ ldm of 2 words from flash 3 (+3 x2); ldr literal (flash) after an ldm 2 (+3);
@ b to the next region, taken 2, and its target line is far (+3)
@ = 11 with no wait states, 11 + 3 + 3 + 6 + 3 + 3 = 29 with 3.
    REGION flash_loads
    ldr r0, [r8]
    ldr r1, [r8, #4]
    ldr r2, [r9]
    ldmia r8, {r3, r4}
    ldr r5, =table

@@ fetch_lines instructions=9 cortex-m4=14 cortex-m4+ws3=23
@ movs 1; b to the same line 2; b to the start of the next line (prefetched) 2;
@ subs 1; bne taken to a line three lines on 2 (+3); b back to the line before it 2 (+3);
@ subs 1; bne not taken 1; b to the next region 2 (+3)
@ = 14 with no wait states, 14 + 9 = 23 with 3.
    REGION fetch_lines
    movs r0, #2
    b.n 1f
1:  b.n 2f
    .balign 16
2:  subs r0, #1
    bne 4f
    REGION end
    EXIT
    .balign 16
    .space 16
4:  b.n 2b

    .ltorg

    DATA

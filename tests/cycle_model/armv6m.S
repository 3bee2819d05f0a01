/* Cycle-model micro-benchmark, ARMv6-M (run on cortex-m0, with and without the small
 * multiplier).
 *
 * Regions between layer marks (mov r11, r11); each line "@@ NAME instructions=N CORE=C"
 * states how many instructions the region executes and the cycles the model must charge,
 * worked out below from the Cortex-M0 TRM's table (firmware/qemu/cycle_model.c); the key
 * cortex-m0+small-multiplier is the 32-cycle multiplier option. Every region starts with
 * an ISB (4 cycles on the M0).
 *
 * Registers: r7 = a table in flash whose words hold its own address, r6 = scratch RAM,
 * r4 = 4.
 */
#include "harness.inc"

Reset_Handler:
    ldr r7, =table
    ldr r6, =ram
    movs r4, #4

@@ alu_mul instructions=6 cortex-m0=9 cortex-m0+small-multiplier=40
@ isb 4; movs 1; adds 1; muls 1 (32 with the small multiplier); sxtb 1; rev 1 = 9 (40).
    REGION
    movs r0, #3
    adds r1, r0, #2
    muls r1, r0, r1
    sxtb r2, r1
    rev r3, r2

@@ loads_stores instructions=8 cortex-m0=18 cortex-m0+small-multiplier=18
@ isb 4 + seven loads and stores of 2 cycles each (the M0 pipelines none) = 18.
    REGION
    ldr r0, [r7]
    ldr r1, [r7, #4]
    ldr r2, [r7, r4]
    str r0, [r6]
    strb r1, [r6, #1]
    ldr r3, =table
    ldr r5, [sp, #0]

@@ multiple instructions=8 cortex-m0=23 cortex-m0+small-multiplier=23
@ isb 4; ldr literal 2; ldm of 3 registers 1 + 3; mov 1; stm of 2: 1 + 2; push of 3: 1 + 3;
@ pop of 2: 1 + 2; pop of 1: 1 + 1 = 23.
    REGION
    ldr r3, =table
    ldm r3!, {r0, r1, r2}
    mov r5, r6
    stm r5!, {r0, r1}
    push {r4, r5, lr}
    pop {r4, r5}
    pop {r0}

@@ branches instructions=15 cortex-m0=37 cortex-m0+small-multiplier=37
@ isb 4; movs 1; subs 1 x2; bne taken 3, not taken 1; b 3; bl 4; adds 1; bx 3; movs 1;
@ bl 4; push {r4, lr} 3; pop {r4, pc} 4 + 2 = 6; movs 1
@ = 4 + 1 + 2 + 4 + 3 + 4 + 1 + 3 + 1 + 4 + 3 + 6 + 1 = 37.
    REGION
    movs r0, #2
1:  subs r0, #1
    bne 1b
    b 2f
    nop
2:  bl leaf
    movs r1, #0
    bl leaf2
    movs r1, #1

@@ system instructions=4 cortex-m0=13 cortex-m0+small-multiplier=13
@ isb 4; nop 1; dmb 4; mrs 4 = 13.
    REGION
    nop
    dmb
    mrs r0, primask

    REGION
    EXIT

    .thumb_func
leaf:
    adds r1, #1
    bx lr

    .thumb_func
leaf2:
    push {r4, lr}
    pop {r4, pc}

    .ltorg

    DATA

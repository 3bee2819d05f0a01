/* Cycle-model micro-benchmark, ARMv7-M (run on cortex-m3, cortex-m4, cortex-m7, cortex-m33).
 *
 * Regions between layer marks (mov r11, r11); each line "@@ NAME instructions=N CORE=C"
 * states how many instructions the region executes and the cycles the model must charge
 * per core, worked out below from the timing tables of firmware/qemu/cycle_model.c (TRM
 * tables of the Cortex-M3 and M4, the approximations of the M33 and M7). Every region
 * starts with an ISB: 1 cycle, it ends QEMU's translation block and pairs with nothing,
 * so that no pipelining or dual issue crosses from one region into the next.
 *
 * Registers: r8 = a table in flash whose words hold its own address (so a loaded word is
 * a valid address), r9 = scratch RAM, r1-r3 = the table's address, r4 = 4.
 */
#include "harness.inc"

Reset_Handler:
    ldr r8, =table
    ldr r9, =ram
    mov r1, r8
    mov r2, r8
    mov r3, r8
    movs r4, #4

@@ alu_pairs instructions=5 cortex-m3=5 cortex-m4=5 cortex-m33=5 cortex-m7=3
@ M3/M4/M33: isb 1 + four ALU instructions 1 each = 5.
@ M7: isb 1; movs r0 1; movs r5 issues with it (no shared register) 0; adds r6 reads r5: 1;
@ adds r7 issues with adds r6 0 = 3.
    REGION
    movs r0, #1
    movs r5, #2
    adds r6, r0, r5
    adds r7, r0, #5

@@ trm_ldr_ldr instructions=3 cortex-m3=4 cortex-m4=4 cortex-m33=3 cortex-m7=3
@ The TRM's "LDR R0,[R1]; LDR R1,[R2] - normally three cycles total".
@ M3/M4: isb 1 + ldr 2 + ldr pipelined (r0 not in its address) 1 = 4.
@ M33/M7: isb 1 + ldr 1 + ldr 1 (reads r2, not r0: no stall) = 3.
    REGION
    ldr r0, [r1]
    ldr r1, [r2]

@@ trm_ldr_str instructions=3 cortex-m3=4 cortex-m4=4 cortex-m33=4 cortex-m7=4
@ "LDR R0,[R1,R2]; STR R0,[R3,#20] - normally three cycles total".
@ M3/M4: isb 1 + ldr 2 + str with an immediate offset 1 = 4.
@ M33/M7: isb 1 + ldr 1 + str 1 + 1 stall (it stores r0, just loaded) = 4.
    REGION
    ldr r0, [r1, r4]
    str r0, [r9, #20]

@@ trm_ldr_str_reg instructions=3 cortex-m3=4 cortex-m4=4 cortex-m33=3 cortex-m7=3
@ "LDR R0,[R1,R2]; STR R1,[R3,R2] - normally three cycles total".
@ M3/M4: isb 1 + ldr 2 + str with a register offset 2, pipelined behind the load 1 = 4.
@ M33/M7: 1 + 1 + 1 = 3.
    REGION
    ldr r0, [r1, r4]
    str r1, [r9, r4]

@@ trm_three_loads instructions=4 cortex-m3=5 cortex-m4=5 cortex-m33=4 cortex-m7=4
@ "LDR R0,[R1,R5]; LDR R1,[R2]; LDR R2,[R3,#4] - normally four cycles total".
@ M3/M4: isb 1 + 2 + 1 + 1 = 5. M33/M7: 1 + 1 + 1 + 1 = 4 (no loaded register is read).
    REGION
    ldr r0, [r1, r4]
    ldr r1, [r2]
    ldr r2, [r3, #4]

@@ no_pipelining instructions=7 cortex-m3=13 cortex-m4=13 cortex-m33=10 cortex-m7=9
@ M3/M4: isb 1; ldr 2; ldr r6,[r0] uses the loaded r0 for its address 2; str imm 1;
@ ldr after a store 2; ldrd 3 (never pipelined); ldr after ldrd 2 = 13.
@ M33: isb 1; ldr 1; ldr r6,[r0] 1 + 1 stall; str r6 1 + 1 stall; ldr 1; ldrd 2; ldr 1 = 10.
@ M7: isb 1; ldr 1; ldr 1 + 1; str 1 + 1; ldr 1; ldrd 1; ldr 1 = 9 (memory accesses never
@ pair with each other).
    REGION
    ldr r0, [r1]
    ldr r6, [r0]
    str r6, [r9]
    ldr r7, [r1]
    ldrd r6, r7, [r1]
    ldr r0, [r1]

@@ multiple instructions=5 cortex-m3=17 cortex-m4=17 cortex-m33=17 cortex-m7=13
@ M3/M4/M33: isb 1 + four transfers of 3 registers, 1 + 3 each = 17.
@ M7: isb 1 + four times 1 + 2 (3 registers, two per cycle) = 13.
    REGION
    ldmia r8, {r0, r2, r3}
    stmia r9, {r0, r2, r3}
    push {r4, r5, lr}
    pop {r4, r5, r6}

@@ multiply instructions=6 cortex-m3=28 cortex-m4=17 cortex-m33=17 cortex-m7=17
@ M3: isb 1; mul 1; mla 2; smull 5; smlal 7; sdiv 12 = 28 (worst cases of 3-5, 4-7, 2-12).
@ M4/M33: isb 1 + 1 + 1 + 1 + 1 + 12 = 17.
@ M7: the same: a multiply never pairs with a multiply, sdiv with nothing = 17.
    REGION
    mul r0, r2, r3
    mla r0, r2, r3, r0
    smull r6, r7, r2, r3
    smlal r6, r7, r2, r3
    sdiv r0, r2, r3

@@ stores instructions=5 cortex-m3=8 cortex-m4=8 cortex-m33=6 cortex-m7=5
@ M3/M4: isb 1; str imm 1; str reg 2 (behind a store: no pipelining); strd 3; strh imm 1 = 8.
@ M33: 1 + 1 + 1 + 2 + 1 = 6. M7: 1 + 1 + 1 + 1 + 1 = 5.
    REGION
    str r0, [r9, #4]
    str r0, [r9, r4]
    strd r0, r1, [r9, #8]
    strh r0, [r9, #2]

@@ it_folding instructions=7 cortex-m3=6 cortex-m4=6 cortex-m33=6 cortex-m7=6
@ M3/M4/M33: isb 1; cmp 1; it after a 16-bit instruction folds 0; moveq 1; add.w 1; it after
@ a 32-bit instruction 1; movne (condition false: as if executed) 1 = 6.
@ M7: isb 1; cmp 1; it 1; moveq 1; add.w issues with moveq 0; it 1; movne 1 = 6.
    REGION
    cmp r0, r0
    it eq
    moveq r1, #1
    add.w r2, r2, #0
    it ne
    movne r1, #2

@@ loop instructions=8 cortex-m3=10 cortex-m4=10 cortex-m33=10 cortex-m7=7
@ M3/M4/M33: isb 1; movs 1; subs 1 x3; bne taken twice 1 + P=1 (immediate target, a 16-bit
@ instruction) = 2 each, not taken once 1 = 10.
@ M7: isb 1; movs 1; subs reads r0: 1; bne issues with subs 0 + 1 taken; then twice more
@ subs 1 and bne 0 (+ 1 when taken) = 1 + 1 + 1 + 1 + 1 + 1 + 1 = 7.
    REGION
    movs r0, #3
1:  subs r0, #1
    bne 1b

@@ taken_wide_unaligned instructions=5 cortex-m3=7 cortex-m4=7 cortex-m33=7 cortex-m7=5
@ M3/M4/M33: isb 1; movs 1; cmp 1; beq taken 1 + P = 1 + 1 more for its target, a 32-bit
@ instruction at an address 2 mod 4: 3; add.w 1 = 7.
@ M7: isb 1; movs 1; cmp reads r0: 1; beq issues with cmp 0 + 1 taken; add.w 1 = 5.
    REGION
    movs r0, #0
    cmp r0, #0
    beq 3f
    .balign 4
    nop
3:  add.w r0, r0, #1

@@ calls instructions=9 cortex-m3=19 cortex-m4=19 cortex-m33=19 cortex-m7=17
@ M3/M4/M33: isb 1; bl 1 + P=1: 2; adds 1; bx lr 1 + P=2 (register target): 3; movs 1; bl 2;
@ push {r4, lr} 1 + 2: 3; pop {r4, pc} 1 + 2 + P=2: 5; movs 1 = 19 (every target is 16-bit).
@ M7: isb 1; bl 1 + 1; adds 1; bx 1 + 2; movs 1; bl 1 + 1 (a call does not pair); push
@ 1 + 1; pop 1 + 1 + 2; movs 1 = 17.
    REGION
    bl leaf
    movs r1, #0
    bl leaf2
    movs r1, #1

@@ page_end instructions=3 cortex-m3=5 cortex-m4=5 cortex-m33=4 cortex-m7=4
@ A load on the last halfword of a page: QEMU's translation block ends with it, and the
@ next region's mark opens a block of its own.
@ M3/M4: isb 1; b.w taken 1 + P=1: 2 (its target 16-bit); ldr 2 (after a branch) = 5.
@ M33: isb 1; b.w 2; ldr 1 = 4. M7: isb 1; b.w 1 + 1; ldr 1 = 4.
    REGION
    b.w 4f
    .ltorg                    @ the literals above, within reach
    .p2align 12
    .skip 4094
4:  ldr r0, [r2]

@@ page_start instructions=1 cortex-m3=1 cortex-m4=1 cortex-m33=1 cortex-m7=1
@ No ISB: the mark starts the block, and the load after it follows the previous block's
@ load. The adjustment across blocks (M3/M4: pipelined, -1) is this region's, and its
@ row must show it here, not as a wrapped -1 in the previous region's rows.
@ M3/M4: ldr 2 - 1 = 1. M33/M7: ldr 1 (no load-use: r3 is not the r0 just loaded) = 1.
    mov r11, r11
    ldr r0, [r3]

    REGION
    EXIT

    .thumb_func
leaf:
    adds r0, #1
    bx lr

    .thumb_func
leaf2:
    push {r4, lr}
    pop {r4, pc}

    .ltorg

    DATA

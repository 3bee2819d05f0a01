/* Cycle-model micro-benchmark, Armv8.1-M: Helium (MVE) and the low-overhead loops (run on
 * cortex-m55).
 *
 * Regions between layer marks (mov r11, r11); each line "@@ NAME instructions=N CORE=C"
 * states how many instructions the region executes and the cycles the model must charge,
 * worked out below from the Cortex-M55 rules of firmware/qemu/cycle_model.c: a vector
 * instruction 2 cycles, 1 when the one just before it is a vector instruction of another
 * pipe (load/store; integer, with VMOV/VDUP; multiply/FP, with VCMP/VPT and the
 * across-vector MACs); VPST/VPNOT/VCTP 1; scalar code as the Cortex-M33. Every region
 * starts with an ISB: 1 cycle, not a vector instruction, so nothing overlaps across regions.
 *
 * Registers: r8 = a table in flash whose words hold its own address, r9 = scratch RAM
 * (64 bytes), r7 = r9 (a low register, for the widening and narrowing forms), r1 = 3,
 * r2 = 5, q4 = 0 (gather offsets).
 */
#include "harness.inc"

Reset_Handler:
    ldr r8, =table
    ldr r9, =ram
    mov r7, r9
    ldr r0, =0xe000ed88       @ CPACR: full access to CP10 and CP11, the FPU and Helium
    ldr r1, [r0]
    orr r1, r1, #0xf00000
    str r1, [r0]
    dsb
    isb
    movs r1, #3
    movs r2, #5
    vmov.i32 q4, #0

@@ loads_stores instructions=6 cortex-m55=11
@ isb 1; five instructions of the load/store pipe, each after one of the same pipe (or
@ the isb): 2 each = 11. A widening load, a narrowing store and a gather cost the same.
    REGION
    vldrw.u32 q0, [r9]
    vldrb.s32 q1, [r7]
    vstrw.32 q0, [r9, #16]
    vldrw.u32 q3, [r9, q4]
    vstrb.32 q1, [r7, #32]

@@ macs instructions=6 cortex-m55=11
@ isb 1; five instructions of the multiply pipe, one after the other: 2 each = 11.
    REGION
    vmlav.s8 r0, q0, q1
    vmlava.s8 r0, q0, q1
    vmladava.s16 r0, q0, q1
    vqrdmulh.s32 q2, q2, q3
    vmul.i32 q3, q3, r1

@@ overlap instructions=9 cortex-m55=12
@ isb 1; vldrb 2; vmlava after a load 1; vldrb after a MAC 1; vmlava 1; vadd (integer)
@ after a MAC 1; vshr after vadd, the same pipe: 2; vdup (integer) 2; vstrw after an
@ integer instruction 1 = 12.
    REGION
    vldrb.s8 q0, [r9]
    vmlava.s8 r0, q0, q1
    vldrb.s8 q2, [r9, #16]
    vmlava.s8 r0, q2, q1
    vadd.i32 q3, q3, q3
    vshr.s32 q3, q3, #1
    vdup.32 q5, r1
    vstrw.32 q3, [r9, #32]

@@ predication instructions=8 cortex-m55=10
@ isb 1; vctp 1; vpst 1; vaddt after vpst: 2; vpt (multiply pipe) after vadd 1; vaddt
@ after vpt 1; vpnot 1; vpsel after vpnot 2 = 10.
    REGION
    vctp.32 r2
    vpst
    vaddt.i32 q0, q1, q2
    vpt.s32 gt, q1, q2
    vaddt.i32 q3, q3, q3
    vpnot
    vpsel q0, q1, q2

@@ tail_predicated_loop instructions=13 cortex-m55=16
@ Ten words, four a pass: three passes, the last one of two lanes. isb 1; movs 1; mov 1;
@ dlstp 1; per pass vldrw 2 (after dlstp or letp), vmlava after it 1, letp 1 whether it
@ loops back (no refill) or not: 3 * 4 = 12; = 16.
    REGION
    movs r3, #10
    mov r4, r9
    dlstp.32 lr, r3
1:
    vldrw.u32 q0, [r4], #16
    vmlava.s32 r0, q0, q0
    letp lr, 1b

@@ scalar_loops instructions=12 cortex-m55=13
@ isb 1; movs 1; dls 1; three passes of adds 1 and le 1 (looping back costs no refill)
@ = 6; movs 1; wls with no iteration skips the loop: 1 + the refill of an immediate
@ branch 1; movs 1 = 13.
    REGION
    movs r3, #3
    dls lr, r3
2:
    adds r0, #1
    le lr, 2b
    movs r3, #0
    wls lr, r3, 3f
4:
    adds r0, #1
    le lr, 4b
3:
    movs r0, #0

@@ scalar instructions=10 cortex-m55=16
@ As the Cortex-M33: isb 1; ldr 1; ldr whose address is the register just loaded: 1 + 1
@ stall; smlad reading the loaded r1: 1 + 1; mla 1; ldrd 2; strd storing the registers
@ just loaded: 2 + 1; cmp 1; beq taken 1 + 1 refill; movs 1 = 16.
    REGION
    ldr r0, [r8]
    ldr r1, [r0]
    smlad r2, r1, r1, r2
    mla r3, r1, r2, r3
    ldrd r4, r5, [r9]
    strd r4, r5, [r9, #8]
    cmp r0, r0
    beq 5f
    nop
5:
    movs r0, #1

    REGION
    EXIT

    .ltorg

    DATA

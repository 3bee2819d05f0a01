/* Cycle-model micro-benchmark, ARMv7E-M: the DSP extension and the FPU (run on
 * cortex-m4, cortex-m7, cortex-m33).
 *
 * Regions between layer marks (mov r11, r11); each line "@@ NAME instructions=N CORE=C"
 * states how many instructions the region executes and the cycles the model must charge
 * per core, worked out below from the timing tables of firmware/qemu/cycle_model.c. Every
 * region starts with an ISB: 1 cycle, pairing with nothing.
 *
 * Registers: r8 = a table in flash whose words hold its own address, r9 = scratch RAM.
 */
#include "harness.inc"

Reset_Handler:
    ldr r8, =table
    ldr r9, =ram
    ldr r0, =0xe000ed88       @ CPACR: full access to CP10 and CP11, the FPU
    ldr r1, [r0]
    orr r1, r1, #0xf00000
    str r1, [r0]
    dsb
    movs r1, #3
    movs r2, #5

@@ dsp instructions=8 cortex-m4=8 cortex-m33=8 cortex-m7=6
@ M4/M33: isb 1 + seven single-cycle instructions (MACs, SIMD, saturation, SMLAL) = 8.
@ M7: isb 1; smlad 1; smlad 1 (two multiplies never pair); sxtb16 issues with it 0;
@ smulbb 1; ssat reads r5: 1; uadd8 issues with ssat 0; smlal 1 = 6.
    REGION
    smlad r0, r1, r2, r0
    smlad r3, r1, r2, r3
    sxtb16 r4, r1
    smulbb r5, r1, r2
    ssat r6, #8, r5
    uadd8 r7, r1, r2
    smlal r10, r12, r1, r2

@@ fp instructions=9 cortex-m4=30 cortex-m33=28 cortex-m7=24
@ M4: isb 1; vldr 2; vadd 1; vmla 3; vdiv 14; vmov to a core register 1; vstr 2;
@ vpush of 2 words 1 + 2; vpop 1 + 2 = 30.
@ M33: the same with vldr and vstr 1 = 28.
@ M7: isb 1; vldr 1; vadd 1; vmla 1; vdiv 14; vmov 1; vstr 1; vpush 1 + 1; vpop 1 + 1 = 24.
    REGION
    vldr s0, [r8]
    vadd.f32 s1, s0, s0
    vmla.f32 s2, s0, s1
    vdiv.f32 s3, s1, s0
    vmov r0, s3
    vstr s3, [r9]
    vpush {s16-s17}
    vpop {s16-s17}

    REGION
    EXIT

    .ltorg

    DATA

/* Cycle model of the Cortex-M cores for `codegen bench`: a Thumb decoder and, per core,
 * the instruction timings of its Technical Reference Manual (see cycle_model.c for the
 * tables and every rule). Plain C with no QEMU dependency; bench_plugin.c applies it to
 * the instructions QEMU executes.
 *
 * The cycles of an executed instruction are
 *     cm_base(insn)                          what the table gives, branch not taken
 *   + cm_after(previous, insn)               pairing with the instruction executed just
 *                                            before it (load pipelining, IT folding,
 *                                            load-use stalls)
 *   + cm_taken(insn, target)                 when insn is a branch that was taken
 *   + wait states (bench_plugin.c)           flash data reads and instruction fetches
 * and, on the Cortex-M7 only, an instruction that dual-issues with the one before it
 * (cm_dual_issue) costs nothing. On the Cortex-M55, cm_after also holds the overlap of
 * consecutive Helium (MVE) instructions (see cycle_model.c).
 */
#ifndef CYCLE_MODEL_H
#define CYCLE_MODEL_H

#include <stdint.h>

enum cm_core { CM_M0, CM_M3, CM_M4, CM_M7, CM_M33, CM_M55, CM_CORES };

/* What an instruction is, for its timing. Also the classes `codegen bench` reports. */
enum cm_class {
    CM_ALU,            /* data processing, moves, shifts, extends, bit fields, saturation,
                          SIMD add/subtract, CLZ, REV, ... */
    CM_MUL,            /* MUL, MULS (32-bit product) */
    CM_MLA,            /* MLA, MLS */
    CM_DSP_MUL,        /* the DSP extension's multiplies: SMLAD, SMUAD, SMULxy, SMLAxy,
                          SMMUL, SMMLA, SMULWy, USAD8, ... */
    CM_MUL_LONG,       /* SMULL, UMULL */
    CM_MAC_LONG,       /* SMLAL, UMLAL, UMAAL, SMLALxy, SMLALD, SMLSLD */
    CM_DIV,            /* SDIV, UDIV */
    CM_LOAD,           /* one register: LDR, LDRB, LDRH, LDRSB, LDRSH, LDREX, PLD */
    CM_STORE,          /* one register: STR, STRB, STRH, STREX */
    CM_LOAD_DUAL,      /* LDRD */
    CM_STORE_DUAL,     /* STRD */
    CM_LOAD_MULTI,     /* LDM, POP */
    CM_STORE_MULTI,    /* STM, PUSH */
    CM_BRANCH,         /* B, B<cond>, BL, BX, BLX, CBZ, CBNZ, MOV/ADD to the PC */
    CM_TABLE_BRANCH,   /* TBB, TBH */
    CM_IT,
    CM_NOP,            /* NOP, YIELD, SEV */
    CM_BARRIER,        /* DMB, DSB, ISB, CLREX */
    CM_SYSTEM,         /* MRS, MSR, CPS, SVC, BKPT, WFI, WFE, UDF, other coprocessors */
    CM_FP_ALU,         /* VADD, VSUB, VMUL, VABS, VNEG, VCMP, VCVT, VMOV (FP registers) */
    CM_FP_MAC,         /* VMLA, VMLS, VNMLA, VNMLS, VFMA, VFMS, VFNMA, VFNMS */
    CM_FP_DIV,         /* VDIV, VSQRT */
    CM_FP_LOAD,        /* VLDR */
    CM_FP_STORE,       /* VSTR */
    CM_FP_LOAD_MULTI,  /* VLDM, VPOP */
    CM_FP_STORE_MULTI, /* VSTM, VPUSH */
    CM_FP_MOVE,        /* VMOV between core and FP registers, VMRS, VMSR */
    /* Armv8.1-M: Helium (MVE) and the low-overhead loops (cortex-m55 builds only) */
    CM_MVE_LOAD,       /* VLDRB/VLDRH/VLDRW contiguous (widening too), VLD2x, VLD4x */
    CM_MVE_STORE,      /* VSTRB/VSTRH/VSTRW contiguous (narrowing too), VST2x, VST4x */
    CM_MVE_GATHER,     /* gather loads and scatter stores: [Rn, Qm] and [Qm, #imm] */
    CM_MVE_ALU,        /* the integer pipe: add, subtract, shifts, saturation, logic,
                          min/max (VMAXV too), VABAV, widening/narrowing moves, VPSEL,
                          VIDUP, VMOV.I ... : every vector instruction not listed elsewhere */
    CM_MVE_MUL,        /* the multiply/FP pipe: VMUL, VMULH, VRMULH, VQDMULH, VQRDMULH,
                          VMULL, VMLA, VMLAS, VQDML*, VCMP, VPT, floating-point vectors */
    CM_MVE_MAC,        /* the multiply/FP pipe, across the vector into core registers:
                          VMLADAV, VMLAV, VMLALDAV, VRMLALDAVH, VADDV, VADDLV */
    CM_MVE_MOVE,       /* core <-> vector: VDUP, VMOV lane(s) */
    CM_MVE_PRED,       /* VPST, VPNOT, VCTP */
    CM_LOOP,           /* DLS, WLS, DLSTP, WLSTP, LCTP, LE, LETP */
    CM_MARK,           /* the benchmark's layer mark (mov r11, r11): no cycles */
    CM_UNKNOWN,        /* an encoding the decoder does not know: 1 cycle */
    CM_CLASSES
};

/* How a branch finds its target (the refill it needs when taken). */
enum cm_target {
    CM_TARGET_NONE,      /* not a branch */
    CM_TARGET_IMMEDIATE, /* B, B<cond>, CBZ, CBNZ: the target is in the instruction */
    CM_TARGET_CALL,      /* BL */
    CM_TARGET_REGISTER,  /* BX, BLX, MOV PC / ADD PC */
    CM_TARGET_LOAD,      /* POP {..., pc}, LDM with the PC, LDR PC */
    CM_TARGET_TABLE,     /* TBB, TBH */
    CM_TARGET_LOOP       /* LE, LETP: back to the start of a low-overhead loop */
};

enum {
    CM_WRITES_PC = 1,   /* a branch: ends QEMU's translation block */
    CM_REG_OFFSET = 2,  /* a load or store addressed by base + register */
    CM_PC_RELATIVE = 4, /* a literal load */
    CM_WIDE = 8,        /* a 32-bit encoding */
    CM_CONDITIONAL = 16 /* B<cond>, CBZ, CBNZ, or in an IT block (set by the caller): a
                           branch that may fall through; other branches are always taken */
};

struct cm_insn {
    uint8_t cls;       /* enum cm_class */
    uint8_t target;    /* enum cm_target */
    uint8_t flags;     /* CM_WRITES_PC, ... */
    uint8_t transfers; /* words moved by LDM/STM/PUSH/POP/VLDM/VSTM; for an IT, the
                          number of instructions it makes conditional */
    uint16_t reads;    /* core registers read, bit n = rn */
    uint16_t writes;   /* core registers written */
    uint16_t address;  /* registers that form a load/store address */
    uint16_t loaded;   /* registers a load writes with data from memory */
};

struct cm_model {
    enum cm_core core;
    int small_multiplier; /* Cortex-M0: the 32-cycle iterative multiplier */
};

/* Decodes one Thumb instruction (2 or 4 bytes, little-endian halfwords); `mark` is the
 * 16-bit encoding of the benchmark's layer mark. */
void cm_decode(const unsigned char *bytes, unsigned size, unsigned mark, struct cm_insn *out);

unsigned cm_base(const struct cm_model *model, const struct cm_insn *insn);
int cm_after(const struct cm_model *model, const struct cm_insn *previous,
             const struct cm_insn *insn);
unsigned cm_taken(const struct cm_model *model, const struct cm_insn *branch,
                  int target_wide_unaligned);
int cm_dual_issue(const struct cm_model *model, const struct cm_insn *first,
                  const struct cm_insn *second);

int cm_core_named(const char *name, enum cm_core *core);
const char *cm_class_name(unsigned cls);

#endif /* CYCLE_MODEL_H */

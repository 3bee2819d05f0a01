/* Cycle model of the Cortex-M cores: decoder and timing tables (see cycle_model.h).
 *
 * Zero wait states, every instruction and data access takes the cycles the tables say.
 * N is the number of registers a multiple load/store moves, P the pipeline refill of a
 * taken branch.
 *
 * Cortex-M0 (Cortex-M0 TRM, ARMv6-M): data processing 1; MULS 1, or 32 with the small
 * multiplier; every load and store 2; LDM/STM/PUSH/POP 1+N; a taken branch 3 (B, B<cond>,
 * BX, BLX, MOV/ADD PC), BL 4, POP with the PC 4+N; a branch not taken 1; MRS/MSR/DMB/DSB/
 * ISB 4. The cortex-m0 build has only ARMv6-M instructions (the tests check this); others
 * would cost what they cost on the Cortex-M3.
 *
 * Cortex-M3 and Cortex-M4 (their TRMs' instruction tables and "load/store timings"):
 * data processing, saturation, bit fields, extends 1; MUL 1; MLA/MLS 2 on the M3, 1 on
 * the M4; SMULL/UMULL 5 (the M3's worst case of 3-5) and SMLAL/UMLAL 7 (of 4-7) on the M3,
 * 1 on the M4, as are all the M4's DSP multiplies and MACs; SDIV/UDIV 12 (the worst case
 * of 2-12: early termination is not modelled); single loads 2; a single load or a store
 * with a register offset takes 1 when it directly follows a single load whose loaded
 * register is not in its address ("LDR [any] are pipelined"); a store with an immediate
 * offset 1 ("STR Rx,[Ry,#imm] is always one cycle"); nothing pipelines behind a store,
 * LDRD/STRD 3, LDM/STM/PUSH/POP 1+N and LDRD/STRD/LDM/STM never pipeline; IT 1, or 0
 * when it directly follows a 16-bit instruction that is not a branch (folding); a branch
 * not taken 1, taken 1+P with P = 1 when the target is in the instruction (B, B<cond>,
 * BL, CBZ, CBNZ) and 2 when it comes from a register or memory (BX, BLX, MOV/ADD PC,
 * POP/LDM/LDR with the PC), plus 1 when the target is a 32-bit instruction at an address
 * that is not a multiple of 4 (P is 1-3 in the TRM); POP with the PC 1+N+P; TBB/TBH 2+P;
 * MRS/MSR 2; DMB/DSB 1; ISB 1. FPv4 on the M4: VADD/VSUB/VMUL/VABS/VNEG/VCMP/VCVT/VMOV
 * 1, VMLA/VMLS/VFMA/VFMS and negated forms 3, VDIV/VSQRT 14, VLDR/VSTR 2, VLDM/VSTM/
 * VPUSH/VPOP 1+N (N words), VMOV/VMRS/VMSR to or from core registers 1.
 *
 * Cortex-M33 (an approximation: ARM publishes no instruction timing table for it; from its
 * published pipeline: address generation in the decode stage, branches resolved in
 * decode, single-cycle multiplier and MACs): as the Cortex-M4, except single loads and
 * stores 1 with one stall cycle when the next instruction reads a loaded register,
 * LDRD/STRD 2, VLDR/VSTR 1. Its limited dual issue is not modelled.
 *
 * Cortex-M7 (an approximation: ARM publishes no timing table; the rules follow the
 * public measurements of its dual issue): everything 1 (single loads and stores, LDRD/
 * STRD, multiplies and MACs, FP operations) except SDIV/UDIV 12, VDIV/VSQRT 14, LDM/STM
 * 1 + N/2 rounded up; one stall cycle when an instruction reads a register loaded by the
 * one before; a taken branch 1 more (target in the instruction; predicted) or 2 more
 * (from a register or memory); two consecutive instructions issue together (the second
 * costs nothing) when both are single-cycle ALU, multiply, load/store or NOP instructions
 * (the second may also be an immediate branch), at most one accesses memory, at most one
 * multiplies, neither is FP, the first is no branch, and the second neither reads nor
 * writes a register the first writes; pairs do not overlap and never span two QEMU
 * translation blocks.
 *
 * Cortex-M55 (an approximation: ARM publishes no instruction timing table for it. Sources:
 * the Armv8.1-M Architecture Reference Manual's beat-wise execution of Helium (MVE) and its
 * low-overhead-branch extension, and LLVM's scheduling model of the core, ARMScheduleM55.td:
 * "a lot like the M4/M33", four vector pipes, control, load/store, integer and
 * multiply/FP, where each 128-bit vector instruction takes two beats of 64 bits and the
 * first beat of an instruction overlaps the second beat of the one before when the two use
 * different pipes). Scalar code as the Cortex-M33. Helium: a vector load or store
 * (contiguous, widening, narrowing, interleaving, gather, scatter), a vector integer,
 * multiply or multiply-accumulate instruction (VMLADAV, VMLAV, VADDV... included), a
 * VMOV lane or VDUP 2 cycles; 1 less when the instruction just before it was such a vector
 * instruction of another pipe (load/store; integer, with VMOV and VDUP; multiply/FP, with
 * VCMP, VPT and the across-vector MACs): VLDR, VMLAVA, VLDR, VMLAVA ... costs 2, 1, 1, 1.
 * VPST, VPNOT, VCTP 1, and no overlap with them. Low-overhead loops: DLS, DLSTP, LCTP 1;
 * WLS, WLSTP 1, plus the refill of an immediate branch when they skip the loop; LE, LETP
 * 1 and no refill when they loop back (the core knows the loop's start since DLS/WLS).
 * Not modelled on the M55: its dual issue of 16-bit instructions, scalar instructions
 * overlapping vector beats, result latencies (a vector or multiply result used by the next
 * instruction, the across-vector MACs' 2-cycle latency into a core register), gather and
 * scatter taking longer than a contiguous access, the loop cache that lets the core skip
 * executing LE, and any wait state (`codegen bench` refuses --wait-states for it).
 *
 * Not modelled on any core: wait states (see bench_plugin.c for --wait-states), the stall
 * of a load/store whose address register the instruction just before it computed, the
 * extra cycle of a literal load contending with the fetch, unaligned accesses, divide and
 * M3 long-multiply early termination, bit-banding, write-buffer stalls, interrupts and
 * exceptions; an instruction skipped by IT costs what it costs when executed.
 */
#include "cycle_model.h"

#include <string.h>

#define BIT(r) ((uint16_t)(1u << (r)))
#define PC 15
#define LR 14
#define SP 13

static unsigned popcount16(unsigned v)
{
    unsigned n = 0;
    while (v != 0u) {
        n += v & 1u;
        v >>= 1;
    }
    return n;
}

static uint16_t reg_bit(unsigned r)
{
    return BIT(r & 15u);
}

static void set(struct cm_insn *d, enum cm_class cls, uint16_t reads, uint16_t writes)
{
    d->cls = (uint8_t)cls;
    d->reads = reads;
    d->writes = writes;
}

static void load(struct cm_insn *d, enum cm_class cls, uint16_t address, uint16_t loaded,
                 uint16_t writeback)
{
    set(d, cls, address, (uint16_t)(loaded | writeback));
    d->address = address;
    d->loaded = loaded;
    if (loaded & BIT(PC)) {
        d->flags |= CM_WRITES_PC;
        d->target = CM_TARGET_LOAD;
    }
    if (address & BIT(PC)) {
        d->flags |= CM_PC_RELATIVE;
    }
}

static void store(struct cm_insn *d, enum cm_class cls, uint16_t address, uint16_t data,
                  uint16_t writeback)
{
    set(d, cls, (uint16_t)(address | data), writeback);
    d->address = address;
}

static void branch(struct cm_insn *d, enum cm_target target, uint16_t reads, uint16_t writes)
{
    set(d, CM_BRANCH, reads, writes);
    d->flags |= CM_WRITES_PC;
    d->target = (uint8_t)target;
}

/* -- 16-bit encodings (ARMv7-M ARM A5.2) ---------------------------------------------- */

static void decode_misc16(unsigned hw, struct cm_insn *d)
{
    unsigned list = hw & 0xffu;
    if ((hw & 0xff00u) == 0xb000u) { /* ADD/SUB SP, SP, #imm */
        set(d, CM_ALU, BIT(SP), BIT(SP));
    } else if ((hw & 0xf500u) == 0xb100u) { /* CBZ, CBNZ */
        branch(d, CM_TARGET_IMMEDIATE, reg_bit(hw & 7u), 0);
        d->flags |= CM_CONDITIONAL;
    } else if ((hw & 0xff00u) == 0xb200u || (hw & 0xff00u) == 0xba00u) { /* extend, REV */
        set(d, CM_ALU, reg_bit((hw >> 3) & 7u), reg_bit(hw & 7u));
    } else if ((hw & 0xfe00u) == 0xb400u) { /* PUSH */
        uint16_t regs = (uint16_t)(list | ((hw & 0x100u) ? BIT(LR) : 0u));
        store(d, CM_STORE_MULTI, BIT(SP), regs, BIT(SP));
        d->transfers = (uint8_t)popcount16(regs);
    } else if ((hw & 0xfe00u) == 0xbc00u) { /* POP */
        uint16_t regs = (uint16_t)(list | ((hw & 0x100u) ? BIT(PC) : 0u));
        load(d, CM_LOAD_MULTI, BIT(SP), regs, BIT(SP));
        d->transfers = (uint8_t)popcount16(regs);
    } else if ((hw & 0xff00u) == 0xbf00u) { /* IT and hints */
        if (hw & 0xfu) {
            unsigned mask = hw & 0xfu, length = 4;
            while ((mask & 1u) == 0u) { /* the lowest set bit ends the mask */
                mask >>= 1;
                --length;
            }
            set(d, CM_IT, 0, 0);
            d->transfers = (uint8_t)length;
        } else if (hw == 0xbf20u || hw == 0xbf30u) { /* WFE, WFI */
            set(d, CM_SYSTEM, 0, 0);
        } else {
            set(d, CM_NOP, 0, 0);
        }
    } else { /* CPS, BKPT, unallocated */
        set(d, CM_SYSTEM, 0, 0);
    }
}

static void decode16(unsigned hw, struct cm_insn *d)
{
    unsigned lo = hw & 7u, mid = (hw >> 3) & 7u, rn = (hw >> 8) & 7u;
    if ((hw >> 11) == 3u) { /* ADD/SUB register or 3-bit immediate */
        set(d, CM_ALU, (uint16_t)(reg_bit(mid) | ((hw & 0x400u) ? 0u : reg_bit((hw >> 6) & 7u))),
            reg_bit(lo));
    } else if ((hw >> 13) == 0u) { /* shift by immediate, MOVS */
        set(d, CM_ALU, reg_bit(mid), reg_bit(lo));
    } else if ((hw >> 13) == 1u) { /* MOV/CMP/ADD/SUB #imm8 */
        unsigned op = (hw >> 11) & 3u;
        set(d, CM_ALU, op == 0u ? 0u : reg_bit(rn), op == 1u ? 0u : reg_bit(rn));
    } else if ((hw >> 10) == 0x10u) { /* data processing */
        unsigned op = (hw >> 6) & 0xfu;
        int compare = op == 0x8u || op == 0xau || op == 0xbu; /* TST, CMP, CMN */
        set(d, op == 0xdu ? CM_MUL : CM_ALU, (uint16_t)(reg_bit(mid) | reg_bit(lo)),
            compare ? 0u : reg_bit(lo));
    } else if ((hw >> 10) == 0x11u) { /* special data processing, BX, BLX */
        unsigned op = (hw >> 8) & 3u, rm = (hw >> 3) & 0xfu, rdn = ((hw >> 4) & 8u) | lo;
        if (op == 3u) {
            branch(d, CM_TARGET_REGISTER, reg_bit(rm), (hw & 0x80u) ? BIT(LR) : 0u);
        } else if (op == 1u) { /* CMP */
            set(d, CM_ALU, (uint16_t)(reg_bit(rm) | reg_bit(rdn)), 0);
        } else if (rdn == PC) { /* ADD PC, Rm / MOV PC, Rm */
            branch(d, CM_TARGET_REGISTER, (uint16_t)(reg_bit(rm) | BIT(PC)), BIT(PC));
        } else {
            set(d, CM_ALU, (uint16_t)(reg_bit(rm) | (op == 0u ? reg_bit(rdn) : 0u)),
                reg_bit(rdn));
        }
    } else if ((hw >> 11) == 9u) { /* LDR literal */
        load(d, CM_LOAD, BIT(PC), reg_bit(rn), 0);
    } else if ((hw >> 12) == 5u) { /* load/store register offset */
        uint16_t address = (uint16_t)(reg_bit(mid) | reg_bit((hw >> 6) & 7u));
        if (((hw >> 9) & 7u) < 3u) { /* STR, STRH, STRB */
            store(d, CM_STORE, address, reg_bit(lo), 0);
        } else {
            load(d, CM_LOAD, address, reg_bit(lo), 0);
        }
        d->flags |= CM_REG_OFFSET;
    } else if ((hw >> 13) == 3u || (hw >> 12) == 8u) { /* word/byte/halfword #imm5 */
        if (hw & 0x800u) {
            load(d, CM_LOAD, reg_bit(mid), reg_bit(lo), 0);
        } else {
            store(d, CM_STORE, reg_bit(mid), reg_bit(lo), 0);
        }
    } else if ((hw >> 12) == 9u) { /* SP-relative */
        if (hw & 0x800u) {
            load(d, CM_LOAD, BIT(SP), reg_bit(rn), 0);
        } else {
            store(d, CM_STORE, BIT(SP), reg_bit(rn), 0);
        }
    } else if ((hw >> 12) == 0xau) { /* ADR, ADD Rd, SP, #imm */
        set(d, CM_ALU, (hw & 0x800u) ? BIT(SP) : BIT(PC), reg_bit(rn));
    } else if ((hw >> 12) == 0xbu) {
        decode_misc16(hw, d);
    } else if ((hw >> 12) == 0xcu) { /* STM, LDM */
        uint16_t list = (uint16_t)(hw & 0xffu), base = reg_bit(rn);
        if (hw & 0x800u) {
            load(d, CM_LOAD_MULTI, base, list, (list & base) ? 0u : base);
        } else {
            store(d, CM_STORE_MULTI, base, list, base);
        }
        d->transfers = (uint8_t)popcount16(list);
    } else if ((hw >> 12) == 0xdu) { /* B<cond>, UDF, SVC */
        if (((hw >> 9) & 7u) == 7u) {
            set(d, CM_SYSTEM, 0, 0);
        } else {
            branch(d, CM_TARGET_IMMEDIATE, 0, 0);
            d->flags |= CM_CONDITIONAL;
        }
    } else if ((hw >> 11) == 0x1cu) { /* B */
        branch(d, CM_TARGET_IMMEDIATE, 0, 0);
    } else {
        set(d, CM_UNKNOWN, 0, 0);
    }
}

/* -- 32-bit encodings of Armv8.1-M: Helium (MVE) and low-overhead loops -------------- */

/* Vector data processing (hw1 111x 1111, or 111x 1110 outside coprocessors 10 and 11),
 * the first matching row wins: masks and values of both halfwords. The rows were worked
 * out from the encodings of every form of these instructions (all sizes, registers and
 * the vector-by-scalar forms; VADD, VSUB, VABS, VNEG, VCVT, VFMA... rows are their
 * floating-point forms) and checked against those of the integer-pipe instructions,
 * which match none: any vector data-processing instruction no row matches is CM_MVE_ALU.
 * VCMP and VPT sit on the multiply/FP pipe (they compare there). */
static const struct mve_row {
    uint16_t mask1, mask2, value1, value2;
    uint8_t cls;
} MVE_ROWS[] = {
    {0xffbfu, 0x1fffu, 0xfe31u, 0x0f4du, CM_MVE_PRED}, /* VPNOT, VPST */
    {0xffffu, 0x1ff1u, 0xffb6u, 0x0440u, CM_MVE_MUL}, /* VRINTN */
    {0xfff1u, 0xfff0u, 0xfe31u, 0x0f40u, CM_MVE_MUL}, /* VCMP */
    {0xfff1u, 0xfff0u, 0xfe71u, 0x0f40u, CM_MVE_MUL}, /* VPT */
    {0xfff1u, 0xfff0u, 0xfe71u, 0x8f40u, CM_MVE_MUL}, /* VPT */
    {0xfff1u, 0xfff0u, 0xfe31u, 0x4f40u, CM_MVE_MUL}, /* VPT */
    {0xfff1u, 0x1e71u, 0xffb1u, 0x0640u, CM_MVE_MUL}, /* VABS, VCVT, VNEG */
    {0xeff1u, 0x0ff1u, 0xee30u, 0x0f01u, CM_MVE_MUL}, /* VQDMULLB, VQDMULLT */
    {0xeff1u, 0x0f71u, 0xeee0u, 0x0f00u, CM_MVE_ALU}, /* VMAXAV, VMAXV, VMINV */
    {0xff81u, 0x1ff1u, 0xee80u, 0x0f00u, CM_MVE_MAC}, /* VRMLALDAVH */
    {0xff81u, 0x1ff1u, 0xfe80u, 0x0f00u, CM_MVE_MAC}, /* VRMLALDAVH */
    {0xff81u, 0x1ff1u, 0xee80u, 0x1f00u, CM_MVE_MAC}, /* VRMLALDAVHX */
    {0xef81u, 0x1ff1u, 0xee80u, 0x0f20u, CM_MVE_MAC}, /* VRMLALDAVHA */
    {0xeff1u, 0x0fd0u, 0xee30u, 0x0f40u, CM_MVE_MUL}, /* VADD, VQDMULLB, VQDMULLT, VSUB */
    {0xffb1u, 0x0ef0u, 0xee31u, 0x0e40u, CM_MVE_MUL}, /* VCMP, VFMA, VFMAS, VPT */
    {0xffe0u, 0x0ff0u, 0xfe00u, 0x0e00u, CM_MVE_MUL}, /* VMULH, VQDMLSDH, VQDMLSDHX,
          VQRDMLSDH, VQRDMLSDHX, VRMULH */
    {0xeff1u, 0x0ed0u, 0xeef0u, 0x0e00u, CM_MVE_MAC}, /* VMLADAV, VMLADAVA, VMLADAVAX,
          VMLADAVX, VMLAV, VMLAVA, VMLSDAV, VMLSDAVA, VMLSDAVAX, VMLSDAVX */
    {0xefb1u, 0x3f10u, 0xee31u, 0x1f00u, CM_MVE_MUL}, /* VCMP, VPT */
    {0xefc0u, 0x1ff0u, 0xee00u, 0x0e60u, CM_MVE_MUL}, /* VMUL, VQDMLAH, VQDMULH, VQRDMULH */
    {0xefc1u, 0x1de1u, 0xef00u, 0x0940u, CM_MVE_MUL}, /* VMUL, VQDMULH, VQRDMULH */
    {0xefc1u, 0x1ce1u, 0xef00u, 0x0c40u, CM_MVE_MUL}, /* VABD, VADD, VFMA, VFMS, VMAXNM,
          VMINNM, VMUL, VSUB */
    {0xef81u, 0x2fb0u, 0xee01u, 0x0f80u, CM_MVE_MUL}, /* VCMP, VPT */
    {0xffa1u, 0x2f10u, 0xfe01u, 0x0f00u, CM_MVE_MUL}, /* VCMP, VPT */
    {0xefc0u, 0x0ff0u, 0xee00u, 0x0e40u, CM_MVE_MUL}, /* VFMA, VFMAS, VMLA, VMLAS, VQRDMLAH,
          VQRDMLASH */
    {0xffe0u, 0x0f90u, 0xee00u, 0x0e00u, CM_MVE_MUL}, /* VMUL, VMULH, VQDMLADH, VQDMLADHX,
          VQDMLASH, VQRDMLADH, VQRDMLADHX, VRMULH */
    {0xeff0u, 0x0f90u, 0xee20u, 0x0e00u, CM_MVE_MUL}, /* VMUL, VMULH, VQDMLADH, VQDMLADHX,
          VQDMLASH, VQDMLSDH, VQDMLSDHX, VQRDMLADH, VQRDMLADHX, VQRDMLSDH, VQRDMLSDHX,
          VRMULH */
    {0xef81u, 0x0fd0u, 0xee80u, 0x0e00u, CM_MVE_MAC}, /* VMLALDAV, VMLALDAVA, VMLALDAVX,
          VMLALV, VMLALVA, VMLSLDAV, VMLSLDAVA, VRMLSLDAVH, VRMLSLDAVHA */
    {0xef81u, 0x0e71u, 0xee01u, 0x0e00u, CM_MVE_MUL}, /* VCMP, VMULLB, VMULLT, VPT */
    {0xffb1u, 0x0e10u, 0xfe21u, 0x0e00u, CM_MVE_MUL}, /* VCMP, VMLA, VMLAS, VMULH, VPT,
          VQRDMULH, VRMULH */
    {0xee7au, 0x05b0u, 0xee3au, 0x0400u, CM_MVE_MUL}, /* VCVTB, VCVTT, VRINTN */
    {0xef81u, 0x0ed0u, 0xee81u, 0x0e00u, CM_MVE_MAC}, /* VADDLV, VADDLVA, VADDV, VADDVA,
          VMLADAV, VMLADAVA, VMLADAVAX, VMLADAVX, VMLALDAV, VMLALDAVA, VMLALDAVX, VMLALV,
          VMLALVA, VMLAV, VMLAVA, VMLSDAV, VMLSDAVA, VMLSDAVAX, VMLSDAVX, VMLSLDAV,
          VMLSLDAVA */
};

static void decode_mve_data(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    size_t i;
    for (i = 0; i < sizeof MVE_ROWS / sizeof MVE_ROWS[0]; ++i) {
        const struct mve_row *row = &MVE_ROWS[i];
        if ((hw1 & row->mask1) == row->value1 && (hw2 & row->mask2) == row->value2) {
            set(d, (enum cm_class)row->cls, 0, 0);
            return;
        }
    }
    set(d, CM_MVE_ALU, 0, 0);
}

/* Vector loads and stores (hw1 111x 110x outside coprocessors 10 and 11): P is hw1 bit 8,
 * W bit 5, L bit 4. */
static void decode_mve_memory(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    unsigned pre = (hw1 >> 8) & 1u, writeback = (hw1 >> 5) & 1u, is_load = (hw1 >> 4) & 1u;
    uint16_t rn = reg_bit(hw1), back = writeback ? reg_bit(hw1) : 0u;
    enum cm_class cls = is_load ? CM_MVE_LOAD : CM_MVE_STORE;
    if (!pre && !writeback && !(hw1 & 0x80u)) { /* VMOV two lanes <-> two core registers */
        uint16_t core = (uint16_t)(reg_bit(hw2) | reg_bit(hw1));
        set(d, CM_MVE_MOVE, is_load ? core : 0u, is_load ? 0u : core);
        return;
    }
    if (!pre && (hw1 & 0x1000u) && (hw2 & 0x1e00u) == 0x1e00u) {
        /* VLD2x, VLD4x, VST2x, VST4x: contiguous */
    } else if ((!pre && !writeback) || ((hw1 & 0x1000u) && (hw2 & 0x1000u))) {
        cls = CM_MVE_GATHER; /* [Rn, Qm] or [Qm, #imm]: Rn is a Q register in the latter */
        if (pre) {
            rn = 0;
            back = 0;
        }
    }
    if (is_load) {
        load(d, cls, rn, 0, back);
    } else {
        store(d, cls, rn, 0, back);
    }
}

/* The low-overhead loops and VCTP (hw1 1111 0xxx, hw2 11x0 xxxx xxxx xxx1: what
 * Armv7-M left to BLX immediate), and the branch future hints. */
static void decode_loop(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    uint16_t rn = reg_bit(hw1);
    if ((hw1 & 0xffcfu) == 0xf00fu && (hw2 & 0x2000u) == 0u) { /* LE, LETP */
        branch(d, CM_TARGET_LOOP, BIT(LR), (hw1 & 0x20u) ? 0u : BIT(LR));
        d->cls = CM_LOOP;
        d->flags |= CM_CONDITIONAL;
    } else if (hw2 == 0xe801u && (hw1 & 0xffc0u) == 0xf000u) { /* VCTP */
        set(d, CM_MVE_PRED, rn, 0);
    } else if (hw2 == 0xe001u && ((hw1 & 0xffc0u) == 0xf000u || (hw1 & 0xfff0u) == 0xf040u)) {
        set(d, CM_LOOP, (hw1 & 0xfu) == 0xfu ? 0u : rn, BIT(LR)); /* DLSTP, LCTP, DLS */
    } else if ((hw2 & 0x2000u) == 0u &&
               ((hw1 & 0xffc0u) == 0xf000u || (hw1 & 0xfff0u) == 0xf040u)) {
        branch(d, CM_TARGET_IMMEDIATE, rn, BIT(LR)); /* WLSTP, WLS */
        d->cls = CM_LOOP;
        d->flags |= CM_CONDITIONAL;
    } else { /* BF, BFX, BFL, BFLX, BFCSEL: hints */
        set(d, CM_NOP, 0, 0);
    }
}

/* -- 32-bit encodings (ARMv7-M ARM A5.3, FP: A6) ------------------------------------- */

static void decode_fp(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    unsigned rn = hw1 & 0xfu, rt = hw2 >> 12;
    int coprocessor_10_11 = (hw2 & 0x0e00u) == 0x0a00u;
    if ((hw1 & 0x0f00u) == 0x0f00u || ((hw1 & 0x0f00u) == 0x0e00u && !coprocessor_10_11)) {
        decode_mve_data(hw1, hw2, d);
    } else if ((hw1 & 0x0e00u) == 0x0c00u && !coprocessor_10_11) {
        decode_mve_memory(hw1, hw2, d);
    } else if (!coprocessor_10_11) {
        set(d, CM_SYSTEM, 0, 0);
    } else if ((hw1 & 0xff00u) == 0xee00u && (hw2 & 0x0f10u) == 0x0b10u) {
        /* VMOV lane <-> core register (VMOV scalar of Armv7-M's FP too), VDUP */
        int to_core = (hw1 >> 4) & 1u;
        set(d, CM_MVE_MOVE, to_core ? 0u : reg_bit(rt), to_core ? reg_bit(rt) : 0u);
    } else if ((hw1 & 0x0e00u) == 0x0c00u) { /* extension register load/store */
        unsigned pre = (hw1 >> 8) & 1u, writeback = (hw1 >> 5) & 1u, is_load = (hw1 >> 4) & 1u;
        if ((hw1 & 0x01e0u) == 0x0040u) { /* VMOV two core registers <-> D or two S */
            uint16_t core = (uint16_t)(reg_bit(rt) | reg_bit(hw1 & 0xfu));
            set(d, CM_FP_MOVE, is_load ? 0u : core, is_load ? core : 0u);
        } else if (pre && !writeback) { /* VLDR, VSTR */
            if (is_load) {
                load(d, CM_FP_LOAD, reg_bit(rn), 0, 0);
            } else {
                store(d, CM_FP_STORE, reg_bit(rn), 0, 0);
            }
        } else { /* VLDM, VSTM, VPUSH, VPOP */
            uint16_t back = writeback ? reg_bit(rn) : 0u;
            if (is_load) {
                load(d, CM_FP_LOAD_MULTI, reg_bit(rn), 0, back);
            } else {
                store(d, CM_FP_STORE_MULTI, reg_bit(rn), 0, back);
            }
            d->transfers = (uint8_t)(hw2 & 0xffu);
        }
    } else if ((hw1 & 0x0f00u) == 0x0e00u && (hw2 & 0x10u)) { /* core <-> FP, VMRS, VMSR */
        int to_core = (hw1 >> 4) & 1u;
        set(d, CM_FP_MOVE, to_core ? 0u : reg_bit(rt), (to_core && rt != PC) ? reg_bit(rt) : 0u);
    } else if ((hw1 & 0x0f00u) == 0x0e00u) { /* FP data processing */
        unsigned opc1 = ((hw1 >> 5) & 4u) | ((hw1 >> 4) & 3u); /* bits 23, 21, 20 */
        unsigned opc2 = hw1 & 0xfu, opc3 = (hw2 >> 6) & 3u;
        enum cm_class cls = CM_FP_ALU;
        if (opc1 == 0u || opc1 == 1u || opc1 == 5u || opc1 == 6u) {
            cls = CM_FP_MAC;
        } else if (opc1 == 4u || (opc1 == 7u && opc2 == 1u && opc3 == 3u)) {
            cls = CM_FP_DIV; /* VDIV, VSQRT */
        }
        set(d, cls, 0, 0);
    } else {
        set(d, CM_SYSTEM, 0, 0);
    }
}

static void decode_dual_exclusive(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    unsigned op1 = (hw1 >> 7) & 3u, op2 = (hw1 >> 4) & 3u, op3 = (hw2 >> 4) & 0xfu;
    uint16_t rn = reg_bit(hw1), rt = reg_bit(hw2 >> 12), rt2 = reg_bit(hw2 >> 8);
    uint16_t back = (hw1 & 0x20u) ? rn : 0u;
    if (op1 == 0u && op2 == 0u) { /* STREX: pipelines as a load does */
        store(d, CM_STORE, rn, rt, rt2);
        d->flags |= CM_REG_OFFSET;
    } else if (op1 == 0u && op2 == 1u) { /* LDREX */
        load(d, CM_LOAD, rn, rt, 0);
    } else if (((op1 & 2u) == 0u && op2 == 2u) || ((op1 & 2u) && (op2 & 1u) == 0u)) {
        store(d, CM_STORE_DUAL, rn, (uint16_t)(rt | rt2), back);
        d->transfers = 2;
    } else if (((op1 & 2u) == 0u && op2 == 3u) || ((op1 & 2u) && (op2 & 1u))) {
        load(d, CM_LOAD_DUAL, rn, (uint16_t)(rt | rt2), back);
        d->transfers = 2;
    } else if (op1 == 1u && op2 == 0u) { /* STREXB, STREXH */
        store(d, CM_STORE, rn, rt, reg_bit(hw2));
        d->flags |= CM_REG_OFFSET;
    } else if (op1 == 1u && op2 == 1u && op3 <= 1u) { /* TBB, TBH */
        set(d, CM_TABLE_BRANCH, (uint16_t)(rn | reg_bit(hw2)), BIT(PC));
        d->address = (uint16_t)(rn | reg_bit(hw2));
        d->flags |= CM_WRITES_PC;
        d->target = CM_TARGET_TABLE;
    } else { /* LDREXB, LDREXH */
        load(d, CM_LOAD, rn, rt, 0);
    }
}

static void decode_branch_misc(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    unsigned op1 = (hw2 >> 12) & 5u, op = (hw1 >> 4) & 0x7fu;
    if (op1 == 4u && (hw2 & 1u)) { /* Armv8.1-M, in what would be BLX immediate */
        decode_loop(hw1, hw2, d);
    } else if (op1 == 5u || op1 == 4u) { /* BL (BLX immediate does not exist on M profile) */
        branch(d, CM_TARGET_CALL, 0, BIT(LR));
    } else if (op1 == 1u) { /* B.W */
        branch(d, CM_TARGET_IMMEDIATE, 0, 0);
    } else if (((hw1 >> 7) & 7u) != 7u) { /* B<cond>.W */
        branch(d, CM_TARGET_IMMEDIATE, 0, 0);
        d->flags |= CM_CONDITIONAL;
    } else if (op == 0x3au && (hw2 & 0xffu) == 0u) { /* NOP.W */
        set(d, CM_NOP, 0, 0);
    } else if (op == 0x3bu) { /* CLREX, DSB, DMB, ISB */
        set(d, CM_BARRIER, 0, 0);
    } else if ((op & 0x7eu) == 0x3eu) { /* MRS */
        set(d, CM_SYSTEM, 0, reg_bit(hw2 >> 8));
    } else if ((op & 0x7eu) == 0x38u) { /* MSR */
        set(d, CM_SYSTEM, reg_bit(hw1), 0);
    } else {
        set(d, CM_SYSTEM, 0, 0);
    }
}

static void decode_load_store_single(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    unsigned rn = hw1 & 0xfu, rt = hw2 >> 12, size = (hw1 >> 5) & 3u;
    int is_load = (hw1 >> 4) & 1u, register_offset = 0;
    uint16_t address = reg_bit(rn), back = 0;
    if (rn != PC && !(hw1 & 0x80u)) { /* not literal, not imm12 */
        if (((hw2 >> 6) & 0x3fu) == 0u) {
            register_offset = 1;
            address = (uint16_t)(address | reg_bit(hw2));
        } else if (hw2 & 0x100u) { /* imm8 with writeback */
            back = reg_bit(rn);
        }
    }
    if (!is_load) {
        store(d, CM_STORE, address, reg_bit(rt), back);
    } else if (rt == PC && size != 2u) { /* PLD, PLI: a load with no result */
        load(d, CM_LOAD, address, 0, back);
    } else {
        load(d, CM_LOAD, address, reg_bit(rt), back);
    }
    if (register_offset) {
        d->flags |= CM_REG_OFFSET;
    }
}

static void decode_multiply(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    unsigned op1 = (hw1 >> 4) & 7u, op2 = (hw2 >> 4) & 3u, ra = hw2 >> 12;
    uint16_t sources = (uint16_t)(reg_bit(hw1) | reg_bit(hw2) | (ra != PC ? reg_bit(ra) : 0u));
    enum cm_class cls = CM_DSP_MUL;
    if (op1 == 0u) {
        cls = (op2 == 0u && ra == PC) ? CM_MUL : CM_MLA;
    }
    set(d, cls, sources, reg_bit(hw2 >> 8));
}

static void decode_long_multiply(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    unsigned op1 = (hw1 >> 4) & 7u;
    uint16_t sources = (uint16_t)(reg_bit(hw1) | reg_bit(hw2));
    uint16_t result = (uint16_t)(reg_bit(hw2 >> 12) | reg_bit(hw2 >> 8));
    if (op1 == 1u || op1 == 3u) {
        set(d, CM_DIV, sources, reg_bit(hw2 >> 8));
    } else if (op1 == 0u || op1 == 2u) {
        set(d, CM_MUL_LONG, sources, result);
    } else {
        set(d, CM_MAC_LONG, (uint16_t)(sources | result), result);
    }
}

static void decode32(unsigned hw1, unsigned hw2, struct cm_insn *d)
{
    unsigned op1 = (hw1 >> 11) & 3u, op2 = (hw1 >> 4) & 0x7fu;
    unsigned rn = hw1 & 0xfu, rd = (hw2 >> 8) & 0xfu;
    uint16_t source = rn != PC ? reg_bit(rn) : 0u;
    if (op1 == 1u) {
        if ((op2 & 0x64u) == 0x00u) { /* LDM, STM, PUSH.W, POP.W */
            uint16_t list = (uint16_t)hw2, back = (hw1 & 0x20u) ? reg_bit(rn) : 0u;
            if (hw1 & 0x10u) {
                load(d, CM_LOAD_MULTI, reg_bit(rn), list, back);
            } else {
                store(d, CM_STORE_MULTI, reg_bit(rn), list, back);
            }
            d->transfers = (uint8_t)popcount16(list);
        } else if ((op2 & 0x64u) == 0x04u) {
            decode_dual_exclusive(hw1, hw2, d);
        } else if ((op2 & 0x60u) == 0x20u) { /* data processing, shifted register */
            int compare = rd == PC && (hw1 & 0x10u);
            set(d, CM_ALU, (uint16_t)(source | reg_bit(hw2)), compare ? 0u : reg_bit(rd));
        } else {
            decode_fp(hw1, hw2, d);
        }
    } else if (op1 == 2u) {
        if (hw2 & 0x8000u) {
            decode_branch_misc(hw1, hw2, d);
        } else if ((hw1 & 0x03f0u) == 0x0240u) { /* MOVW: hw1 holds immediate bits */
            set(d, CM_ALU, 0, reg_bit(rd));
        } else if ((hw1 & 0x03f0u) == 0x02c0u) { /* MOVT */
            set(d, CM_ALU, reg_bit(rd), reg_bit(rd));
        } else { /* data processing, immediate */
            int compare = rd == PC;
            set(d, CM_ALU, rn == PC ? BIT(PC) : source, compare ? 0u : reg_bit(rd));
        }
    } else if ((op2 & 0x71u) == 0x00u || (op2 & 0x67u) == 0x01u || (op2 & 0x67u) == 0x03u ||
               (op2 & 0x67u) == 0x05u) {
        decode_load_store_single(hw1, hw2, d);
    } else if ((op2 & 0x70u) == 0x20u) { /* data processing, register */
        set(d, CM_ALU, (uint16_t)(source | reg_bit(hw2)), reg_bit(rd));
    } else if ((op2 & 0x78u) == 0x30u) {
        decode_multiply(hw1, hw2, d);
    } else if ((op2 & 0x78u) == 0x38u) {
        decode_long_multiply(hw1, hw2, d);
    } else if (op2 & 0x40u) {
        decode_fp(hw1, hw2, d);
    } else {
        set(d, CM_UNKNOWN, 0, 0);
    }
}

void cm_decode(const unsigned char *bytes, unsigned size, unsigned mark, struct cm_insn *out)
{
    unsigned hw1 = bytes[0] | (unsigned)bytes[1] << 8;
    memset(out, 0, sizeof *out);
    if (size == 2u) {
        if (hw1 == mark) {
            out->cls = CM_MARK;
        } else {
            decode16(hw1, out);
        }
    } else {
        decode32(hw1, bytes[2] | (unsigned)bytes[3] << 8, out);
        out->flags |= CM_WIDE;
    }
}

/* -- timings -------------------------------------------------------------------------- */

/* Cycles by class; the multiple transfers add N (see cm_base). The Armv8.1-M classes
 * (MVE ... LOOP) occur in cortex-m55 builds only, save the VMOV between a core register
 * and a D register lane (Armv7-M FP), which costs what CM_FP_MOVE costs. */
static const uint8_t BASE[CM_CORES][CM_CLASSES] = {
    /*          ALU MUL MLA DSP ML  MAL DIV LD  ST  LDD STD LDM STM BR  TB  IT  NOP BAR SYS
                FPA FPM FPD FPL FPS FLM FSM FMV VLD VST VGA VAL VMU VMA VMV VPR LOP MRK UNK */
    [CM_M0] =  {1,  1,  2,  1,  5,  7,  12, 2,  2,  3,  3,  1,  1,  1,  2,  1,  1,  4,  4,
                1,  1,  1,  2,  2,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  1},
    [CM_M3] =  {1,  1,  2,  1,  5,  7,  12, 2,  1,  3,  3,  1,  1,  1,  2,  1,  1,  1,  2,
                1,  1,  1,  2,  2,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  1},
    [CM_M4] =  {1,  1,  1,  1,  1,  1,  12, 2,  1,  3,  3,  1,  1,  1,  2,  1,  1,  1,  2,
                1,  3,  14, 2,  2,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  1},
    [CM_M7] =  {1,  1,  1,  1,  1,  1,  12, 1,  1,  1,  1,  1,  1,  1,  2,  1,  1,  1,  2,
                1,  1,  14, 1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  1},
    [CM_M33] = {1,  1,  1,  1,  1,  1,  12, 1,  1,  2,  2,  1,  1,  1,  2,  1,  1,  1,  2,
                1,  3,  14, 1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  1},
    [CM_M55] = {1,  1,  1,  1,  1,  1,  12, 1,  1,  2,  2,  1,  1,  1,  2,  1,  1,  1,  2,
                1,  3,  14, 1,  1,  1,  1,  1,  2,  2,  2,  2,  2,  2,  2,  1,  1,  0,  1},
};

static int is_multiple(unsigned cls)
{
    return cls == CM_LOAD_MULTI || cls == CM_STORE_MULTI || cls == CM_FP_LOAD_MULTI ||
           cls == CM_FP_STORE_MULTI;
}

unsigned cm_base(const struct cm_model *model, const struct cm_insn *insn)
{
    unsigned cycles = BASE[model->core][insn->cls];
    if (model->core == CM_M0 && insn->cls == CM_MUL && model->small_multiplier) {
        cycles = 32;
    }
    if ((model->core == CM_M3 || model->core == CM_M4) && insn->cls == CM_STORE &&
        (insn->flags & CM_REG_OFFSET)) {
        cycles = 2; /* only a store with an immediate offset is always one cycle */
    }
    if (is_multiple(insn->cls)) {
        cycles += model->core == CM_M7 ? (insn->transfers + 1u) / 2u : insn->transfers;
    }
    return cycles;
}

static int folds_it(const struct cm_insn *previous, const struct cm_insn *insn)
{
    return insn->cls == CM_IT && !(previous->flags & (CM_WIDE | CM_WRITES_PC)) &&
           previous->cls != CM_MARK;
}

/* The Cortex-M55 vector pipe a beat-wise Helium instruction occupies (0: none). */
static int vector_pipe(unsigned cls)
{
    switch (cls) {
    case CM_MVE_LOAD:
    case CM_MVE_STORE:
    case CM_MVE_GATHER:
        return 1; /* load/store */
    case CM_MVE_ALU:
    case CM_MVE_MOVE:
        return 2; /* integer */
    case CM_MVE_MUL:
    case CM_MVE_MAC:
        return 3; /* multiply/FP */
    default:
        return 0;
    }
}

/* The Cortex-M33's adjustment (the M55's for scalar code): a load-use stall, IT folding. */
static int m33_after(const struct cm_insn *previous, const struct cm_insn *insn)
{
    if ((previous->cls == CM_LOAD || previous->cls == CM_LOAD_DUAL) &&
        (previous->loaded & insn->reads)) {
        return 1; /* load-use stall */
    }
    return folds_it(previous, insn) ? -1 : 0;
}

int cm_after(const struct cm_model *model, const struct cm_insn *previous,
             const struct cm_insn *insn)
{
    switch (model->core) {
    case CM_M3:
    case CM_M4:
        if (previous->cls == CM_LOAD && !(previous->flags & CM_WRITES_PC) &&
            !(insn->flags & CM_WRITES_PC) &&
            (insn->cls == CM_LOAD || (insn->cls == CM_STORE && (insn->flags & CM_REG_OFFSET))) &&
            !(previous->loaded & insn->address)) {
            return -1; /* pipelined behind the load */
        }
        return folds_it(previous, insn) ? -1 : 0;
    case CM_M33:
        return m33_after(previous, insn);
    case CM_M55:
        if (vector_pipe(previous->cls) != 0 && vector_pipe(insn->cls) != 0 &&
            vector_pipe(previous->cls) != vector_pipe(insn->cls)) {
            return -1; /* its first beats overlap the previous one's last beats */
        }
        return m33_after(previous, insn);
    case CM_M7:
        if ((previous->cls == CM_LOAD || previous->cls == CM_LOAD_DUAL) &&
            (previous->loaded & insn->reads)) {
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

unsigned cm_taken(const struct cm_model *model, const struct cm_insn *branch_insn,
                  int target_wide_unaligned)
{
    int immediate = branch_insn->target == CM_TARGET_IMMEDIATE ||
                    branch_insn->target == CM_TARGET_CALL;
    switch (model->core) {
    case CM_M0:
        return (branch_insn->target == CM_TARGET_CALL || branch_insn->target == CM_TARGET_LOAD)
                   ? 3u : 2u;
    case CM_M7:
        return immediate ? 1u : 2u;
    default: /* LE/LETP (Cortex-M55): the loop start is known since DLS/WLS */
        if (branch_insn->target == CM_TARGET_LOOP) {
            return 0;
        }
        return (immediate ? 1u : 2u) + (target_wide_unaligned ? 1u : 0u);
    }
}

static int pairable(const struct cm_insn *insn)
{
    switch (insn->cls) {
    case CM_ALU:
    case CM_MUL:
    case CM_MLA:
    case CM_DSP_MUL:
    case CM_MUL_LONG:
    case CM_MAC_LONG:
    case CM_LOAD:
    case CM_STORE:
    case CM_NOP:
    case CM_BRANCH:
        return 1;
    default:
        return 0;
    }
}

static int accesses_memory(const struct cm_insn *insn)
{
    return insn->cls == CM_LOAD || insn->cls == CM_STORE;
}

static int multiplies(const struct cm_insn *insn)
{
    return insn->cls >= CM_MUL && insn->cls <= CM_MAC_LONG;
}

int cm_dual_issue(const struct cm_model *model, const struct cm_insn *first,
                  const struct cm_insn *second)
{
    if (model->core != CM_M7 || !pairable(first) || !pairable(second)) {
        return 0;
    }
    if ((first->flags & CM_WRITES_PC) ||
        (second->cls == CM_BRANCH && second->target != CM_TARGET_IMMEDIATE)) {
        return 0;
    }
    if ((accesses_memory(first) && accesses_memory(second)) ||
        (multiplies(first) && multiplies(second))) {
        return 0;
    }
    return (first->writes & (second->reads | second->writes)) == 0u;
}

int cm_core_named(const char *name, enum cm_core *core)
{
    static const char *const names[CM_CORES] = {
        [CM_M0] = "cortex-m0", [CM_M3] = "cortex-m3", [CM_M4] = "cortex-m4",
        [CM_M7] = "cortex-m7", [CM_M33] = "cortex-m33", [CM_M55] = "cortex-m55",
    };
    unsigned i;
    for (i = 0; i < CM_CORES; ++i) {
        if (strcmp(name, names[i]) == 0) {
            *core = (enum cm_core)i;
            return 1;
        }
    }
    return 0;
}

const char *cm_class_name(unsigned cls)
{
    static const char *const names[CM_CLASSES] = {
        "alu", "mul", "mla", "dsp_mul", "mul_long", "mac_long", "div", "load", "store",
        "load_dual", "store_dual", "load_multi", "store_multi", "branch", "table_branch", "it",
        "nop", "barrier", "system", "fp_alu", "fp_mac", "fp_div", "fp_load", "fp_store",
        "fp_load_multi", "fp_store_multi", "fp_move", "mve_load", "mve_store", "mve_gather",
        "mve_alu", "mve_mul", "mve_mac", "mve_move", "mve_pred", "loop", "mark", "unknown",
    };
    return cls < CM_CLASSES ? names[cls] : "unknown";
}

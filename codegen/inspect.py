"""`codegen inspect`: what a model viewer shows, plus what the generator derives."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from codegen.errors import CodegenError, UnsupportedError
from codegen.fuse import fold_float_negations
from codegen.model.ir import Graph, Operator, Tensor
from codegen.model.tflite import load_model
from codegen.ops import prepare_layer
from codegen.plan import Buffer, Plan, plan_memory
from codegen.terminal import one_line, shown

if TYPE_CHECKING:
    from codegen.program import Program


def _tensor_line(role: str, t: Tensor) -> str:
    kind = "const " if t.is_constant else ""
    name = t.name if len(t.name) <= 60 else t.name[:57] + "..."
    line = f"    {role:<11} {kind}{t.describe()}  '{shown(name)}'"
    if t.quant is not None and t.quant.per_channel:
        scales = ", ".join(f"{s:.4g}" for s in t.quant.scales[:3])
        more = ", ..." if len(t.quant.scales) > 3 else ""
        line += f"\n{'':16}scales [{scales}{more}]"
    return line


def _operator_block(op: Operator, graph: Graph) -> tuple[str, object | None]:
    try:
        layer = prepare_layer(op, graph)
        status, error = "", None
    except UnsupportedError as exc:
        layer, status, error = None, "  ** UNSUPPORTED **", exc
    lines = [f"[{op.index}] {shown(op.opcode)}{status}"]
    activation = op.options.get("fused_activation_function")
    if activation is not None:
        lines.append(f"    {'fused':<11} {activation}")
    roles = ("input", "weights", "bias") if op.opcode == "FULLY_CONNECTED" else ()
    for pos, t in enumerate(op.inputs):
        if t >= 0:
            role = roles[pos] if pos < len(roles) else f"input{pos}"
            lines.append(_tensor_line(role, graph.tensors[t]))
    for t in op.outputs:
        lines.append(_tensor_line("output", graph.tensors[t]))
    if layer is not None:
        for label, value in layer.describe():
            lines.append(f"    {label:<11} {value}")
        if layer.macs():
            lines.append(f"    {'MACs':<11} {layer.macs()}")
    else:
        lines.append(f"    {'reason':<11} {one_line(str(error))}")
    return "\n".join(lines), layer


def _state(path: Path) -> tuple[Plan, int] | None:
    """For a model that keeps state: its memory plan (the state outside the arena) and the
    state block's bytes; None for any other model, or one generation refuses."""
    from codegen.program import load_program

    try:
        program = load_program(path)
    except CodegenError:
        return None
    return (program.plan, program.state.size) if program.state is not None else None


def inspect_model(path: Path) -> str:
    graph = fold_float_negations(load_model(path))  # as generation sees it
    blocks, layers = [], []
    for op in graph.operators:
        text, layer = _operator_block(op, graph)
        blocks.append(text)
        layers.append(layer)
    ins = ", ".join(graph.tensors[i].describe() for i in graph.inputs)
    outs = ", ".join(graph.tensors[i].describe() for i in graph.outputs)
    header = [f"{shown(path.name)}: {len(graph.operators)} operators", f"  inputs:  {ins}",
              f"  outputs: {outs}"]
    if all(layer is not None for layer in layers):
        plan = plan_memory(graph, layers)  # type: ignore[arg-type]
        state = _state(path)
        if state is not None:  # variable tensors live in the state block, not the arena
            plan, size = state
            header.append(f"  state:   {size} bytes kept between invokes (NAME_STATE_SIZE)")
        header.append(f"  arena:   {plan.size} bytes (lower bound {plan.lower_bound})")
    else:
        unsupported = sum(layer is None for layer in layers)
        header.append(f"  {unsupported} operator(s) cannot be generated (marked below)")
    return "\n".join(header) + "\n\n" + "\n\n".join(blocks)


_SPANS = 16  # live buffers listed on a step's line at most (beyond: their count)


def _live_buffers(plan: Plan, scratch: list[tuple[int, int] | None],
                  ) -> Iterator[tuple[list[Buffer] | None, int, int]]:
    """Per step: its live buffers (None when more than _SPANS), their count and bytes with
    the step's scratch span (`scratch`, per step). One sweep over the steps, linear in the
    buffers and steps (a 16,000-layer model took seconds comparing every buffer with every
    step)."""
    starts: dict[int, list[int]] = {}
    for k, b in enumerate(plan.buffers):
        starts.setdefault(b.first, []).append(k)
    live: dict[int, Buffer] = {}  # by position in plan.buffers
    ends: list[tuple[int, int]] = []  # heap of (last step, position)
    used = 0
    # views of rows inside another buffer, and outputs overlapping their inputs, share
    # bytes: there the live bytes are the union of the spans, not the sum of the sizes
    shared = bool(plan.views or plan.overlaps)
    for step in range(len(plan.order)):
        for k in starts.get(step, []):
            b = plan.buffers[k]
            live[k] = b
            heapq.heappush(ends, (b.last, k))
            used += b.size
        extra = [scratch[step]] if scratch[step] else []
        if shared:
            spans = _union([(b.offset, b.offset + b.size) for b in live.values()] + extra)
            now = sum(end - start for start, end in spans)
        else:  # disjoint, the scratch too (a buffer of its own at its step)
            now = used + sum(end - start for start, end in extra)
        yield (list(live.values()) if len(live) <= _SPANS else None), len(live), now
        while ends and ends[0][0] <= step:
            used -= live.pop(heapq.heappop(ends)[1]).size


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans [start, end), merged where they overlap or touch."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _scratch_spans(program: Program) -> list[tuple[int, int] | None]:
    """Per step, the arena span of its layer's scratch buffer (None: it has none)."""
    spans: list[tuple[int, int] | None] = []
    for layer in program.layers:
        offset = program.plan.scratch.get(layer.index)
        spans.append(None if offset is None else (offset, offset + layer.scratch_bytes()))
    return spans


def memory_report(path: Path, ram_budget: int | None = None) -> str:
    """The schedule, the live set at every step of it, and where each tensor sits."""
    from codegen.program import load_program

    program = load_program(path, ram_budget=ram_budget)
    graph, plan = program.graph, program.plan
    budget = "no --ram-budget" if plan.budget is None else f"--ram-budget {plan.budget}"
    lines = [
        f"{shown(path.name)}: arena {plan.size} bytes; lower bound {plan.lower_bound} bytes "
        "(all activations incl. inputs/outputs, file order, no sharing)",
        f"schedule: {plan.schedule} ({budget})" + (
            f"; {plan.extra_macs} MACs computed again in the bands' halos"
            if plan.extra_macs else ""),
        "",
        "tensors (arena offset, or the caller's input/output buffer):",
    ]
    for t in sorted(plan.locations):
        loc = plan.locations[t]
        where = f"arena+{loc.index}" if loc.kind == "arena" else f"{loc.kind}{loc.index}"
        tensor = graph.tensors[t]
        lines.append(f"  t{t:<4} {where:<12} {tensor.nbytes:>8} B  {tensor.describe()}")
    lines += ["", "schedule (live arena buffers after each step):"]
    scratch = _scratch_spans(program)
    for step, (layer, (live, count, used)) in enumerate(
            zip(program.layers, _live_buffers(plan, scratch), strict=False)):
        note = " (view: no code)" if layer.index in plan.elided else ""
        if layer.stem:
            note = f" (a band of layer {layer.stem.split('_')[0][1:]}, {layer.stem})"
        if layer.index in plan.overlaps:
            note += f" (output {plan.overlaps[layer.index]} B before its input, overlapping it)"
        spans = (f"{count} buffers" if live is None else
                 ", ".join(f"[{b.offset},{b.offset + b.size})" for b in
                           sorted(live, key=lambda b: b.offset)))
        if scratch[step]:
            spans += f"; scratch [{scratch[step][0]},{scratch[step][1]})"
        lines.append(f"  step {step:<3} [{layer.index}] {layer.opcode}{note}: "
                     f"{used} B live: {spans or '-'}")
    return "\n".join(lines)

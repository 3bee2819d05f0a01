"""Arduino: the generated model as an Arduino library (`codegen generate --arduino`).

    library.properties       the library's description (name NAME, includes NAME.h)
    src/NAME.c, src/NAME.h   the generated model, as `codegen generate` writes it
    examples/NAME/NAME.ino   a sketch that quantizes a made-up float input, runs the model,
                             dequantizes the output and prints it over Serial

The directory can be copied (or zipped and added with Sketch > Include Library > Add .ZIP
Library) into the Arduino libraries folder; the sketch is then under File > Examples. NAME.h
declares its functions `extern "C"`, so sketches (C++) call the C library directly.

Nothing from the model reaches these files but its file name, made safe for a comment or a
property value (codegen.emit.c_comment: printable ASCII on one line, no backslash), and the
numbers the header already holds; NAME is a checked C identifier.
"""

from __future__ import annotations

from codegen.emit import EmitOptions, c_comment, io_tensors, render
from codegen.errors import CodegenError
from codegen.files import Content
from codegen.program import Program

PROPERTIES = "library.properties"


def sketch_path(name: str) -> str:
    return f"examples/{name}/{name}.ino"


def arduino_files(program: Program, name: str, sources: dict[str, Content],
                  options: EmitOptions | None = None) -> dict[str, Content]:
    """The library's files, given the generated NAME.c/NAME.h (`sources`, from emit_model
    or emit_files with the same options)."""
    options = options or EmitOptions()
    if program.plan.io_in_arena:
        raise CodegenError("the Arduino example sketch passes its own input and output "
                           "buffers; generate without --io-in-arena for --arduino")
    inputs, outputs = io_tensors(program)
    context = {
        "name": name,
        "NAME": name.upper(),
        "source": c_comment(program.source),
        "inputs": inputs,
        "outputs": outputs,
        "quantized_inputs": any(io.quantized for io in inputs),
        "quantized_outputs": any(io.quantized for io in outputs),
        "static_arena": options.static_arena,
        "arguments": ", ".join([f"input{i}" for i in range(len(inputs))]
                               + [f"output{i}" for i in range(len(outputs))]),
        "arena_size": program.plan.size,
    }
    return {
        PROPERTIES: render("arduino/library.properties.j2", **context),
        f"src/{name}.c": sources[f"{name}.c"],
        f"src/{name}.h": sources[f"{name}.h"],
        sketch_path(name): render("arduino/sketch.ino.j2", **context),
    }

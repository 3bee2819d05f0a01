"""Small host programs that link a generated model and print its outputs, for the tests of
the build integrations (meson subproject, CMake library, `codegen build`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codegen.execute import execute
from codegen.program import load_program


def main_c(name: str, inputs: np.ndarray) -> str:
    """A C99 host program that runs model `name` (one int8 input and output, through
    NAME_invoke) on `inputs` and prints every output byte, one per line."""
    rows = ",\n".join("    {" + ", ".join(str(int(v)) for v in row.ravel()) + "}"
                      for row in inputs)
    upper = name.upper()
    return f"""\
#include <stdio.h>
#include "{name}.h"

static const int8_t samples[{len(inputs)}][{upper}_INPUT_SIZE] = {{
{rows}
}};

int main(void)
{{
    int8_t out[{upper}_OUTPUT_SIZE];
    unsigned s, i;
    for (s = 0; s < {len(inputs)}u; ++s) {{
        if ({name}_invoke(samples[s], out) != 0) {{
            return 1;
        }}
        for (i = 0; i < {upper}_OUTPUT_SIZE; ++i) {{
            printf("%d\\n", out[i]);
        }}
    }}
    return 0;
}}
"""


def expected_outputs(model: Path | bytes, inputs: np.ndarray) -> list[int]:
    """What main_c prints, from the numpy reference."""
    program = load_program(model)
    return [int(v) for v in execute(program, "reference", [inputs])[0].ravel()]

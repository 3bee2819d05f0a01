"""README sections generated from the code are current."""

from __future__ import annotations

import re
from pathlib import Path

from codegen.docs import SECTIONS, render_readme
from codegen.ops import supported_operators

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_generated_sections_are_current() -> None:
    text = README.read_text(encoding="utf-8")
    for name in SECTIONS:
        assert f"<!-- {name}:begin -->" in text and f"<!-- {name}:end -->" in text
    assert render_readme(text) == text, "README.md is stale: run `python -m codegen.docs`"


def test_every_supported_operator_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("<!-- operators:begin -->"):text.index("<!-- operators:end -->")]
    for opcode in supported_operators():
        assert re.search(rf"^\|[^|]*\b{opcode}\b[^|]*\|", section, re.M), opcode

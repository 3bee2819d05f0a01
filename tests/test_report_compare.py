"""`codegen report --compare`: the int8 and the 16x8 quantization of the demo MLP side by
side, each against the float model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import int16_models
from support.models import DEMO_DIR

from codegen.errors import CodegenError
from codegen.report import build_report

DEMO = DEMO_DIR / "demo_mlp.tflite"
DEMO_KERAS = DEMO_DIR / "demo_mlp.keras"


@pytest.fixture(scope="module")
def demo_16x8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compare") / "demo_16x8.tflite"
    path.write_bytes(int16_models.demo_mlp_16x8())
    return path


@pytest.mark.tf
def test_compare_shows_both_errors_and_responses(demo_16x8: Path) -> None:
    report = build_report(DEMO, float_model_path=DEMO_KERAS, compare_path=demo_16x8)
    c = report.comparison
    assert c is not None and c.schemes == ("int8", "16x8")
    assert c.response_png is not None and c.errors_png
    # Every layer has its counterpart in both models, and 16x8 loses less at the output.
    assert [r.matched for r in report.accuracy.rows] == [r.matched for r in c.accuracy.rows]
    int8_out, int16_out = report.accuracy.rows[-1], c.accuracy.rows[-1]
    assert int16_out.matched == "model output 0"
    assert int16_out.rmse < int8_out.rmse and int16_out.max_error < int8_out.max_error
    text = report.terminal()
    assert "int8 (demo_mlp.tflite) beside 16x8 (demo_16x8.tflite)" in text
    assert "16x8 RMSE/range" in text
    html = report.html()
    assert "int8 beside 16x8" in html
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == 6


@pytest.mark.tf
def test_compare_from_the_cli(demo_16x8: Path, tmp_path: Path) -> None:
    """The 16x8 model as the report's own, the int8 one compared: labels follow."""
    out = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "codegen", "report", str(demo_16x8), "-o", str(out),
         "--float-model", str(DEMO_KERAS), "--compare", str(DEMO)],
        capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "16x8 (demo_16x8.tflite) beside int8 (demo_mlp.tflite)" in result.stdout
    assert "Float vs 16x8 outputs" in out.read_text(encoding="utf-8")


def test_compare_needs_the_float_model_and_the_same_io(tmp_path: Path) -> None:
    other = tmp_path / "mixed.tflite"  # another model: other inputs and outputs
    other.write_bytes(int16_models.mixed_model())
    with pytest.raises(CodegenError, match="give --float-model too"):
        build_report(DEMO, compare_path=other)
    with pytest.raises(CodegenError, match="compare two quantizations of one model"):
        build_report(DEMO, float_model_path=DEMO_KERAS, compare_path=other)

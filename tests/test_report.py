"""`codegen report`, its building blocks, and the progress bar."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.models import DEMO_DIR, demo_train_module

from codegen.errors import CodegenError
from codegen.program import load_program
from codegen.progress import Progress, track
from codegen.reference import reference_values, run_reference
from codegen.report import build_report, layer_rows, live_bytes, load_benchmark

DEMO = DEMO_DIR / "demo_mlp.tflite"
DEMO_KERAS = DEMO_DIR / "demo_mlp.keras"


def _images(html: str) -> list[str]:
    return re.findall(r'<img [^>]*src="([^"]+)"', html)


def _self_contained(html: str) -> None:
    assert not re.search(r'(src|href)="(https?:|//|file:)', html)
    for src in _images(html):
        assert src.startswith("data:image/png;base64,")


def test_reference_values_hold_every_tensor() -> None:
    program = load_program(DEMO)
    x = np.random.default_rng(0).integers(-128, 128, (20, 1, 2)).astype(np.int8)
    values = reference_values(program, [x])
    for layer in program.layers:
        for t in (*layer.inputs, *layer.outputs):
            assert values[t].shape == (20, *program.graph.tensors[t].shape)
    np.testing.assert_array_equal(values[program.graph.outputs[0]],
                                  run_reference(program, [x])[0])


def test_layer_rows_follow_the_plan() -> None:
    program = load_program(DEMO)
    rows = layer_rows(program, {0: 1000, 2: 50})
    assert [r.op for r in rows] == ["FULLY_CONNECTED"] * 3
    assert [r.macs for r in rows] == [layer.macs() for layer in program.layers]
    assert sum(r.constant_bytes for r in rows) == program.constant_bytes
    assert max(live_bytes(program)) <= program.plan.size
    assert [r.instructions for r in rows] == [1000, None, 50]


def test_benchmark_format(tmp_path: Path) -> None:
    good = tmp_path / "bench.json"
    good.write_text(json.dumps({"layers": [
        {"index": 1, "op": "FULLY_CONNECTED", "instructions": 4321, "macs": 256}]}))
    assert load_benchmark(good) == {1: 4321}
    for text in ("[]", '{"layers": [{"op": "X"}]}', "not json"):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(CodegenError, match="benchmark"):
            load_benchmark(bad)
    with pytest.raises(CodegenError, match="no such file"):
        load_benchmark(tmp_path / "missing.json")


LAYER = '{"index": 0, "op": "FULLY_CONNECTED", "macs": 8, "instructions": %s}'


@pytest.mark.parametrize("text, message", [
    ('{"layers": [%s]}' % (LAYER % "1e999"), "1e999 is out of range"),
    ('{"layers": [%s]}' % (LAYER % "-1e999"), "out of range"),
    ('{"layers": [%s]}' % (LAYER % "NaN"), "NaN is not a number"),
    ('{"layers": [%s]}' % (LAYER % "Infinity"), "Infinity is not a number"),
    ('{"layers": [%s]}' % (LAYER % "-5"), "whole numbers from 0"),
    ('{"layers": [%s]}' % (LAYER % "12.5"), "whole numbers from 0"),
    ('{"layers": [%s]}' % (LAYER % "1" + "0" * 5000), "not readable JSON"),
    ('{"layers": [%s]}' % (LAYER % '"12"'), "whole numbers from 0"),
    ('{"layers": [{"index": true, "instructions": 5}]}', "whole numbers from 0"),
    ('{"layers": [%s]}' % (LAYER % "null"), "no instruction counts"),
    ("[" * 100_000 + "]" * 100_000, "100000 deep"),
    ('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}", "100001 deep"),
    ('{"layers": "' + "[" * 100_000 + '"}', "got 'layers' as a string"),  # [ in a string
    ('[{"layers": []}]', "got an array"),
    ('{"results": []}', "got an object without 'layers'"),
    ('"layers"', "got a string"),
    ("", "not readable JSON"),
])
def test_benchmark_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bench.json"
    path.write_text(text)
    with pytest.raises(CodegenError, match=re.escape(message)) as error:
        load_benchmark(path)
    assert "\n" not in str(error.value) and len(str(error.value)) < 300


def test_benchmark_files_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:  # sparse: refused by its size, never read
        f.truncate(8 << 30)
    with pytest.raises(CodegenError, match="8589934592 bytes; a benchmark JSON has at most"):
        load_benchmark(huge)
    with pytest.raises(CodegenError, match="not a regular file"):
        load_benchmark(tmp_path)
    with pytest.raises(CodegenError, match="not a regular file"):
        load_benchmark(Path("/dev/zero"))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"layers": [\xff]}')
    with pytest.raises(CodegenError, match="not UTF-8"):
        load_benchmark(binary)


def test_report_refuses_a_bad_benchmark_in_one_line(tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text('{"layers": [{"index": 0, "instructions": 1e999}]}')
    result = subprocess.run(
        [sys.executable, "-m", "codegen", "report", str(DEMO), "-o", str(tmp_path / "r.html"),
         "--bench", str(bench)], capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("codegen: error: benchmark ")
    assert len(result.stderr.splitlines()) == 1 and "1e999 is out of range" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_without_float_model(tmp_path: Path) -> None:
    policy.require_module("matplotlib")
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"layers": [
        {"index": i, "op": "FULLY_CONNECTED", "instructions": 100 * (i + 1), "macs": 1}
        for i in range(2)]}))
    report = build_report(DEMO, bench_path=bench)
    html = report.html()
    _self_contained(html)
    assert len(_images(html)) == 2  # memory, int8 response
    text = report.terminal()
    assert "instructions" in text and "instr/MAC" in text
    assert "the benchmark has no entry for layers [2]" in text
    assert report.accuracy is None


@pytest.mark.tf
def test_demo_report_shows_float_and_int8_responses(tmp_path: Path) -> None:
    """The issue's "done when": the report on the demo MLP with its float model."""
    policy.require_module("matplotlib")
    data = tmp_path / "x.npy"
    np.save(data, demo_train_module().grid(17))
    out = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "codegen", "report", str(DEMO), "-o", str(out),
         "--float-model", str(DEMO_KERAS), "--data", str(data)],
        capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    html = out.read_text()
    _self_contained(html)
    assert len(_images(html)) == 4  # memory, error per layer, scatter, response
    assert "Response over the input range" in html
    assert "the float model,\nthe int8 model and their difference" in html
    for name in ("hidden1", "hidden2", "model output 0"):
        assert name in result.stdout
    assert "no float counterpart" not in result.stdout


@pytest.mark.tf
def test_report_accuracy_numbers(tmp_path: Path) -> None:
    policy.require_module("matplotlib")
    import keras

    from codegen.quantize import dequantize

    xy = demo_train_module().grid(9)
    data = tmp_path / "x.npy"
    np.save(data, xy)
    report = build_report(DEMO, float_model_path=DEMO_KERAS, data_path=data)
    acc = report.accuracy
    assert acc is not None and not acc.unmatched
    assert [r.matched for r in acc.rows] == ["layer 'hidden1'", "layer 'hidden2'",
                                             "model output 0"]
    # The output row, recomputed independently: Keras float vs the dequantized reference.
    program = load_program(DEMO)
    tensor = program.graph.tensors[program.graph.inputs[0]]
    q = np.clip(np.round(xy / tensor.quant.scale) + tensor.quant.zero_point, -128, 127)
    out = run_reference(program, [q.astype(np.int8).reshape(-1, 1, 2)])[0]
    got = dequantize(program.graph.tensors[program.graph.outputs[0]], out).reshape(-1)
    expected = keras.models.load_model(DEMO_KERAS).predict(xy, verbose=0).reshape(-1)
    rmse = float(np.sqrt(np.mean((got - expected) ** 2)))
    assert acc.rows[-1].rmse == pytest.approx(rmse, rel=1e-4)
    assert acc.rows[-1].max_error == pytest.approx(float(np.abs(got - expected).max()),
                                                   rel=1e-4)


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(CodegenError, match="give --float-model too"):
        build_report(DEMO, data_path=tmp_path / "x.npy")


# -- progress ----------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_quiet_off_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("work", 10, stream=stream) as bar:
        for _ in range(10):
            bar.advance()
    assert stream.getvalue() == ""


def test_progress_draws_and_erases_on_a_terminal() -> None:
    stream = _Terminal()
    with Progress("work", 4, stream=stream) as bar:
        for _ in range(4):
            bar.advance()
        assert "work [" in stream.getvalue() and "4/4" in stream.getvalue()
    assert stream.getvalue().endswith("\r\x1b[K")
    assert list(track(range(3), "quiet")) == [0, 1, 2]

"""What `codegen generate` leaves on disk: all new files or all old ones, never a mix, no
staging debris; the same bytes from every run, with nothing of the machine in them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.builder import Q, fc_model

from codegen import generate as gen
from codegen.errors import CodegenError
from codegen.generate import write_files_atomically

FILES = {"m.h": "new header\n", "m.c": "new source\n"}


def _old_output(out: Path) -> dict[str, bytes]:
    out.mkdir()
    (out / "m.h").write_text("old header\n")
    (out / "m.c").write_text("old source\n")
    (out / "mine.txt").write_text("the user's own file\n")
    return _contents(out)


def _contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _fail_on_call(monkeypatch: pytest.MonkeyPatch, name: str, call: int) -> None:
    """Make os.<name>, as codegen.generate calls it, fail on its call-th call."""
    real = getattr(os, name)
    calls = [0]

    def flaky(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == call:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(gen.os, name, flaky)


@pytest.mark.parametrize("beside", [True, False], ids=["staged-beside", "parent-read-only"])
def test_failure_on_second_file_restores_the_old_files(beside: bool, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    before = _old_output(out)
    if not beside:  # as when the parent directory is not writable: stage inside out
        monkeypatch.setattr(gen, "_staging_directory", lambda target: None)
    _fail_on_call(monkeypatch, "replace", 2)
    with pytest.raises(CodegenError, match="No space left on device"):
        write_files_atomically(FILES, out)
    assert _contents(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("beside", [True, False], ids=["staged-beside", "parent-read-only"])
def test_success_replaces_only_our_files(beside: bool, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    before = _old_output(out)
    if not beside:
        monkeypatch.setattr(gen, "_staging_directory", lambda target: None)
    written = write_files_atomically(FILES, out)
    assert written == (out / "m.h", out / "m.c")
    after = _contents(out)
    assert after == {**before, "m.h": b"new header\n", "m.c": b"new source\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_new_directory_appears_whole_or_not_at_all(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "a" / "b" / "out"
    _fail_on_call(monkeypatch, "rename", 1)
    with pytest.raises(CodegenError, match="cannot write to"):
        write_files_atomically(FILES, out)
    assert list(tmp_path.iterdir()) == []  # a/ and a/b/ created for it are gone again
    monkeypatch.undo()
    write_files_atomically(FILES, out)
    assert _contents(out) == {"m.c": b"new source\n", "m.h": b"new header\n"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    assert (out.stat().st_mode & 0o777) == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_directory_in_the_way_is_an_error_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _old_output(out)
    (out / "m.c").unlink()
    (out / "m.c").mkdir()
    before = {"m.c": None, "m.h": b"old header\n", "mine.txt": b"the user's own file\n"}
    with pytest.raises(CodegenError, match="is a directory"):
        write_files_atomically(FILES, out)
    assert {p.name: (None if p.is_dir() else p.read_bytes())
            for p in sorted(out.iterdir())} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(CodegenError, match="not a directory"):
        write_files_atomically(FILES, target)
    assert target.read_text() == "x"


# -- reproducibility -------------------------------------------------------------------------

_GENERATE_ALL = """
import sys
from codegen.cli import main
for model in sys.argv[2:]:
    if main(["generate", model, "-o", sys.argv[1]]) != 0:
        sys.exit(1)
"""

MARKER = "machinemarker"


def _generate_in_process(models: list[Path], out: Path, home: Path, seed: str,
                         cwd: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed, "HOME": str(home), "USER": f"{MARKER}user",
           "LOGNAME": f"{MARKER}user", "TZ": "Pacific/Kiritimati" if seed == "1" else "UTC"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                         env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-c", _GENERATE_ALL, str(out), *map(str, models)],
                   check=True, env=env, cwd=cwd, capture_output=True, timeout=600)


def test_regeneration_is_byte_identical_and_machine_independent(
        shared_models: Path, tmp_path: Path) -> None:
    sources = sorted(shared_models.glob("*.tflite"))
    assert len(sources) == 5
    builder_model = fc_model(np.arange(-6, 6, dtype=np.int8).reshape(3, 4), input_q=Q(0.05, -3),
                             weight_q=Q(0.01), output_q=Q(0.1, 5), bias=np.array([1, 2, 3]))
    runs = []
    for seed in ("1", "2"):
        place = tmp_path / f"{MARKER}{seed}"
        (place / "models").mkdir(parents=True)
        models = []
        for src in sources:
            models.append(place / "models" / src.name)
            models[-1].write_bytes(src.read_bytes())
        models.append(place / "models" / "builder_fc.tflite")
        models[-1].write_bytes(builder_model)
        (place / "home").mkdir()
        _generate_in_process(models, place / "out", place / "home", seed, cwd=place)
        runs.append(_contents(place / "out"))
    first, second = runs
    assert sorted(first) == sorted(second)
    assert len(first) == 2 * len(sources) + 2
    for name in first:
        assert first[name] == second[name], f"{name} differs between runs"
    machine = [str(tmp_path), str(Path.home()), str(Path(__file__).resolve().parents[1]),
               MARKER, socket.gethostname()]
    stamp = re.compile(rb"\b(19|20)\d\d-\d\d-\d\d\b|\b\d\d:\d\d:\d\d\b")
    for name, text in first.items():
        for needle in machine:
            if len(needle) >= 4:
                assert needle.encode() not in text, f"{name} contains {needle!r}"
        assert not stamp.search(text), f"{name} contains a timestamp"


# -- text from the model file in the output ---------------------------------------------------


def test_names_from_the_file_cannot_escape_comments(tmp_path: Path) -> None:
    from support.builder import ModelBuilder

    from codegen.cli import main

    b = ModelBuilder()
    x = b.add_tensor("x */ int evil_in; /* ??/", (1, 4), "int8", quant=Q(0.05, -3))
    y = b.add_tensor("y\n#define evil_out 1 \\", (1, 4), "int8", quant=Q(0.05, -3))
    b.add_op("RESHAPE", [x], [y])
    b.set_io([x], [y])
    model = tmp_path / "odd\nproject('evil').tflite"
    model.write_bytes(b.build())
    out = tmp_path / "out"
    assert main(["generate", str(model), "-o", str(out), "--name", "m", "--meson"]) == 0
    header = (out / "m.h").read_text()
    assert "evil_in" in header and "evil_out" in header  # still there, but only in comments
    for text in (header, (out / "m.c").read_text()):
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        assert "evil" not in code and "??/" not in text
    meson = (out / "meson.build").read_text().splitlines()
    assert meson[0].startswith("# m: meson subproject generated by codegen from odd_project(")
    assert not any(line.startswith("project('evil')") for line in meson)

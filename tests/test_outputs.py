"""What `codegen generate` leaves on disk: all new files or all old ones, never a mix, no
staging debris; the same bytes from every run, with nothing of the machine in them."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.builder import Q, fc_model
from support.policy import require

from codegen import files
from codegen.errors import CodegenError
from codegen.files import write_files_atomically
from codegen.generate import generate

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
    """Make os.<name>, as codegen.files calls it, fail on its call-th call."""
    real = getattr(os, name)
    calls = [0]

    def flaky(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == call:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(files.os, name, flaky)


def test_failure_on_second_file_restores_the_old_files(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    before = _old_output(out)
    _fail_on_call(monkeypatch, "replace", 2)
    with pytest.raises(CodegenError, match="No space left on device"):
        write_files_atomically(FILES, out)
    assert _contents(out) == before  # the staging directory inside out is gone too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_success_replaces_only_our_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = _old_output(out)
    written = write_files_atomically(FILES, out)
    assert written == (out / "m.h", out / "m.c")
    after = _contents(out)
    assert after == {**before, "m.h": b"new header\n", "m.c": b"new source\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert all((out / n).stat().st_mode & 0o777 == 0o666 & ~_umask() for n in FILES)


def _other_file_system(monkeypatch: pytest.MonkeyPatch, mount: Path) -> list[str]:
    """Pretend `mount` is a mount point: os.rename, os.replace and os.link (as codegen.files
    calls them) fail with EXDEV, as the kernel's do, between a path inside it and one
    outside. Returns the operations that crossed."""
    crossed: list[str] = []

    def device(path: object) -> bool:
        return _within(Path(os.path.abspath(os.fspath(path))), mount)  # type: ignore[arg-type]

    for name in ("rename", "replace", "link"):
        real = getattr(os, name)

        def checked(src: object, dst: object, *args: object, _real=real, _name=name,
                    **kwargs: object) -> object:
            if device(src) != device(dst):
                crossed.append(f"{_name} {src} -> {dst}")
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
            return _real(src, dst, *args, **kwargs)

        monkeypatch.setattr(files.os, name, checked)
    return crossed


def _within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def test_output_directory_that_is_a_mount_point(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing output directory on a file system of its own (a container volume, a
    tmpfs): the files are staged inside it, never renamed across file systems; the
    directory ends with the new files and the user's untouched, and nothing else."""
    out = tmp_path / "out"
    before = _old_output(out)
    crossed = _other_file_system(monkeypatch, out)
    write_files_atomically(FILES, out)
    assert crossed == []
    assert _contents(out) == {**before, "m.h": b"new header\n", "m.c": b"new source\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # all or nothing there too: a failed replacement puts the old files back
    again = {"m.h": "newer header\n", "m.c": "newer source\n"}
    _fail_on_call(monkeypatch, "replace", 2)  # wraps the EXDEV check
    with pytest.raises(CodegenError, match="No space left on device"):
        write_files_atomically(again, out)
    assert crossed == []
    assert _contents(out) == {**before, "m.h": b"new header\n", "m.c": b"new source\n"}


def test_new_directory_below_a_mount_point(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A new output directory is staged beside it, in its parent: on the same file system."""
    mount = tmp_path / "volume"
    mount.mkdir()
    crossed = _other_file_system(monkeypatch, mount)
    write_files_atomically(FILES, mount / "out")
    assert crossed == []
    assert _contents(mount / "out") == {"m.c": b"new source\n", "m.h": b"new header\n"}
    assert sorted(p.name for p in mount.iterdir()) == ["out"]


_ON_TMPFS = """
import json, subprocess, sys
from pathlib import Path
out, model = Path(sys.argv[1]), sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "codegen-test", str(out)], check=True)
(out / "mine.txt").write_bytes(b"the user's own file\\n")
from codegen.cli import main
codes = [main(["generate", model, "-o", str(out), "--name", "m"]) for _ in range(2)]
dev = out.stat().st_dev != out.parent.stat().st_dev
print(json.dumps({"codes": codes, "mounted": dev,
                  "files": {p.name: p.read_bytes().hex() for p in sorted(out.iterdir())}}))
"""


def _mount_namespace() -> list[str] | None:
    """The command prefix that runs a process in a mount namespace of its own (root, or an
    unprivileged user namespace), or None when this machine allows neither."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for prefix in ([unshare, "--mount"], [unshare, "--mount", "--map-root-user"]):
        probe = subprocess.run([*prefix, "mount", "-t", "tmpfs", "probe", "/mnt"],
                               capture_output=True, check=False, timeout=60)
        if probe.returncode == 0:
            return prefix
    return None


def test_output_directory_that_is_a_real_tmpfs(tmp_path: Path) -> None:
    """The same on a real mount point: a tmpfs mounted on the output directory in a mount
    namespace of the test's own (gone when the process ends)."""
    prefix = _mount_namespace()
    require(prefix is not None, "cannot mount a tmpfs here (neither root nor unprivileged "
                                "user namespaces)")
    out = tmp_path / "out"
    out.mkdir()
    model = tmp_path / "m.tflite"
    model.write_bytes(fc_model(np.arange(-6, 6, dtype=np.int8).reshape(3, 4),
                               input_q=Q(0.05, -3), weight_q=Q(0.01), output_q=Q(0.1, 5)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([*prefix, sys.executable, "-c", _ON_TMPFS, str(out), str(model)],
                            capture_output=True, text=True, check=False, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["mounted"] and report["codes"] == [0, 0], result.stderr
    written = {name: bytes.fromhex(data) for name, data in report["files"].items()}
    assert sorted(written) == ["m.c", "m.h", "mine.txt"]  # no staging directory left
    assert written["mine.txt"] == b"the user's own file\n"
    generate(model, tmp_path / "plain", "m")
    assert written["m.c"] == (tmp_path / "plain" / "m.c").read_bytes()


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


# -- subdirectories, and files that are not codegen's ------------------------------------------

NESTED = {"library.properties": "# generated by codegen\n", "src/m.c": "// generated by codegen\n",
          "examples/m/m.ino": "// generated by codegen\n"}


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


def test_subdirectories_appear_with_their_files_or_not_at_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    before = _old_output(out)
    _fail_on_call(monkeypatch, "replace", 3)  # the last file
    with pytest.raises(CodegenError, match="No space left on device"):
        write_files_atomically(NESTED, out)
    assert _tree(out) == before  # src/ and examples/m/ created for it are gone again
    monkeypatch.undo()
    write_files_atomically(NESTED, out, ours=files.written_by_codegen)
    assert _tree(out) == {**before, "examples": None, "examples/m": None, "src": None,
                          **{k: v.encode() for k, v in NESTED.items()}}
    write_files_atomically(NESTED, tmp_path / "new")  # a new directory, staged whole
    assert {k: v for k, v in _tree(tmp_path / "new").items() if v} == \
        {k: v.encode() for k, v in NESTED.items()}


def test_a_subdirectory_that_is_a_link_is_not_written_through(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "src").symlink_to(elsewhere)
    with pytest.raises(CodegenError, match="not a directory"):
        write_files_atomically(NESTED, out)
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["src"]


def test_files_codegen_did_not_write_are_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = _old_output(out)  # m.h and m.c without codegen's line: the user's
    with pytest.raises(CodegenError, match=r"m\.h exists and was not written by codegen"):
        write_files_atomically(FILES, out, ours=files.written_by_codegen)
    assert _contents(out) == before
    (out / "m.h").write_text("/* m.h: generated by codegen from m.tflite */\n")
    (out / "m.c").unlink()
    (out / "m.c").symlink_to("mine.txt")  # a link is the user's too
    with pytest.raises(CodegenError, match=r"m\.c exists and was not written by codegen"):
        write_files_atomically(FILES, out, ours=files.written_by_codegen)
    (out / "m.c").unlink()
    write_files_atomically(FILES, out, ours=files.written_by_codegen)
    assert (out / "m.h").read_text() == "new header\n"
    assert (out / "mine.txt").read_text() == "the user's own file\n"


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


def _pieces(count: int, fail_at: int | None = None) -> object:
    """Text in pieces, as codegen.emit.GeneratedText gives it, failing at one piece."""
    def pieces() -> object:
        for i in range(count):
            if i == fail_at:
                raise CodegenError("rendering failed")
            yield f"line {i}\n"
    return pieces


@pytest.mark.parametrize("existing", [False, True])
def test_text_in_pieces_is_streamed_and_an_error_while_rendering_leaves_nothing(
        tmp_path: Path, existing: bool) -> None:
    """Generated C is written as it is rendered (never whole in memory); an error raised
    while it is rendered (an output beyond its bound) leaves the old files, or nothing."""
    out = tmp_path / "deep" / "out"
    if existing:
        out.parent.mkdir()
        before = _old_output(out)
    with pytest.raises(CodegenError, match="rendering failed"):
        write_files_atomically({"m.h": "header\n", "m.c": _pieces(5000, 4000)()}, out)
    if existing:
        assert _contents(out) == before
        assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    else:
        assert list(tmp_path.iterdir()) == []  # the directories it made are gone too
    write_files_atomically({"m.h": "header\n", "m.c": _pieces(5000)()}, out)
    assert (out / "m.c").read_text() == "".join(f"line {i}\n" for i in range(5000))

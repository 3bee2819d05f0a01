"""`--build-dir` of `codegen build`, `run` and `bench`: codegen empties and reuses only a
directory it created (its marker file proves it). Everything else is refused in one line,
and the user's files survive byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from support import policy

from codegen.cli import main
from codegen.errors import CodegenError
from codegen.files import MARKER, claim_build_dir, clear_build_dir

DEMO = policy.REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite"
COMMANDS = ("build", "run", "bench")


def _snapshot(root: Path) -> dict[str, object]:
    """Every entry under root, links not followed: bytes, a link's target, or a directory."""
    found: dict[str, object] = {}
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = path.read_bytes()
    return found


def _user_dir(path: Path) -> Path:
    """A directory of the user's: files, a subdirectory, a link."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_bytes(b"the user's notes\n")
    (path / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (path / "link").symlink_to("notes.txt")
    return path


def _argv(command: str, tmp_path: Path, build_dir: str, out: Path | None = None) -> list[str]:
    """The command line of `command` on the demo model (a copy in tmp_path/model)."""
    model = tmp_path / "model" / "demo.tflite"
    if command == "build":
        return ["build", str(model), "--target", "host", "-o", str(out or tmp_path / "lib"),
                "--build-dir", build_dir]
    if command == "run":
        return ["run", str(model), "--target", "host", "--input",
                str(tmp_path / "model" / "in.npy"), "--output",
                str(out or tmp_path / "out.npy"), "--build-dir", build_dir]
    return ["bench", str(model), "--target", "host", "--build-dir", build_dir]


@pytest.fixture(autouse=True)
def _model(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "demo.tflite").write_bytes(DEMO.read_bytes())
    np.save(tmp_path / "model" / "in.npy", np.zeros((2, 1, 2), np.int8))


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], message: str) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("codegen: error: ") and err.count("\n") == 1, err
    assert message in err, err


@pytest.mark.parametrize("command", COMMANDS)
def test_current_directory(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    user = _user_dir(tmp_path / "project")
    monkeypatch.chdir(user)
    before = _snapshot(tmp_path)
    _refused(_argv(command, tmp_path, "."), capsys, "is the current directory")
    _refused(_argv(command, tmp_path, str(tmp_path)), capsys,
             "contains the current directory")
    assert _snapshot(tmp_path) == before


def test_build_dir_is_or_holds_the_output_directory(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lib = _user_dir(tmp_path / "lib")
    before = _snapshot(tmp_path)
    for build_dir in (lib, lib / "build", tmp_path / "lib" / ".."):
        _refused(_argv("build", tmp_path, str(build_dir), out=lib), capsys, "")
    _refused(_argv("build", tmp_path, str(lib), out=lib), capsys,
             "overlaps the output directory")
    new = tmp_path / "new"  # neither exists yet: still the same directory
    _refused(_argv("build", tmp_path, str(new), out=new), capsys, "overlaps the output")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["run", "bench"])
def test_build_dir_holding_the_model_or_the_files(command: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(command, tmp_path, str(tmp_path / "model"))
    before = _snapshot(tmp_path)
    _refused(argv, capsys, "the model")
    if command == "run":  # a build directory that would hold the output file
        out = tmp_path / "outputs" / "out.npy"
        _refused(_argv("run", tmp_path, str(tmp_path / "outputs"), out=out), capsys,
                 "contains the output file")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_link_to_a_user_directory(command: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _user_dir(tmp_path / "mine")
    (tmp_path / "linked").symlink_to(tmp_path / "mine", target_is_directory=True)
    before = _snapshot(tmp_path)
    _refused(_argv(command, tmp_path, str(tmp_path / "linked")), capsys,
             "is a symbolic link")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_user_directory_with_files(command: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _user_dir(tmp_path / "mine")
    before = _snapshot(tmp_path)
    _refused(_argv(command, tmp_path, str(tmp_path / "mine")), capsys,
             f"is not empty and was not created by codegen (it has no {MARKER})")
    # a marker that is a link, or a directory, proves nothing
    (tmp_path / "mine" / MARKER).symlink_to("notes.txt")
    _refused(_argv(command, tmp_path, str(tmp_path / "mine")), capsys, "not created by codegen")
    (tmp_path / "mine" / MARKER).unlink()
    (tmp_path / "mine" / MARKER).mkdir()
    _refused(_argv(command, tmp_path, str(tmp_path / "mine")), capsys, "not created by codegen")
    (tmp_path / "mine" / MARKER).rmdir()
    assert _snapshot(tmp_path) == before
    (tmp_path / "file").write_bytes(b"a file\n")
    _refused(_argv(command, tmp_path, str(tmp_path / "file")), capsys, "is not a directory")
    assert (tmp_path / "file").read_bytes() == b"a file\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_directory_codegen_made_is_reused(command: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A directory codegen created (or found empty) is used, and used again; a link a user
    put inside it is removed when codegen empties it, never followed."""
    policy.require_tool("ninja")
    policy.require_tool(os.environ.get("CC") or "cc")
    mine = _user_dir(tmp_path / "mine")
    build = tmp_path / "build"
    build.mkdir()  # empty: codegen takes it
    argv = _argv(command, tmp_path, str(build))
    theirs = _snapshot(mine)
    assert main(argv) == 0, capsys.readouterr().err
    assert (build / MARKER).is_file()
    (build / "planted").symlink_to(mine, target_is_directory=True)
    (build / "build" / "planted").symlink_to(mine, target_is_directory=True)
    model_files = _snapshot(tmp_path / "model")
    assert main(argv) == 0, capsys.readouterr().err
    if command == "build":  # emptied for every build
        assert not os.path.lexists(build / "planted")
    assert _snapshot(mine) == theirs
    assert _snapshot(tmp_path / "model") == model_files
    # a new path: created with the marker
    assert main(_argv(command, tmp_path, str(tmp_path / "a" / "new"))) == 0
    assert (tmp_path / "a" / "new" / MARKER).is_file()


def test_clear_build_dir_never_follows_links(tmp_path: Path) -> None:
    mine = _user_dir(tmp_path / "mine")
    theirs = _snapshot(mine)
    build = claim_build_dir(tmp_path / "build")
    (build / "sub").mkdir()
    (build / "sub" / "to-mine").symlink_to(mine, target_is_directory=True)
    (build / "to-mine").symlink_to(mine, target_is_directory=True)
    (build / "to-notes").symlink_to(mine / "notes.txt")
    clear_build_dir(build)
    assert sorted(p.name for p in build.iterdir()) == [MARKER]
    assert _snapshot(mine) == theirs
    with pytest.raises(CodegenError, match="not created by codegen"):
        clear_build_dir(mine)
    assert _snapshot(mine) == theirs

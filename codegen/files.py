"""What codegen writes and deletes on the user's disk.

- `write_files_atomically`: the generated files of a directory (generate, build, the harness
  sources), all of them or none; names may hold subdirectories (`src/NAME.c`). With
  `ours`, an existing file is replaced only when `ours` recognises it as one codegen wrote
  (`written_by_codegen`): a user's CMakeLists.txt or NAME.c is never overwritten.
- `write_file_atomically`: one output file (`codegen run --output`, ...), whole or not at
  all: a temporary file in the same directory, fsync, then one rename over the old file.
- Build directories: codegen empties and reuses a directory only if it created it, proven by
  the marker file it writes there when it creates (or first takes, empty) the directory
  (`claim_build_dir`). It never deletes anything else, and never follows a symbolic link
  when deleting.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from codegen.errors import CodegenError

MARKER = ".codegen-build-dir"
_MARKER_TEXT = ("This directory was created by codegen as a build directory; codegen may "
                "delete anything in it.\n")
STAGING_PREFIX = ".codegen-staging-"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What a generated file holds: text, bytes, or text in pieces (an iterable of str, such as
# codegen.emit.GeneratedText, streamed to the file so that it is never in memory whole).
Content = str | bytes | Iterable[str]
_WRITE_BATCH = 1 << 20  # characters of pieces joined per write


def _write_synced(path: Path, data: Content) -> None:
    """A new file holding data, on disk (fsync) before anyone renames it into place."""
    with open(path, "xb") as f:
        if isinstance(data, bytes):
            f.write(data)
        elif isinstance(data, str):
            f.write(data.encode("utf-8"))
        else:
            _write_pieces(f, data)
        f.flush()
        os.fsync(f.fileno())


def _write_pieces(f: BinaryIO, pieces: Iterable[str]) -> None:
    batch: list[str] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= _WRITE_BATCH:
            f.write("".join(batch).encode("utf-8"))
            batch, size = [], 0
    f.write("".join(batch).encode("utf-8"))


# -- a directory of generated files ----------------------------------------------------------


def write_files_atomically(files: Mapping[str, Content], out_dir: Path, *,
                          ours: Callable[[Path], bool] | None = None) -> tuple[Path, ...]:
    """Write all files or none (text is written as UTF-8 with \\n line ends; text in
    pieces is streamed, and an error it raises while it is written leaves nothing).

    A name is a relative path with '/' separators and no '.' or '..' parts; missing
    subdirectories are created (and removed again on failure), and an existing one must be
    a real directory, not a symbolic link. With `ours`, nothing is written when a file to
    be replaced is not one `ours` recognises as codegen's (see `check_replaceable`).

    A new out_dir is staged beside where it will be (in its parent, so on its file system)
    and renamed into place in one step. In an existing out_dir, which may hold other files of
    the user's and may be a mount point, the files are staged in a hidden directory inside
    it; each replaces its old version, the old versions are kept until every replacement
    succeeded and put back if one failed, so the directory ends with all the old files or
    all the new ones, never a mix; the staging directory is removed in every case.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise CodegenError(f"output path {out_dir} exists and is not a directory")
    for name in files:
        _check_relative(name)
    if ours is not None:
        check_replaceable(files, out_dir, ours)
    target = out_dir.resolve()
    created: list[Path] = []
    try:
        for ancestor in reversed(target.parents):
            if not ancestor.exists():
                ancestor.mkdir()
                created.append(ancestor)
        if target.exists():
            _replace_in_directory(files, target)
        else:
            _write_new_directory(files, target)
    except BaseException as exc:  # an OSError, or an error of text rendered as it is written
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if isinstance(exc, OSError):
            raise CodegenError(f"cannot write to {out_dir}: {_reason(exc)}") from None
        raise
    return tuple(out_dir / name for name in files)


def _write_new_directory(files: Mapping[str, Content], target: Path) -> None:
    """A directory that does not exist yet cannot be a mount point: staged in its parent."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.codegen-", dir=target.parent))
    try:
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            _write_synced(staging / name, data)
        staging.chmod(0o777 & ~_umask())  # mkdtemp made it private
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _staging_inside(target: Path) -> Iterator[Path]:
    """A fresh hidden directory inside target (on target's own file system, also when
    target is a mount point), removed afterwards."""
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_in_directory(files: Mapping[str, Content], target: Path) -> None:
    for name in files:
        current = target / name
        _check_parents(target, name)
        if current.is_dir() and not current.is_symlink():
            raise IsADirectoryError(errno.EISDIR, f"{current} is a directory")
    with _staging_inside(target) as staging:
        (staging / "new").mkdir()
        (staging / "old").mkdir()
        new = {name: staging / "new" / str(i) for i, name in enumerate(files)}
        for name, data in files.items():
            _write_synced(new[name], data)
        old = {}
        for i, name in enumerate(files):
            current = target / name
            if os.path.lexists(current):
                old[name] = staging / "old" / str(i)
                os.link(current, old[name], follow_symlinks=False)
        replaced: list[str] = []
        made: list[Path] = []  # subdirectories created for the new files
        try:
            for name in files:
                made += _make_subdirectories(target, name)
                os.replace(new[name], target / name)
                replaced.append(name)
        except BaseException:
            for name in reversed(replaced):  # put the old files back
                if name in old:
                    os.replace(old[name], target / name)
                else:
                    os.unlink(target / name)
            for directory in reversed(made):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise


def _check_relative(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise ValueError(f"not a plain relative file name: {name!r}")


def _check_parents(target: Path, name: str) -> None:
    """Every existing directory between target and target/name is a real directory."""
    directory = target
    for part in name.split("/")[:-1]:
        directory = directory / part
        if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
            raise NotADirectoryError(errno.ENOTDIR, f"{directory} is not a directory (codegen "
                                                    "does not write through links)")


def _make_subdirectories(target: Path, name: str) -> list[Path]:
    made = []
    directory = target
    for part in name.split("/")[:-1]:
        directory = directory / part
        if not directory.exists():
            directory.mkdir()
            made.append(directory)
    return made


# -- which existing files codegen may replace --------------------------------------------------

_MARK = re.compile(rb"generated (?:by|from) codegen", re.IGNORECASE)
_MARK_WITHIN = 1024  # bytes at the start of a file


def written_by_codegen(path: Path) -> bool:
    """path is a regular file (not a link) whose first lines say codegen generated it, as
    every text file codegen writes does ("generated by codegen ...")."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return _MARK.search(f.read(_MARK_WITHIN)) is not None
    except OSError:
        return False


def check_replaceable(names: Iterable[str], out_dir: Path,
                      ours: Callable[[Path], bool] = written_by_codegen) -> None:
    """Refuse, before anything is written, to replace a file in out_dir that codegen did not
    write (a user's CMakeLists.txt, a symbolic link, ...): `ours(path)` must say it is
    codegen's. A missing out_dir or file is fine."""
    for name in names:
        path = out_dir / name
        if not os.path.lexists(path) or (path.is_dir() and not path.is_symlink()):
            continue  # a directory in the way is reported when writing
        if not ours(path):
            raise CodegenError(f"{path} exists and was not written by codegen; codegen does "
                               "not overwrite it: move it away, or give another output "
                               "directory")


# -- one output file ---------------------------------------------------------------------------


def check_output_file(path: Path, option: str, what: str) -> Path:
    """The file an output option names, checked before any work: not a directory, not a
    device or other special file, not a link to nowhere (a symbolic link to a regular file
    is written through).
    Returns the path that will be replaced."""
    real = Path(os.path.realpath(path))
    if path.is_symlink() and not real.exists():
        raise CodegenError(f"{option} {path} is a symbolic link to {real}, which does not "
                           f"exist; give the path of the {what} to write")
    if real.is_dir():
        raise CodegenError(f"{option} {path} is a directory; give the {what} to write")
    if real.exists() and not real.is_file():
        raise CodegenError(f"{option} {path} is not a regular file; give the path of the "
                           f"{what} to write")
    if not real.parent.is_dir() and real.parent.exists():
        raise CodegenError(f"{option} {path}: {real.parent} is not a directory")
    return real


def write_file_atomically(path: Path, write: Callable[[BinaryIO], None], option: str,
                          what: str) -> Path:
    """Call write(stream) on a temporary file beside path, fsync it and rename it over path
    (following a symbolic link to the file it names). Either path ends up holding exactly
    what `write` wrote, or, on any error (a full disk, say), it is unchanged and the
    temporary file is gone. Missing parent directories are created, and removed again when
    the write fails. Returns the path written."""
    real = check_output_file(path, option, what)
    created = _make_parents(real.parent, path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".codegen-tmp",
                                    dir=real.parent)
        temporary = Path(name)
        try:
            with os.fdopen(fd, "wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
            mode = (stat.S_IMODE(real.stat().st_mode) if real.is_file()
                    else 0o666 & ~_umask())
            temporary.chmod(mode)
            os.replace(temporary, real)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
    except OSError as exc:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise CodegenError(f"cannot write {path}: {_reason(exc)}; nothing was written"
                           + (" (the old file is unchanged)" if real.is_file() else "")) from None
    return path


def _make_parents(directory: Path, path: Path) -> list[Path]:
    created: list[Path] = []
    try:
        for ancestor in [*reversed(directory.parents), directory]:
            if not ancestor.exists():
                ancestor.mkdir()
                created.append(ancestor)
    except OSError as exc:
        for made in reversed(created):
            with contextlib.suppress(OSError):
                made.rmdir()
        raise CodegenError(f"cannot write {path}: {_reason(exc)}") from None
    return created


# -- build directories -------------------------------------------------------------------------


def _absolute(path: Path) -> Path:
    """path made absolute with its parents resolved but its last component as given (a
    symbolic link stays a link, to be refused)."""
    if path.name in ("", ".", ".."):
        return path.resolve()
    return path.parent.resolve() / path.name


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_build_dir(path: Path, *, keep: Sequence[tuple[str, Path]] = (),
                    apart: Sequence[tuple[str, Path]] = (),
                    option: str = "--build-dir") -> Path:
    """Refuse a build directory codegen may not take, before any work; no side effects.

    It may not be, or contain, the current directory or any path of `keep` (the model, the
    input and output files: everything in a build directory may be deleted), nor be, hold or
    lie inside a directory of `apart` (the output directory). It may not be a symbolic link
    or a file, and an existing directory must be empty or have codegen's marker. Returns
    the absolute path."""
    build = _absolute(path)
    way_out = "give a new directory of its own (e.g. build-codegen)"
    if build == Path(build.anchor):
        raise CodegenError(f"{option} {path} is the root directory; {way_out}")
    for what, other in [("the current directory", Path.cwd()), *keep]:
        if _within(other.resolve(), build):
            holds = "is" if other.resolve() == build else "contains"
            raise CodegenError(f"{option} {path} {holds} {what}, and codegen may delete "
                               f"everything in a build directory; {way_out}")
    for what, other in apart:
        resolved = other.resolve()
        if _within(resolved, build) or _within(build, resolved):
            raise CodegenError(f"{option} {path} overlaps {what} {other}; {way_out} outside it")
    try:
        info = os.lstat(build)
    except FileNotFoundError:
        return build
    except OSError as exc:
        raise CodegenError(f"{option} {path}: {_reason(exc)}") from None
    if stat.S_ISLNK(info.st_mode):
        raise CodegenError(f"{option} {path} is a symbolic link; codegen does not build "
                           f"through links: {way_out}")
    if not stat.S_ISDIR(info.st_mode):
        raise CodegenError(f"{option} {path} exists and is not a directory; {way_out}")
    if not has_marker(build) and _has_entries(build, path, option):
        raise CodegenError(f"{option} {path} is not empty and was not created by codegen "
                           f"(it has no {MARKER}); codegen only reuses build directories it "
                           f"created: {way_out}, or an empty one")
    return build


def _has_entries(directory: Path, path: Path, option: str) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(True for _ in entries)
    except OSError as exc:
        raise CodegenError(f"{option} {path}: {_reason(exc)}") from None


def has_marker(directory: Path) -> bool:
    """directory holds codegen's marker, a regular file (not a link to one)."""
    try:
        return stat.S_ISREG(os.lstat(directory / MARKER).st_mode)
    except OSError:
        return False


def claim_build_dir(path: Path, option: str = "--build-dir") -> Path:
    """Make path a build directory of codegen's: create it with the marker, or mark an
    existing empty directory, or accept one that has the marker. Anything else (a link, a
    file, a directory of the user's) is refused. Returns the absolute path."""
    build = check_build_dir(path, option=option)
    if has_marker(build):
        return build
    try:
        build.mkdir(parents=True, exist_ok=True)
        fd = os.open(build / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o666)
        with os.fdopen(fd, "w") as marker:
            marker.write(_MARKER_TEXT)
    except OSError as exc:
        raise CodegenError(f"cannot create the build directory {path}: {_reason(exc)}") from None
    return build


def clear_build_dir(build: Path) -> None:
    """Delete everything in a build directory of codegen's except its marker; links are
    removed, never followed."""
    if not has_marker(build) or os.path.islink(build):
        raise CodegenError(f"refusing to empty {build}: it was not created by codegen")
    with os.scandir(build) as entries:
        for entry in entries:
            if entry.name == MARKER:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)

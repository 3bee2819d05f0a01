"""What codegen writes on the user's disk.

- `write_files_atomically`: the generated files of a directory (generate, build, the harness
  sources), all of them or none.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from codegen.errors import CodegenError

STAGING_PREFIX = ".codegen-staging-"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_synced(path: Path, data: str | bytes) -> None:
    """A new file holding data, on disk (fsync) before anyone renames it into place."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with open(path, "xb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())


# -- a directory of generated files ----------------------------------------------------------


def write_files_atomically(files: Mapping[str, str | bytes], out_dir: Path) -> tuple[Path, ...]:
    """Write all files or none (text is written as UTF-8 with \\n line ends).

    A new out_dir is staged beside where it will be (in its parent, so on its file system)
    and renamed into place in one step. In an existing out_dir, which may hold other files of
    the user's and may be a mount point, the files are staged in a hidden directory inside
    it; each replaces its old version, the old versions are kept until every replacement
    succeeded and put back if one failed, so the directory ends with all the old files or
    all the new ones, never a mix; the staging directory is removed in every case.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise CodegenError(f"output path {out_dir} exists and is not a directory")
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
    except OSError as exc:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise CodegenError(f"cannot write to {out_dir}: {_reason(exc)}") from None
    return tuple(out_dir / name for name in files)


def _write_new_directory(files: Mapping[str, str | bytes], target: Path) -> None:
    """A directory that does not exist yet cannot be a mount point: staged in its parent."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.codegen-", dir=target.parent))
    try:
        for name, data in files.items():
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


def _replace_in_directory(files: Mapping[str, str | bytes], target: Path) -> None:
    for name in files:
        current = target / name
        if current.is_dir() and not current.is_symlink():
            raise IsADirectoryError(errno.EISDIR, f"{current} is a directory")
    with _staging_inside(target) as staging:
        (staging / "new").mkdir()
        (staging / "old").mkdir()
        new = {name: staging / "new" / name for name in files}
        for name, data in files.items():
            _write_synced(new[name], data)
        old = {}
        for name in files:
            current = target / name
            if os.path.lexists(current):
                old[name] = staging / "old" / name
                os.link(current, old[name], follow_symlinks=False)
        replaced: list[str] = []
        try:
            for name in files:
                os.replace(new[name], target / name)
                replaced.append(name)
        except BaseException:
            for name in reversed(replaced):  # put the old files back
                if name in old:
                    os.replace(old[name], target / name)
                else:
                    os.unlink(target / name)
            raise

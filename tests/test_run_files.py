"""`codegen run` with hostile or mistaken files: every user error is one line and exit 1 with
nothing written or replaced, and an output is never silently wrong (names collide, escape
the archive, or a full disk truncates it)."""

from __future__ import annotations

import errno
import os
import resource
import signal
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.builder import ModelBuilder, Q
from support.tflm import run_tflm

from codegen import arrays, files
from codegen.cli import main

DEMO = policy.REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite"  # int8 (1, 2) -> (1, 1)
OLD_OUTPUT = b"the user's good output, not to be lost"


def _scalar_model() -> bytes:
    """A model whose input and output are scalars: x -> x + x."""
    b = ModelBuilder()
    x = b.add_tensor("x", (), "int8", quant=Q(0.1, 0))
    y = b.add_tensor("y", (), "int8", quant=Q(0.2, 1))
    b.add_op("ADD", [x, x], [y])
    b.set_io([x], [y])
    return b.build()


OUTPUT_NAMES = ["file", "allow_pickle", "../../x", "y", "y", "output0", "\x1b]0;title\x07",
                "serving_default:0"]
NPZ_KEYS = ["file", "allow_pickle", "output2", "output3", "output4", "output5", "output6",
            "serving_default:0"]


def _many_outputs_model() -> bytes:
    """x -> one ADD(x, x) per output, each with its own output quantization (so its own
    values), named OUTPUT_NAMES: np.savez's keywords, a path, duplicates, a fallback key
    at the wrong position, a terminal escape."""
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.1, 0))
    outs = [b.add_tensor(name, (1, 4), "int8", quant=Q(0.05 * (i + 1), i - 3))
            for i, name in enumerate(OUTPUT_NAMES)]
    for out in outs:
        b.add_op("ADD", [x, x], [out])
    b.set_io([x], outs)
    return b.build()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """tmp_path/models holds the models, the rest of tmp_path is what a run may touch."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "demo.tflite").write_bytes(DEMO.read_bytes())
    (models / "scalar.tflite").write_bytes(_scalar_model())
    (models / "many.tflite").write_bytes(_many_outputs_model())
    (tmp_path / "out.npy").write_bytes(OLD_OUTPUT)
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "link -> " + os.readlink(path)
            elif path.is_dir():
                found[key] = "dir"
            elif path.is_file():
                found[key] = path.read_bytes()
            else:
                found[key] = "special"
    return found


def _run_args(work: Path, model: str, given: Path, output: Path | str) -> list[str]:
    return ["run", str(work / "models" / model), "--target", "reference", "--input",
            str(given), "--output", str(output)]


def _refused(argv: list[str], work: Path, capsys: pytest.CaptureFixture[str],
             message: str) -> str:
    """Run the CLI: exit 1, one line `codegen: error: ...` holding message, and the working
    directory exactly as it was (the old out.npy included)."""
    before = _snapshot(work)
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("codegen: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert captured.out == ""
    assert _snapshot(work) == before
    assert (work / "out.npy").read_bytes() == OLD_OUTPUT
    return err


def _input(work: Path, name: str, data: bytes) -> Path:
    path = work / name
    path.write_bytes(data)
    return path


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    stream = io.BytesIO()
    np.lib.format.write_array(stream, array, allow_pickle=True)
    return stream.getvalue()


GOOD = np.arange(8, dtype=np.int8).reshape(4, 1, 2) * 7  # 4 samples for the demo model


# -- inputs ----------------------------------------------------------------------------------


def test_pickled_arrays(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    objects = np.array([{"a": 1}, None], dtype=object)
    npy = _input(work, "pickled.npy", _npy_bytes(objects))
    _refused(_run_args(work, "demo.tflite", npy, work / "out.npy"), work, capsys, "pickle")
    np.savez(work / "pickled.npz", x=objects)
    _refused(_run_args(work, "demo.tflite", work / "pickled.npz", work / "out.npy"), work,
             capsys, "pickle")


def test_npz_member_with_a_bad_crc(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(work / "in.npz", x=GOOD)
    data = bytearray((work / "in.npz").read_bytes())
    at = bytes(data).find(GOOD.tobytes())
    data[at + 3] ^= 0x01
    (work / "in.npz").write_bytes(bytes(data))
    _refused(_run_args(work, "demo.tflite", work / "in.npz", work / "out.npy"), work, capsys,
             "Bad CRC-32")


def test_npz_member_that_is_not_npy(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with zipfile.ZipFile(work / "text.npz", "w") as z:
        z.writestr("x.npy", b"hello, not an array")
    _refused(_run_args(work, "demo.tflite", work / "text.npz", work / "out.npy"), work, capsys,
             "is not an .npy array")
    with zipfile.ZipFile(work / "plain.npz", "w") as z:
        z.writestr("x", b"no suffix either")
    _refused(_run_args(work, "demo.tflite", work / "plain.npz", work / "out.npy"), work,
             capsys, "is not an .npy array")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(work / "twice.npz", "w") as z:
            z.writestr("x.npy", _npy_bytes(GOOD))
            z.writestr("x.npy", _npy_bytes(GOOD + 1))
    _refused(_run_args(work, "demo.tflite", work / "twice.npz", work / "out.npy"), work,
             capsys, "holds 2 arrays named 'x'")


def test_empty_and_foreign_files(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = _input(work, "empty.npy", b"")
    _refused(_run_args(work, "demo.tflite", empty, work / "out.npy"), work, capsys, "is empty")
    text = _input(work, "text.npy", b"1,2\n3,4\n")
    _refused(_run_args(work, "demo.tflite", text, work / "out.npy"), work, capsys,
             "not a readable .npy/.npz file")
    truncated = _input(work, "cut.npy", _npy_bytes(GOOD)[:-1])
    _refused(_run_args(work, "demo.tflite", truncated, work / "out.npy"), work, capsys,
             "but it holds 7")
    strings = _input(work, "strings.npy", _npy_bytes(np.array([["a", "b"]])))
    _refused(_run_args(work, "demo.tflite", strings, work / "out.npy"), work, capsys,
             "numeric arrays only")
    _refused(_run_args(work, "demo.tflite", work / "models", work / "out.npy"), work, capsys,
             "models")


def _lying_header(shape: tuple[int, ...]) -> bytes:
    import io

    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        stream, {"descr": "|i1", "fortran_order": False, "shape": shape})
    return stream.getvalue() + bytes(16)


def test_header_claiming_billions_of_elements(work: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Checked against the file size before anything is allocated."""
    huge = (4_000_000_000, 1, 2)
    npy = _input(work, "huge.npy", _lying_header(huge))
    _refused(_run_args(work, "demo.tflite", npy, work / "out.npy"), work, capsys,
             "8000000000 bytes of data), but it holds 16")
    with zipfile.ZipFile(work / "huge.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", _lying_header(huge))
    _refused(_run_args(work, "demo.tflite", work / "huge.npz", work / "out.npy"), work, capsys,
             "8000000000 bytes of data), but it holds 16")
    negative = _input(work, "negative.npy", _lying_header((-1, 1, 2)))
    _refused(_run_args(work, "demo.tflite", negative, work / "out.npy"), work, capsys,
             "negative dimension")


def test_no_samples(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npy = work / "none.npy"
    np.save(npy, np.zeros((0, 1, 2), np.int8))
    _refused(_run_args(work, "demo.tflite", npy, work / "out.npy"), work, capsys,
             "no samples (N = 0)")


def test_scalar_model_wants_a_vector_of_samples(work: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    npy = work / "scalar.npy"
    np.save(npy, np.array(3, np.int8))
    _refused(_run_args(work, "scalar.tflite", npy, work / "out.npy"), work, capsys,
             "must be a int8 array shaped (N,), one sample per row; got int8 ()")
    np.save(npy, np.arange(-5, 5, dtype=np.int8))
    assert main(_run_args(work, "scalar.tflite", npy, work / "s.npy")) == 0
    assert np.load(work / "s.npy").shape == (10,)


def _patch_sizes(path: Path, file_size: int) -> None:
    """Rewrite the uncompressed size of the (only) member in its local header and in the
    central directory, as a zip bomb declares it."""
    data = bytearray(path.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, file_size)
    struct.pack_into("<I", data, central + 24, file_size)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED],
                         ids=["deflated", "stored"])
def test_npz_bomb_declared_sizes(method: int, work: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Declared sizes larger than the compressed data can expand to are refused before any
    of it is read."""
    bomb = work / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", method) as z:
        z.writestr("x.npy", _npy_bytes(GOOD))
    _patch_sizes(bomb, 0x7FFF_FFF0)
    _refused(_run_args(work, "demo.tflite", bomb, work / "out.npy"), work, capsys,
             "declares 2147483632 bytes, more than its")


def test_npz_larger_than_memory(work: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A member that honestly expands to more than the machine's memory (zeros compress
    about 1000:1) is refused from its declared size."""
    np.savez_compressed(work / "zeros.npz", x=np.zeros((100_000, 1, 2), np.int8))
    monkeypatch.setattr(arrays, "memory_bytes", lambda: 100_000)
    _refused(_run_args(work, "demo.tflite", work / "zeros.npz", work / "out.npy"), work,
             capsys, "more than this machine's memory")


def test_input_that_is_a_fifo(work: Path) -> None:
    """Refused at once, not read (which would block forever)."""
    os.mkfifo(work / "pipe.npy")
    result = subprocess.run(
        [sys.executable, "-m", "codegen", *_run_args(work, "demo.tflite", work / "pipe.npy",
                                                     work / "out.npy")],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("codegen: error: ") and result.stderr.count("\n") == 1
    assert "is not a regular file" in result.stderr
    assert (work / "out.npy").read_bytes() == OLD_OUTPUT


# -- outputs ---------------------------------------------------------------------------------


def test_output_paths_that_are_refused(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(work / "in.npy", GOOD)
    given = work / "in.npy"
    (work / "dir").mkdir()
    (work / "dir" / "keep.txt").write_bytes(b"keep")
    _refused(_run_args(work, "demo.tflite", given, work / "dir"), work, capsys,
             "is a directory")
    _refused(_run_args(work, "demo.tflite", given, work / "result"), work, capsys,
             "must end in .npy")
    _refused(_run_args(work, "demo.tflite", given, work / "result.txt"), work, capsys,
             "must end in .npy")
    _refused(_run_args(work, "demo.tflite", given, given), work, capsys, "is the input file")
    os.mkfifo(work / "fifo.npy")
    _refused(_run_args(work, "demo.tflite", given, work / "fifo.npy"), work, capsys,
             "is not a regular file")
    (work / "dangling.npy").symlink_to(work / "elsewhere" / "x.npy")
    _refused(_run_args(work, "demo.tflite", given, work / "dangling.npy"), work, capsys,
             "which does not exist")
    _refused(_run_args(work, "many.tflite", given, work / "many.npy"), work, capsys,
             "give an --output ending in .npz")


def test_output_written_exactly_where_given(work: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    np.save(work / "in.npy", GOOD)
    assert main(_run_args(work, "demo.tflite", work / "in.npy", work / "new" / "o.npy")) == 0
    assert f"wrote {work / 'new' / 'o.npy'}" in capsys.readouterr().out
    assert sorted(p.name for p in (work / "new").iterdir()) == ["o.npy"]
    expected = run_tflm(DEMO.read_bytes(), [GOOD])[0]
    np.testing.assert_array_equal(np.load(work / "new" / "o.npy"), expected)
    # through a link to the user's file: the file is replaced, the link stays
    (work / "link.npy").symlink_to(work / "out.npy")
    assert main(_run_args(work, "demo.tflite", work / "in.npy", work / "link.npy")) == 0
    assert (work / "link.npy").is_symlink()
    np.testing.assert_array_equal(np.load(work / "out.npy"), expected)
    assert not [p for p in work.rglob("*") if "codegen-tmp" in p.name]


@pytest.mark.tflm
def test_npz_keys_are_safe_unique_and_printed(work: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    x = np.random.default_rng(5).integers(-128, 128, size=(20, 1, 4)).astype(np.int8)
    np.save(work / "in.npy", x)
    assert main(_run_args(work, "many.tflite", work / "in.npy", work / "many.npz")) == 0
    out = capsys.readouterr().out
    with zipfile.ZipFile(work / "many.npz") as z:
        assert z.namelist() == [f"{key}.npy" for key in NPZ_KEYS]
    expected = run_tflm((work / "models" / "many.tflite").read_bytes(), [x])
    assert len({e.tobytes() for e in expected}) == len(expected)  # each output differs
    with np.load(work / "many.npz", allow_pickle=False) as loaded:
        assert loaded.files == NPZ_KEYS
        for key, e in zip(NPZ_KEYS, expected, strict=True):
            np.testing.assert_array_equal(loaded[key], e)
    for i, (name, key) in enumerate(zip(OUTPUT_NAMES, NPZ_KEYS, strict=True)):
        line = f"output {i} {name!r} is stored as {key!r}"
        assert (line in out) == (name != key), out
    assert "\x1b" not in out and "\x07" not in out


def test_full_disk_keeps_the_old_output(work: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The write fails when the data reaches the disk (fsync reports ENOSPC): the old file
    stays, and the temporary file is gone."""
    np.save(work / "in.npy", GOOD)

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", no_space)
    _refused(_run_args(work, "demo.tflite", work / "in.npy", work / "out.npy"), work, capsys,
             "No space left on device; nothing was written (the old file is unchanged)")
    np.save(work / "in4.npy", np.zeros((3, 1, 4), np.int8))
    _refused(_run_args(work, "many.tflite", work / "in4.npy", work / "a" / "b.npz"), work,
             capsys, "No space left on device; nothing was written")  # a/ removed again


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_write_beyond_the_file_size_limit(work: Path) -> None:
    """A real failing write (the kernel refuses it, as on a full disk): RLIMIT_FSIZE lets
    codegen write 64 KiB per file, the output needs 200 KB."""
    x = np.random.default_rng(1).integers(-128, 128, size=(200_000, 1, 2)).astype(np.int8)
    np.save(work / "in.npy", x)
    before = _snapshot(work)
    result = subprocess.run(
        [sys.executable, "-m", "codegen", *_run_args(work, "demo.tflite", work / "in.npy",
                                                     work / "out.npy")],
        capture_output=True, text=True, timeout=300, check=False, preexec_fn=_limit_file_size)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("codegen: error: cannot write ")
    assert result.stderr.count("\n") == 1 and "File too large" in result.stderr
    assert _snapshot(work) == before


# -- what numpy writes is read as numpy reads it ------------------------------------------------


def _written_by_numpy(directory: Path) -> dict[str, tuple[Path, np.ndarray]]:
    rng = np.random.default_rng(9)
    base = rng.integers(-128, 128, size=(5, 3, 4)).astype(np.int8)
    cases = {
        "c-order": base,
        "fortran": np.asfortranarray(base),
        "big-endian float": rng.standard_normal((3, 2, 7)).astype(">f4"),
        "uint8 transposed": np.transpose(base.astype(np.uint8), (2, 0, 1)),
        "bool": base > 0,
        "complex": (base + 1j * base).astype(np.complex64),
        "empty": np.zeros((0, 3), np.float32),
        "scalar": np.array(2.5),
    }
    found = {}
    for i, (label, array) in enumerate(cases.items()):
        npy = directory / f"{i}.npy"
        with open(npy, "wb") as f:
            np.lib.format.write_array(f, array, version=(1, 0) if i % 2 else (2, 0))
        found[f"{label} .npy"] = (npy, array)
        npz = directory / f"{i}.npz"
        (np.savez_compressed if i % 2 else np.savez)(npz, sample=array)
        found[f"{label} .npz"] = (npz, array)
    return found


def _numpy_load(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as archive:
        return archive["sample"]


def test_reader_reads_what_numpy_writes(tmp_path: Path) -> None:
    """Every numeric array numpy saves (both header versions, C and Fortran order, either
    byte order, stored and compressed .npz) reads back equal, native and writable."""
    for label, (path, array) in _written_by_numpy(tmp_path).items():
        (got,) = arrays.load_named_arrays(path, ["sample"], "input")
        expected = _numpy_load(path)
        assert got.dtype == expected.dtype.newbyteorder("="), label
        assert got.shape == expected.shape == array.shape, label
        np.testing.assert_array_equal(got, expected, err_msg=label)
        assert got.dtype.isnative and got.flags.writeable, label


# -- the other commands' output files ---------------------------------------------------------


def test_report_output_is_replaced_whole_or_not_at_all(work: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    policy.require_module("matplotlib")
    model = str(work / "models" / "demo.tflite")
    os.mkfifo(work / "fifo.html")
    _refused(["report", model, "-o", str(work / "fifo.html")], work, capsys,
             "is not a regular file")
    (work / "report.html").write_bytes(OLD_OUTPUT)
    real_fsync = os.fsync

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", no_space)
    _refused(["report", model, "-o", str(work / "report.html")], work, capsys,
             "No space left on device; nothing was written (the old file is unchanged)")
    assert (work / "report.html").read_bytes() == OLD_OUTPUT
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    assert main(["report", model, "-o", str(work / "report.html")]) == 0
    assert (work / "report.html").read_bytes().startswith(b"<!DOCTYPE html>")

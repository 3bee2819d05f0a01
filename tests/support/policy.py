"""What a missing prerequisite means: a skip on a developer's machine, a failure in CI.

CI (environment `CI=true`) must run every test, so there a missing toolchain, QEMU, TFLM,
TensorFlow or model file fails the test that needs it. Locally the test is skipped with the
reason, so a partial setup still runs what it can.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MODELS = REPO_ROOT.parent / "shared" / "models"
# The PATH of a fresh Debian machine, before anything is installed by hand.
SYSTEM_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def venv_first_on_path() -> None:
    """Put the directory of this Python (the venv's bin, where scripts/setup installs meson,
    ruff and codegen) first on PATH, so that every subprocess of the suite finds them as a
    user who followed the README does."""
    bin_dir = str(Path(sys.executable).parent)
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    os.environ["PATH"] = os.pathsep.join([bin_dir, *rest])


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Go on if `condition`; otherwise fail under CI and skip elsewhere, saying `reason`."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI requires it: {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(name: str, what: str | None = None) -> None:
    """Require an importable Python module (e.g. "tensorflow", "tflite_micro")."""
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    require(found, f"{what or name} is not installed (python module {name!r})")


def require_tool(name: str) -> str:
    """Require a program on PATH; return its full path."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not on PATH")
    return str(path)


def require_file(path: Path) -> Path:
    require(path.is_file(), f"missing file {path}")
    return path


def require_dir(path: Path) -> Path:
    require(path.is_dir(), f"missing directory {path}")
    return path

"""Test-wide policy and fixtures.

Under `CI=true` a missing prerequisite is a failure, never a skip (see support.policy).
Markers (pyproject.toml): `tflm` tests require the tflite-micro package and `qemu` tests the
QEMU of their target on PATH (qemu-system-arm, qemu-system-riscv32), both checked here
before the test runs; `tf` (registered here) marks tests that need TensorFlow, usually to
convert a model.

Test modules import helpers as `from support.tflm import run_tflm` (pytest puts tests/ on
sys.path for this conftest).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import policy, verify
from support.models import cache_dir

from codegen.targets import TARGETS


def pytest_configure(config: pytest.Config) -> None:
    policy.venv_first_on_path()
    config.addinivalue_line("markers", "tf: needs TensorFlow (model conversion; slow)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("tflm") is not None:
        policy.require_module("tflite_micro", "TensorFlow Lite Micro (pip tflite-micro)")
    if item.get_closest_marker("tf") is not None:
        policy.require_module("tensorflow", "TensorFlow")
    if item.get_closest_marker("qemu") is not None:
        for binary in _qemu_binaries(item):
            policy.require_tool(binary)


def _qemu_binaries(item: pytest.Item) -> set[str]:
    """The QEMU of each target a `qemu` test is parametrized with; qemu-system-arm when it
    names none."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    found = {TARGETS[value].qemu_binary for value in params.values()
             if isinstance(value, str) and value in TARGETS and TARGETS[value].qemu_binary}
    return found or {"qemu-system-arm"}


@pytest.fixture(scope="session", autouse=True)
def _reuse_builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Model builds share one configured build directory per (target, sanitize) for this
    session and xdist worker, so each model costs a ninja run, not a meson setup."""
    verify.reuse_builds_under(tmp_path_factory.mktemp("builds"))
    yield
    verify.reuse_builds_under(None)


@pytest.fixture(scope="session")
def require() -> Callable[[bool, str], None]:
    """`require(condition, reason)`: fail under CI, skip elsewhere, when not `condition`."""
    return policy.require


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return policy.REPO_ROOT


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """`<repo>/../shared/models`, the real third-party models (required)."""
    return policy.require_dir(policy.SHARED_MODELS)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Directory for models the TensorFlow factories generate (see support.models)."""
    path = cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path

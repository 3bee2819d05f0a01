"""Harness firmware: build a hand-written fake model, run it on the host and under QEMU.

The fake model has three inputs and three outputs of mixed types (declared in a different
order than the inputs) so the glue's buffer tables and the sample framing are exercised;
its expected outputs are computed with numpy and compared byte for byte.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from codegen.build import build_firmware, check_toolchain
from codegen.emit import render
from codegen.errors import CodegenError
from codegen.runner import run_firmware
from codegen.targets import TARGETS, Target, cross_file_text, get_target

A_LEN, B_LEN, C_LEN = 37, 5, 3

Built = tuple[Path, Target]
Builder = Callable[[str], Built]

FAKE_H = """\
#ifndef FAKE_H
#define FAKE_H
#include <stdint.h>
int fake_invoke(const int8_t *a, const float *b, const uint8_t *c,
                int8_t *doubled, uint8_t *inverted, float *halved);
#endif
"""

# a[0] == -128 selects a misbehaviour by a[1]: 0 -> status 5, 1 -> spin, 2 -> trap.
FAKE_C = f"""\
#include "fake.h"

static int misbehave(int8_t how)
{{
    volatile int spin = 1;
    if (how == 1) {{
        while (spin) {{
        }}
    }}
    if (how == 2) {{
        __builtin_trap();
    }}
    return 5;
}}

int fake_invoke(const int8_t *a, const float *b, const uint8_t *c,
                int8_t *doubled, uint8_t *inverted, float *halved)
{{
    int i;
    if (a[0] == -128) {{
        return misbehave(a[1]);
    }}
    for (i = 0; i < {A_LEN}; ++i) {{
        int v = 2 * a[i];
        doubled[i] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
    }}
    for (i = 0; i < {C_LEN}; ++i) {{
        inverted[i] = (uint8_t)(255 - c[i]);
    }}
    for (i = 0; i < {B_LEN}; ++i) {{
        halved[i] = b[i] * 0.5f;
    }}
    return 0;
}}
"""


def require_toolchain(target: Target, *, cc: str | None = None) -> None:
    """Skip when the target's tools are missing, except on CI (CI=true), where it fails."""
    try:
        check_toolchain(target, cc=cc)
    except CodegenError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"toolchain missing on CI: {error}")
        pytest.skip(str(error))


def write_fake_model(directory: Path, source: str = FAKE_C) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fake.h").write_text(FAKE_H)
    (directory / "fake.c").write_text(source)
    glue = render(
        "harness_glue.c.j2",
        name="fake",
        inputs=[
            {"c_type": "int8_t", "elements": A_LEN},
            {"c_type": "float", "elements": B_LEN},
            {"c_type": "uint8_t", "elements": C_LEN},
        ],
        outputs=[
            {"c_type": "int8_t", "elements": A_LEN},
            {"c_type": "uint8_t", "elements": C_LEN},
            {"c_type": "float", "elements": B_LEN},
        ],
    )
    (directory / "harness_glue.c").write_text(glue)
    return directory


@dataclass(frozen=True)
class Batch:
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray

    def input_bytes(self) -> bytes:
        return np.hstack([self.a.view(np.uint8), self.b.view(np.uint8), self.c]).tobytes()

    def expected_bytes(self) -> bytes:
        doubled = np.clip(self.a.astype(np.int16) * 2, -128, 127).astype(np.int8)
        inverted = (255 - self.c).astype(np.uint8)
        halved = self.b * np.float32(0.5)
        return np.hstack([doubled.view(np.uint8), inverted, halved.view(np.uint8)]).tobytes()


def random_batch(samples: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        a=rng.integers(-127, 128, size=(samples, A_LEN), dtype=np.int8),  # -128 is a sentinel
        b=(rng.standard_normal((samples, B_LEN)) * 1000).astype(np.float32),
        c=rng.integers(0, 256, size=(samples, C_LEN), dtype=np.uint8),
    )


def sentinel_sample(how: int) -> bytes:
    batch = random_batch(1, seed=how)
    batch.a[0, :2] = (-128, how)
    return batch.input_bytes()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_model(tmp_path_factory.mktemp("fake"))


@pytest.fixture(scope="module")
def build_for(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """Builds the fake model's harness once per target for this module."""
    cache: dict[str, Built] = {}

    def build(name: str) -> Built:
        if name not in cache:
            target = get_target(name)
            require_toolchain(target)
            build_dir = tmp_path_factory.mktemp(f"build-{name}")
            cache[name] = build_firmware(model_dir, "fake", target, build_dir), target
        return cache[name]

    return build


@pytest.fixture(params=["host", pytest.param("cortex-m4", marks=pytest.mark.qemu)])
def built(request: pytest.FixtureRequest, build_for: Builder) -> Built:
    return build_for(request.param)


@pytest.fixture
def built_m4(build_for: Builder) -> Built:
    return build_for("cortex-m4")


def test_batch_matches_numpy(built: Built) -> None:
    executable, target = built
    batch = random_batch(100)
    assert run_firmware(executable, target, batch.input_bytes()) == batch.expected_bytes()


def test_empty_input_gives_empty_output(built: Built) -> None:
    executable, target = built
    assert run_firmware(executable, target, b"") == b""


def test_invoke_failure_is_reported(built: Built) -> None:
    executable, target = built
    data = random_batch(2).input_bytes() + sentinel_sample(0)
    with pytest.raises(CodegenError, match=r"sample 2: model invoke failed with status 5"):
        run_firmware(executable, target, data)


def test_partial_sample_is_reported(built: Built) -> None:
    executable, target = built
    data = random_batch(3).input_bytes()[:-1]
    sample_bytes = A_LEN + 4 * B_LEN + C_LEN
    with pytest.raises(CodegenError,
                       match=rf"sample 2: partial sample .*\({sample_bytes - 1} of {sample_bytes}"):
        run_firmware(executable, target, data)


def test_hang_times_out(built: Built) -> None:
    executable, target = built
    with pytest.raises(CodegenError, match=r"timed out after 2 s"):
        run_firmware(executable, target, sentinel_sample(1), timeout=2)


@pytest.mark.qemu
def test_fault_handler_reports_and_exits_nonzero(built_m4: Built) -> None:
    executable, target = built_m4
    with pytest.raises(CodegenError, match=r"exit status 70: fault: HardFault"):
        run_firmware(executable, target, sentinel_sample(2))


@pytest.mark.qemu
def test_icount_run_matches(built_m4: Built) -> None:
    executable, target = built_m4
    batch = random_batch(10, seed=3)
    output = run_firmware(executable, target, batch.input_bytes(), icount=True)
    assert output == batch.expected_bytes()


@pytest.mark.parametrize("cc", [None, "clang"])
def test_host_sanitized_build(model_dir: Path, tmp_path: Path, cc: str | None) -> None:
    if cc is not None and shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    target = get_target("host")
    require_toolchain(target, cc=cc)
    executable = build_firmware(model_dir, "fake", target, tmp_path, sanitize=True, cc=cc)
    batch = random_batch(100, seed=1)
    assert run_firmware(executable, target, batch.input_bytes()) == batch.expected_bytes()


def test_compile_error_names_the_log(tmp_path: Path) -> None:
    target = get_target("host")
    require_toolchain(target)
    broken = write_fake_model(tmp_path / "model", FAKE_C.replace("return 0;", "return zero;"))
    with pytest.raises(CodegenError, match=r"error: .*zero.*full log: .*build\.log") as caught:
        build_firmware(broken, "fake", target, tmp_path / "build")
    assert "\n" not in str(caught.value)
    assert "zero" in (tmp_path / "build" / "build.log").read_text()


def test_rebuild_in_same_dir_with_other_options(model_dir: Path, tmp_path: Path) -> None:
    target = get_target("host")
    require_toolchain(target)
    first = build_firmware(model_dir, "fake", target, tmp_path, optimization="0")
    second = build_firmware(model_dir, "fake", target, tmp_path, optimization="s")
    assert first == second and second.is_file()


def test_get_target_lists_valid_names() -> None:
    with pytest.raises(CodegenError, match=r"unknown target 'cortex-m99'.*host, cortex-m4"):
        get_target("cortex-m99")
    assert get_target("cortex-m4") is TARGETS["cortex-m4"]


def test_cross_file_comes_from_the_target() -> None:
    text = cross_file_text(get_target("cortex-m4"))
    assert "c = 'arm-none-eabi-gcc'" in text
    assert "'-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=hard', '-mfpu=fpv4-sp-d16'" in text
    assert "skip_sanity_check = true" in text
    with pytest.raises(CodegenError):
        cross_file_text(get_target("host"))

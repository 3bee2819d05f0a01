"""NAME_invoke_with_arena is reentrant: threads that each own an arena run one model at the
same time, interleaved, with different inputs, and every output equals the numpy reference
(computed in Python, not by the code under test). Once built plainly, once under
ThreadSanitizer, which also reports any access to shared mutable state."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.policy import REPO_ROOT, SHARED_MODELS, require_file, require_tool
from support.verify import random_inputs

from codegen.emit import EmitOptions, emit_model, io_tensors
from codegen.execute import execute
from codegen.program import Program, load_program

THREADS = 4
SAMPLES = 6  # distinct inputs; thread t starts at sample t, so threads differ at each step

MODELS = {
    "ad01": lambda: require_file(SHARED_MODELS / "ad01_int8.tflite"),
    "demo_mlp": lambda: REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite",
    "kws": lambda: require_file(SHARED_MODELS / "kws_ref_model.tflite"),
}

MAIN = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

#define THREADS {threads}
#define SAMPLES {samples}
#define ROUNDS {rounds}

{buffers}
static pthread_barrier_t start;

struct job {{ int id; long mismatches; }};

static int read_all(const char *path, void *dst, size_t size)
{{
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(dst, 1, size, f) : 0;
    if (f) fclose(f);
    return got == size ? 0 : -1;
}}

static void *worker(void *arg)
{{
    struct job *job = (struct job *)arg;
    /* Each thread owns its arena (malloc aligns to 16 >= NET_ARENA_ALIGNMENT). */
    void *arena = malloc(NET_ARENA_SIZE > 0 ? NET_ARENA_SIZE : 1);
{locals}
    if (arena == NULL || got == NULL) return NULL;
    pthread_barrier_wait(&start);
    for (long r = 0; r < ROUNDS; ++r) {{
        const int s = (int)((r + job->id) % SAMPLES);
        memset(arena, 0xA5 ^ job->id, NET_ARENA_SIZE > 0 ? NET_ARENA_SIZE : 1);
        net_invoke_with_arena(arena{call_args});
{compare}
    }}
    free(got);
    free(arena);
    return NULL;
}}

int main(int argc, char **argv)
{{
    pthread_t threads[THREADS];
    struct job jobs[THREADS];
    long total = 0;
    if (argc != 3) return 2;
{reads}
    pthread_barrier_init(&start, NULL, THREADS);
    for (int t = 0; t < THREADS; ++t) {{
        jobs[t].id = t;
        jobs[t].mismatches = 0;
        pthread_create(&threads[t], NULL, worker, &jobs[t]);
    }}
    for (int t = 0; t < THREADS; ++t) {{
        pthread_join(threads[t], NULL);
        total += jobs[t].mismatches;
    }}
    pthread_barrier_destroy(&start);
    printf("%ld mismatches\n", total);
    return total != 0;
}}
"""


def _program_text(program: Program, rounds: int) -> str:
    (x,), (y,) = io_tensors(program)  # the models here have one input and one output
    buffers = [f"static {x.c_type} inputs[SAMPLES][{x.tensor.size}];",
               f"static {y.c_type} expected[SAMPLES][{y.tensor.size}];"]
    return MAIN.format(
        threads=THREADS, samples=SAMPLES, rounds=rounds, buffers="\n".join(buffers),
        locals=f"    {y.c_type} *got = malloc(sizeof expected[0]);",
        call_args=", inputs[s], got",
        compare="        if (memcmp(got, expected[s], sizeof expected[0]) != 0) "
                "++job->mismatches;",
        reads="    if (read_all(argv[1], inputs, sizeof inputs) != 0) return 3;\n"
              "    if (read_all(argv[2], expected, sizeof expected) != 0) return 3;")


@pytest.fixture(scope="module", params=sorted(MODELS))
def prepared(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Program]:
    program = load_program(MODELS[request.param]())
    directory = tmp_path_factory.mktemp(request.param)
    files = emit_model(program, "net", EmitOptions(static_arena=False))
    for name, text in files.items():
        (directory / name).write_text(text)
    inputs = random_inputs(program, SAMPLES, seed=11)
    expected = execute(program, "reference", inputs)  # the numpy reference, not the C
    (directory / "inputs.bin").write_bytes(np.ascontiguousarray(inputs[0]).tobytes())
    (directory / "expected.bin").write_bytes(np.ascontiguousarray(expected[0]).tobytes())
    assert "net_invoke(" not in files["net.c"]  # only the caller-arena entry point
    return directory, program


def _build_and_run(directory: Path, program: Program, compiler: str, flags: list[str],
                   rounds: int, tag: str) -> None:
    main = directory / f"main_{tag}.c"
    main.write_text(_program_text(program, rounds))
    exe = directory / f"threads_{tag}"
    subprocess.run([compiler, "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra",
                    "-Werror", *flags, "-I", str(directory), str(directory / "net.c"),
                    str(main), "-o", str(exe), "-pthread"], check=True, capture_output=True,
                   timeout=600)
    result = subprocess.run([str(exe), str(directory / "inputs.bin"),
                             str(directory / "expected.bin")], capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "0 mismatches"
    assert "ThreadSanitizer" not in result.stderr, result.stderr


def test_threads_with_own_arenas(prepared: tuple[Path, Program]) -> None:
    directory, program = prepared
    # About 1e9 multiply-accumulates per thread, so that the threads' invokes overlap.
    rounds = int(np.clip(1e9 / max(program.macs, 1), 100, 20000))
    _build_and_run(directory, program, require_tool("cc"), ["-O2"], rounds=rounds, tag="plain")


@pytest.mark.parametrize("compiler", ["clang", "gcc"])
def test_threads_under_thread_sanitizer(prepared: tuple[Path, Program], compiler: str) -> None:
    directory, program = prepared
    _build_and_run(directory, program, require_tool(compiler),
                   ["-O1", "-g", "-fsanitize=thread"], rounds=30, tag=f"tsan_{compiler}")

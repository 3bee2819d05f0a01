"""codegen.emit.share: a function kernels define through it is emitted once per file for
each text (every character of it but the name), later kernels' names #defined to the
first's; any other text is a function of its own (tests/test_ops_fast_conv_few.py and
tests/test_patch.py check the few-channel row function that uses it in whole files)."""

from __future__ import annotations

from collections.abc import Callable

from codegen.emit import share, sharing


def _function(body: str) -> Callable[[str], str]:
    """A function's text under a given name, as a template's macro renders it."""
    return lambda name: f"static void {name}(int32_t *x)\n{{\n    {body}\n}}\n"


def test_each_text_once_under_the_first_name() -> None:
    # texts of one length differing in a single character, next to their end
    one, two = _function("x[0] = 1;"), _function("x[0] = 2;")
    functions: dict[str, str] = {}
    with sharing(functions):
        texts = [share("f_a", one), share("f_b", two), share("f_c", one), share("f_d", two)]
    assert texts == [one("f_a"), two("f_b"),
                     "/* the same text as f_a: defined once */\n#define f_c f_a\n",
                     "/* the same text as f_b: defined once */\n#define f_d f_b\n"]
    assert sorted(functions.values()) == ["f_a", "f_b"]


def test_files_and_kernels_alone_define_their_own() -> None:
    """A new record (another rendering of the file) defines the text again; a kernel
    rendered outside `sharing` always gets its definition."""
    one = _function("x[0] = 1;")
    for _ in range(2):
        with sharing({}):
            assert share("f_a", one) == one("f_a")
            assert share("f_b", one).endswith("#define f_b f_a\n")
    assert share("f_b", one) == one("f_b")

"""Text bound for a terminal, made harmless.

Tensor names, custom operator codes, Keras layer names and file names come from files the
user did not necessarily write. Printed raw, they could drive the terminal: clear the screen,
set the window title, write to the clipboard (OSC 52), move the cursor back over what was
printed (CR, CSI), or reorder the text with bidi overrides. Every such character is shown as
an escape instead: `\\x1b`, `\\x9b`, `\\u202e`, and `\\xff` for a byte of a file name that is
not UTF-8. A character is kept when Python calls it printable (letters, digits,
punctuation, symbols and the space of every script).

- `shown(text)`: one string inside a line (a name): newlines and tabs are escaped too;
- `one_line(text)`: a message on one line: whitespace runs become one space;
- `EscapingStream`: what the CLI puts in place of stdout, so that nothing a command prints
  reaches the terminal raw (newlines and tabs pass).
"""

from __future__ import annotations

import re
from typing import Any, TextIO

_ASCII_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_ASCII_PRINTABLE_OR_LAYOUT = re.compile(r"[^\n\t\x20-\x7e]")


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    if c.isprintable():
        return c
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (a file name, surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(text: str) -> str:
    """`text` with every non-printable character (controls, format characters such as
    bidi overrides and zero-width ones, line separators, newline and tab) escaped."""
    return _ASCII_PRINTABLE.sub(_escape, text)


def one_line(text: str) -> str:
    """A message on one line: whitespace runs as one space, other controls escaped."""
    return shown(" ".join(text.split()))


def block(text: str) -> str:
    """Multi-line text for a terminal: newlines and tabs kept, every other control
    character escaped."""
    return _ASCII_PRINTABLE_OR_LAYOUT.sub(_escape, text)


class EscapingStream:
    """A text stream that writes `block(text)` to the stream it wraps (and falls back to
    backslash escapes for characters the stream's encoding cannot hold)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        safe = block(text)
        try:
            self._stream.write(safe)
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            self._stream.write(safe.encode(encoding, "backslashreplace").decode(encoding))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

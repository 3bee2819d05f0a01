"""A progress bar for long work, drawn on stderr only when stderr is a terminal.

    with Progress("calibrating", total=len(samples)) as bar:
        for sample in samples:
            ...
            bar.advance()

When stderr is not a terminal (a pipe, a file, CI) nothing is written at all, so logs stay
clean. Redraws are throttled to a few per second; the bar is erased when the work ends.
`note(line)` prints a line above the bar. With `tick`, the bar is also redrawn every `tick`
seconds from a thread of its own, so that the elapsed time moves during one long step.
No dependency beyond the standard library.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

_REDRAW_SECONDS = 0.1


class Progress:
    """`total` steps of work named `label`; `total=None` shows a counter without a bar."""

    def __init__(self, label: str, total: int | None = None, *,
                 stream: TextIO | None = None, enabled: bool | None = None,
                 tick: float | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if enabled and tick is not None:
            self._ticker = threading.Thread(target=self._tick, args=(tick,), daemon=True)

    def __enter__(self) -> Progress:
        self._draw(force=True)
        if self._ticker is not None:
            self._ticker.start()
        return self

    def _tick(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self._draw(force=True)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        self._draw(force=self.total is not None and self.done >= self.total)

    def set_label(self, label: str) -> None:
        self.label = label
        self._draw(force=True)

    def note(self, line: str) -> None:
        """Print `line` on stderr (where the bar is, when there is one) and redraw the bar
        below it."""
        with self._lock:
            if self.enabled and self._drawn:
                self.stream.write("\r\x1b[K")
            self.stream.write(line + "\n")
            self.stream.flush()
            self._drawn = False
            self._draw(force=True)

    def line(self) -> str:
        """The text of the bar for a terminal `width` columns wide. The label is shown with
        every character that is not printable (a terminal escape in a model's file name)
        as '?'."""
        width = shutil.get_terminal_size((80, 24)).columns
        elapsed = time.monotonic() - self._start
        label = "".join(c if c.isprintable() else "?" for c in self.label)
        if self.total:
            fraction = min(1.0, self.done / self.total)
            counter = f" {self.done}/{self.total} {elapsed:5.1f}s"
            room = max(10, min(40, width - len(label) - len(counter) - 4))
            filled = round(fraction * room)
            return f"{label} [{'#' * filled}{'.' * (room - filled)}]{counter}"
        return f"{label} {elapsed:5.1f}s" if self.done == 0 else \
            f"{label} {self.done} {elapsed:5.1f}s"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled or self._stop.is_set():
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_draw < _REDRAW_SECONDS:
                return
            self._last_draw = now
            width = shutil.get_terminal_size((80, 24)).columns
            self.stream.write("\r" + self.line()[: width - 1] + "\x1b[K")
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None and self._ticker.is_alive():
            self._ticker.join()
        with self._lock:
            if self.enabled and self._drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._drawn = False


def track(items: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    """Yield `items`, advancing a Progress bar by one per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(label, total) as bar:
        for item in items:
            yield item
            bar.advance()

"""Where the non-Python parts of the tool live: templates, firmware sources, meson.build.

In a source checkout (and an editable install) they sit at the repository root beside the
package; a wheel carries them under `codegen/_data`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_root() -> Path:
    """Directory holding `templates/`, `firmware/` and `meson.build`."""
    for candidate in (_PACKAGE_DIR / "_data", _PACKAGE_DIR.parent):
        if (candidate / "templates").is_dir() and (candidate / "meson.build").is_file():
            return candidate
    raise FileNotFoundError("codegen installation is incomplete: templates/ not found")


def templates_dir() -> Path:
    return data_root() / "templates"


def firmware_dir() -> Path:
    return data_root() / "firmware"

"""Reading the user's sample arrays: a .npy for a model with one input, an .npz keyed by
input name for several. Shared by `codegen run`, `quantize` and `report`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from codegen.errors import CodegenError


def load_named_arrays(path: Path, names: list[str], what: str) -> list[np.ndarray]:
    """One array per name, in order. A .npy serves a single name; an .npz must hold every
    name (or, for a single name, just one array under any key). One-line errors."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CodegenError(f"{what} {path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CodegenError(f"{what} {path}: not a readable .npy/.npz file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        if len(names) != 1:
            raise CodegenError(
                f"the model has {len(names)} inputs; give the {what} as an .npz keyed by "
                f"{', '.join(names)}"
            )
        return [loaded]
    with loaded:
        files = list(loaded.files)
        if len(names) == 1 and len(files) == 1:
            return [loaded[files[0]]]
        missing = [n for n in names if n not in files]
        if missing:
            raise CodegenError(f"{what} {path} has no array named '{missing[0]}' (has {files})")
        return [loaded[n] for n in names]

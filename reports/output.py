"""All-or-nothing output sets: every file of a report or a lesson is written, or none is.

The contents are made in memory first; they are written into a staging folder beside the target
and only then moved into place (one rename per file, on the same file system). A failure while
making or staging leaves the target as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_all(out: str | Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Write ``files`` (path relative to ``out`` -> bytes) into ``out``; return their paths.

    Raises
    ------
    OSError
        If ``out`` cannot be created or written (nothing of the set is left behind).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        for rel, data in files.items():
            p = stage / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            os.chmod(p, 0o666 & ~umask)  # readable like any file the user creates
        for rel in files:  # every target must be placeable before any is moved
            target = out / rel
            for parent in target.relative_to(out).parents:
                if (out / parent).exists() and not (out / parent).is_dir():
                    raise NotADirectoryError(f"{out / parent} is not a folder (cannot write {target})")
            if target.is_dir():
                raise IsADirectoryError(f"{target} is a folder")
        paths = {}
        for rel in files:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, target)
            paths[rel] = target
        return paths
    finally:
        shutil.rmtree(stage, ignore_errors=True)

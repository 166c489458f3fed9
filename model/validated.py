"""Which file contents have been validated already: a record, addressed by content, in the cache folder.

The files an answer reads besides the fit's draws (``decision.yaml``, ``actions.yaml``) are validated by
their pydantic models and the rules between files (:mod:`palsy.model.file_models`,
:mod:`palsy.model.crossref`). Importing pydantic costs a noticeable part of a warm query, so a loader
validates a content once and records it here; a later query that reads the same bytes, against the same
schema, causes and references, with the same validating code, trusts them without importing pydantic.

A record is an empty file ``<cache>/validated/<sha256>`` whose name hashes the validating code, the kind
of file and every input of its rules. Recording is best effort: a cache that cannot be written only means
the next query validates again. Standard library only.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

#: The sources whose rules a record vouches for (relative to palsy's ``model`` folder).
RULE_SOURCES = ("file_models/__init__.py", "file_models/base.py", "file_models/schema_file.py",
                "file_models/evidence_files.py", "file_models/rates_file.py", "file_models/care_files.py",
                "crossref.py", "validated.py", "guidance.py", "decision.py", "findings.py", "schema.py", "safe_yaml.py")
FOLDER = "validated"


@functools.cache
def rules_hash() -> str:
    """SHA-256 of the validating code (a change to any rule invalidates every record)."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in RULE_SOURCES:
        h.update(name.encode())
        try:
            h.update((here / name).read_bytes())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


def key(kind: str, *parts: bytes | str | None) -> str:
    """The record's name for a file of ``kind`` validated with these inputs (bytes of files, hashes, names)."""
    h = hashlib.sha256(rules_hash().encode())
    h.update(kind.encode())
    for p in parts:
        h.update(b"\x00" + (b"<none>" if p is None else p if isinstance(p, bytes) else p.encode("utf-8", "surrogatepass")))
    return h.hexdigest()


def _folder() -> Path:
    from palsy.model import cache

    return cache.root() / FOLDER


def seen(record: str) -> bool:
    """Whether content with this record's inputs was validated before."""
    try:
        return (_folder() / record).is_file()
    except OSError:
        return False


def remember(record: str) -> None:
    """Record that content with these inputs is valid (best effort: an unwritable cache is not an error)."""
    try:
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / record, os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
    except OSError:
        pass


def file_bytes(path: str | Path) -> bytes | None:
    """The bytes of a file a rule reads (None when it does not exist or cannot be read): part of a key."""
    try:
        from palsy.model import safe_yaml

        return safe_yaml.read_bytes(path)
    except (OSError, ValueError):
        return None

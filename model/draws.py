"""Posterior draws as the answer needs them: ``draws.npz`` (numpy only, no PyMC on this path).

Arrays have a leading ``sample`` dim (chains x draws flattened). ``meta`` records the variant, its
components, the evidence hash, the version, the seed, the diagnostics and the library's case ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import rates as R
from palsy.model import schema as SC
from palsy.model.safe_yaml import YAMLInputError, read_bytes

META_KEY = "__meta__"
RATES_PREFIX = "rates__"


class CorruptDraws(RuntimeError):
    """A draws file that is truncated, altered or unreadable."""


@dataclasses.dataclass(frozen=True)
class Draws:
    """Parameter draws (``sample`` first) and metadata."""

    params: dict[str, np.ndarray]
    meta: dict[str, Any]
    case_loglik: np.ndarray  # (case, sample), weighted by w_case: the case's pull on the posterior
    rates: dict[str, np.ndarray]  # the rate model's constant arrays (fields of model.rates.RateArrays)

    @property
    def n(self) -> int:
        return int(self.params["theta"].shape[0])

    @property
    def variant(self) -> str:
        return str(self.meta["variant"])

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.meta["components"])

    @property
    def causes(self) -> tuple[str, ...]:
        return tuple(self.meta["causes"])

    @property
    def component_causes(self) -> tuple[str, ...]:
        return tuple(self.meta["component_causes"])

    @property
    def schema(self) -> SC.Schema:
        """The finding schema the posterior was fitted with (kept in the metadata: no YAML is read)."""
        return SC.from_json(self.meta["schema"])

    @property
    def rate_arrays(self) -> R.RateArrays:
        """The rate model's constant arrays, as :mod:`palsy.model.likelihood` takes them."""
        return rate_arrays_from_dict(self.rates)

    def case_index(self, patient_id: str) -> int | None:
        """Index of the library case that is this patient (by id or alias), if any."""
        for i, (cid, aka) in enumerate(zip(self.meta["case_ids"], self.meta["case_aliases"], strict=True)):
            if patient_id == cid or patient_id in aka:
                return i
        return None

    def subset(self, idx: np.ndarray) -> "Draws":
        """The draws at sample indices ``idx`` (e.g. a thinned set for the browser)."""
        return Draws({k: v[idx] for k, v in self.params.items()}, self.meta, self.case_loglik[:, idx], self.rates)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: A temporary file older than this is stale even if its writer's process id is in use again.
STALE_SECONDS = 24 * 3600


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours
        return True
    return True


def clean_stale(folder: Path) -> list[Path]:
    """Remove the temporary files of writes that were killed (their process is gone, or they are
    older than :data:`STALE_SECONDS`); a write in progress in another process is left alone."""
    removed = []
    try:
        candidates = list(folder.glob(".*.tmp"))
    except OSError:
        return removed
    now = time.time()
    for tmp in candidates:
        parts = tmp.name.split(".")  # "", name, ext, pid, random, "tmp"
        pid = next((int(x) for x in reversed(parts[:-2]) if x.isdigit()), None)
        try:
            old = now - tmp.lstat().st_mtime > STALE_SECONDS
            if old or pid is None or not _alive(pid) or (pid == os.getpid() and now - tmp.lstat().st_mtime > 60):
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder and rename: no half-written file is seen.

    The temporary file's name carries the writer's process id (see :func:`clean_stale`). Whatever
    is in the way at ``path`` and is not a file (a folder) is removed first: the cache owns its paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def checksum_path(path: Path) -> Path:
    """The SHA-256 sidecar of ``path`` (``draws.sha256``, ``posterior.sha256``)."""
    return path.with_suffix(".sha256")


def write_checksum(path: Path) -> None:
    """Write ``path``'s SHA-256 sidecar (atomically)."""
    digest = _sha256(path)
    atomic_write(checksum_path(path), lambda tmp: tmp.write_text(digest))


def verify(path: Path) -> None:
    """Check ``path`` against its SHA-256 sidecar.

    Raises
    ------
    CorruptDraws
        If the file or its checksum is missing, not a file, unreadable, or they differ.
    """
    sidecar = checksum_path(path)
    try:  # a regular file of at most a few bytes (not a folder, a FIFO or a link to /dev/zero)
        expected = read_bytes(sidecar, limit=1024).decode("ascii").strip()
    except (YAMLInputError, UnicodeDecodeError) as exc:
        raise CorruptDraws(f"{sidecar}: missing or unreadable checksum ({exc})") from None
    if not path.is_file():  # a folder, a FIFO (which would block the read) or a device
        raise CorruptDraws(f"{path}: not a regular file")
    try:
        actual = _sha256(path)
    except OSError as exc:
        raise CorruptDraws(f"{path}: unreadable ({exc})") from None
    if actual != expected:
        raise CorruptDraws(f"{path}: checksum mismatch (truncated or altered)")


def save(path: Path, draws: Draws) -> None:
    """Save atomically, with a SHA-256 sidecar so corruption is detected on load."""
    meta = np.frombuffer(json.dumps(draws.meta).encode(), dtype=np.uint8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **draws.params, case_loglik=draws.case_loglik, **{META_KEY: meta},
                     **{RATES_PREFIX + k: v for k, v in draws.rates.items()})

    atomic_write(path, write)
    write_checksum(path)


def load(path: Path) -> Draws:
    """Load and verify ``draws.npz``.

    Raises
    ------
    CorruptDraws
        If the file or its checksum is missing, altered, truncated, not a file or unreadable.
    """
    verify(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except Exception as exc:  # any read failure means the file cannot be trusted
        raise CorruptDraws(f"{path}: unreadable ({exc})") from exc
    case_ll = arrays.pop("case_loglik")
    rates = {k[len(RATES_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(RATES_PREFIX)}
    return Draws(arrays, meta, case_ll, rates)


def rate_arrays_to_dict(r: R.RateArrays) -> dict[str, np.ndarray]:
    """The fields of a :class:`~palsy.model.rates.RateArrays` as plain arrays (for ``draws.npz``); a
    mapping field (one array per context finding) as ``field.finding``."""
    out = {}
    for f in dataclasses.fields(r):
        value = getattr(r, f.name)
        if isinstance(value, dict):
            out.update({f"{f.name}.{k}": np.asarray(v) for k, v in value.items()})
        else:
            out[f.name] = np.asarray(value)
    return out


def rate_arrays_from_dict(d: dict[str, np.ndarray]) -> R.RateArrays:
    """The inverse of :func:`rate_arrays_to_dict`."""
    kw: dict[str, object] = {}
    for f in dataclasses.fields(R.RateArrays):
        if f.name in d:
            v = d[f.name]
            kw[f.name] = int(v) if f.name == "n_causes" else tuple(str(x) for x in v) \
                if f.name.endswith("_names") or f.name == "context" else v
        else:
            kw[f.name] = {k.split(".", 1)[1]: v for k, v in d.items() if k.startswith(f"{f.name}.")}
    return R.RateArrays(**kw)

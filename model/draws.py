"""Posterior draws as the answer needs them: ``draws.npz`` (numpy only, no PyMC on this path).

Arrays have a leading ``sample`` dim (chains x draws flattened). ``meta`` records the variant, its
components, the evidence hash, the version, the seed, the diagnostics and the library's case ids. The file
also carries the rate model's tables of the draws (:func:`palsy.model.likelihood.strata_tables`, tens of
megabytes), written once at the fit so that each query reads them rather than computing them. In the
cache it also records its entry (:data:`ENTRY_KEY`): the entry's name (variant and cache key) and the size
and SHA-256 of every other file of the entry (``posterior.nc``), so that draws copied into another entry,
or an entry with a truncated netCDF, are refused (issue 21).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import likelihood as LK
from palsy.model import rates as R
from palsy.model import schema as SC
from palsy.model.safe_yaml import YAMLInputError, read_bytes

META_KEY = "__meta__"
RATES_PREFIX = "rates__"
#: The rate model's tables per draw (:func:`palsy.model.likelihood.strata_tables`), stored with the draws
STRATA_PREFIX = "strata__"
STRATA = ("log_prior", "p_sk", "share")
#: The key of ``meta`` that records the cache entry the draws were written into.
ENTRY_KEY = "cache_entry"
#: The files of a cache entry besides ``draws.npz``, each with its SHA-256 sidecar.
ENTRY_FILES = ("posterior.nc",)


class CorruptDraws(RuntimeError):
    """A draws file that is truncated, altered or unreadable."""


@dataclasses.dataclass(frozen=True)
class Draws:
    """Parameter draws (``sample`` first) and metadata."""

    params: dict[str, np.ndarray]
    meta: dict[str, Any]
    case_loglik: np.ndarray  # (case, sample), weighted by w_case: the case's pull on the posterior
    rates: dict[str, np.ndarray]  # the rate model's constant arrays (fields of model.rates.RateArrays)
    #: the rate model's tables as stored with the draws (``draws.npz``), with the ``params`` and ``rates`` they
    #: were computed from: a copy with other parameters or rates (``dataclasses.replace``) computes its own
    strata: tuple[dict, dict, tuple[np.ndarray, ...]] | None = dataclasses.field(default=None, compare=False,
                                                                                  repr=False)

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

    def stored_strata(self) -> tuple[np.ndarray, ...] | None:
        """The rate model's tables of these draws as stored with them (log P(cause), P(stratum, component |
        cause), the strata's shares: :func:`palsy.model.likelihood.strata_tables`), or None when they are
        not stored or were stored for other parameters."""
        if self.strata is None or self.strata[0] is not self.params or self.strata[1] is not self.rates:
            return None
        return self.strata[2]

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


def clean_stale(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files of writes that were killed (their process is gone, or they are
    older than :data:`STALE_SECONDS`); a write in progress in another process is left alone. With
    ``name``, only the temporary files of writes to that file (a folder palsy does not own)."""
    removed = []
    try:
        candidates = list(folder.glob(f".{glob_escape(name)}.*.tmp" if name else ".*.tmp"))
    except OSError:
        return removed
    now = time.time()
    for tmp in candidates:
        parts = tmp.name.split(".")  # "", name, ext, pid, random, "tmp"
        pid = next((int(x) for x in reversed(parts[:-2]) if x.isdigit()), None)
        if name is not None and pid is None:
            continue
        try:
            old = now - tmp.lstat().st_mtime > STALE_SECONDS
            if old or pid is None or not _alive(pid) or (pid == os.getpid() and now - tmp.lstat().st_mtime > 60):
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters taken literally."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file name when it has none (a failed write names no file)."""
    if exc.filename is not None:
        return exc
    named = type(exc)(exc.errno, exc.strerror or str(exc), str(path))
    named.__cause__ = exc
    return named


def atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder and rename: no half-written file is seen.

    The temporary file's name carries the writer's process id (see :func:`clean_stale`; those of this
    file left by killed writers are removed first). Whatever is in the way at ``path`` and is not a file
    (a folder) is removed first: the cache owns its paths.

    Raises
    ------
    OSError
        With ``path`` as its file name (a full disk, an I/O error, no permission); nothing is left behind.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path.parent, path.name)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise _named(exc, path) from None
    try:
        write(Path(tmp))
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise _named(exc, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`), flushed to the disk before the
    rename. Every file of the cache is written through here (the one place a failing disk is met)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write)


def checksum_path(path: Path) -> Path:
    """The SHA-256 sidecar of ``path`` (``draws.sha256``, ``posterior.sha256``)."""
    return path.with_suffix(".sha256")


def write_checksum(path: Path) -> None:
    """Write ``path``'s SHA-256 sidecar (atomically)."""
    write_bytes(checksum_path(path), _sha256(path).encode("ascii"))


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


#: Cache entries (folders) where a write failed in this process: the rest of the entry is not written.
failed_writes: dict[Path, OSError] = {}


def _entry_record(folder: Path) -> dict[str, Any]:
    """What ``draws.npz`` records of its entry: the folder's name (variant and key) and each other file's
    size and SHA-256 (read from its sidecar, written just before)."""
    files = {}
    for name in ENTRY_FILES:
        f = folder / name
        if f.is_file() and checksum_path(f).is_file():
            files[name] = {"size": f.stat().st_size, "sha256": checksum_path(f).read_text().strip()}
    return {"name": folder.name, "files": files}


def save(path: Path, draws: Draws) -> bool:
    """Save atomically, with a SHA-256 sidecar so corruption is detected on load, recording the entry
    (the folder) it is written into and the other files of that entry (:data:`ENTRY_KEY`).

    A failed write (a full disk, an I/O error, no permission) is warned about once, naming the path,
    leaves nothing of ``draws.npz`` behind and returns False: the cache is an optimisation, never a
    reason to lose the draws just computed. After a failed write of another file of the entry in this
    process (:data:`failed_writes`) nothing is written.

    Returns
    -------
    bool
        Whether ``draws.npz`` and its checksum were written.
    """
    if path.parent in failed_writes:
        return False
    meta = {**draws.meta, ENTRY_KEY: _entry_record(path.parent)}
    # every later query reads the rate model's tables instead of computing them (about 0.2-0.3 s a variant)
    strata = draws.stored_strata() or LK.strata_tables(draws.params, draws.rate_arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **draws.params, case_loglik=draws.case_loglik,
             **{META_KEY: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)},
             **{RATES_PREFIX + k: v for k, v in draws.rates.items()},
             **{STRATA_PREFIX + k: v for k, v in zip(STRATA, strata, strict=True)})
    try:
        write_bytes(path, buffer.getbuffer())
        write_checksum(path)
    except OSError as exc:
        cache_write_failed(path.parent, exc)
        for f in (path, checksum_path(path)):
            with contextlib.suppress(OSError):
                f.unlink()
        return False
    return True


def cache_write_failed(folder: Path, exc: OSError) -> None:
    """Record and warn (once per entry) that a file of the cache entry ``folder`` could not be written."""
    if folder in failed_writes:
        return
    failed_writes[folder] = exc
    warnings.warn(f"palsy: cannot write the cache entry: {exc.filename or folder}: {exc.strerror or exc}; "
                  f"the posterior is computed but not cached (the next query fits again)", stacklevel=3)


def load(path: Path, *, check_entry: bool = True) -> Draws:
    """Load and verify ``draws.npz``.

    With ``check_entry`` (the cache's reads), the draws must record the entry they are in: the folder's
    name (variant and cache key) and each other file of the entry present with its recorded size
    (:func:`verify_entry` also checks their contents).

    Raises
    ------
    CorruptDraws
        If the file or its checksum is missing, altered, truncated, not a file or unreadable, or (with
        ``check_entry``) it was written into another entry or an entry file is missing or truncated.
    """
    verify(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except Exception as exc:  # any read failure means the file cannot be trusted
        raise CorruptDraws(f"{path}: unreadable ({exc})") from exc
    if check_entry:
        _check_entry(path, meta)
    case_ll = arrays.pop("case_loglik")
    rates = {k[len(RATES_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(RATES_PREFIX)}
    strata = {k[len(STRATA_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(STRATA_PREFIX)}
    for a in strata.values():  # every Tables of these draws shares them: none may change them in place
        a.setflags(write=False)
    stored = (arrays, rates, tuple(strata[k] for k in STRATA)) if set(strata) == set(STRATA) else None
    return Draws(arrays, meta, case_ll, rates, stored)


def _check_entry(path: Path, meta: dict[str, Any]) -> None:
    entry = meta.get(ENTRY_KEY)
    folder = path.parent
    if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
        raise CorruptDraws(f"{path}: records no cache entry (written by another version of palsy?)")
    if entry.get("name") != folder.name or not folder.name.startswith(f"{meta.get('variant')}-"):
        raise CorruptDraws(f"{path}: the draws of entry {entry.get('name')!r} (variant {meta.get('variant')!r}), "
                           f"found in entry {folder.name!r}")
    for name in ENTRY_FILES:
        want = entry["files"].get(name)
        f = folder / name
        if not isinstance(want, dict):
            raise CorruptDraws(f"{path}: records no {name} for its entry")
        try:
            size = f.stat().st_size if f.is_file() else None
        except OSError:
            size = None
        if size != want.get("size"):
            raise CorruptDraws(f"{f}: missing, not a file or truncated ({size} bytes; {want.get('size')} recorded)")


def verify_entry(folder: Path) -> Draws:
    """Load the draws of the cache entry ``folder`` and verify every file of it: ``draws.npz`` and each
    other file against its checksum sidecar and against the checksum ``draws.npz`` recorded.

    Raises
    ------
    CorruptDraws
        Naming the file that cannot be trusted.
    """
    draws = load(folder / "draws.npz")
    for name in ENTRY_FILES:  # the names palsy writes (never a path the metadata would name)
        want = draws.meta[ENTRY_KEY]["files"][name]
        verify(folder / name)
        if checksum_path(folder / name).read_text().strip() != want.get("sha256"):
            raise CorruptDraws(f"{folder / name}: not the file its draws were written with (checksum differs)")
    return draws


def remove_entry(folder: Path) -> list[Path]:
    """Remove the files of the cache entry ``folder`` (those it can; a corrupt entry is not kept)."""
    removed = []
    for name in ("draws.npz", *ENTRY_FILES):
        for f in (folder / name, checksum_path(folder / name)):
            try:
                if f.is_dir() and not f.is_symlink():
                    shutil.rmtree(f)
                elif f.exists() or f.is_symlink():
                    f.unlink()
                else:
                    continue
                removed.append(f)
            except OSError:
                continue
    return removed


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

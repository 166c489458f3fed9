"""The content-addressed posterior cache under ``$PALSY_CACHE`` (default: the platform's cache folder,
``~/.cache/palsy`` on Linux, from platformdirs).

The key hashes everything that changes the draws: the evidence files, the variant, the sampler
settings, the package version, the source of every module of ``model/`` the fit imports
(:data:`MODEL_SOURCES`: all of them but those proven not to, :data:`NOT_FIT`), and the versions of the libraries that
compute the draws (PyMC, PyTensor, BlackJAX, JAX, nutpie, numba, NumPy, SciPy), the Python version and the machine
type. The library versions are read from the installed distributions' metadata folders: a warm
query never imports PyMC (nor ``importlib.metadata``, whose import alone costs about 0.2 s).
Standard library only on the warm path (platformdirs when ``PALSY_CACHE`` is not set; filelock and
the JAX cache check only before a fit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from palsy.model import __version__

DEFAULT_SEED = 20261122


#: The NUTS samplers a fit may use (:mod:`palsy.model.nuts`); the first is the default.
SAMPLERS = ("blackjax", "nutpie")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sampler settings that are part of the cache key."""

    draws: int = 1000  # kept per chain
    tune: int = 1000
    chains: int = 4
    seed: int = DEFAULT_SEED
    synthesis: bool = True  # random effects, case selection and orderings (False: the plain configuration)
    sampler: str = SAMPLERS[0]  # model.nuts runs them
    #: NUTS transitions per kept draw. The between-study spread tau mixes slowest: with every transition kept
    #: its bulk ESS sat at 930-1,050 for 4,000 draws, across the fit's bar of 1,000 with any small change of
    #: the evidence; two transitions per draw gave 1,600 for the same 4,000 draws (6 December, a subtype fit),
    #: for about 2 s more of sampling (the compile dominates). Thinning loses some information against keeping
    #: every transition, but every patient's answer costs in proportion to the draws kept (docs/service.md), so
    #: the answers keep 4,000.
    thin: int = 2

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler {self.sampler!r} is not allowed; allowed: {', '.join(SAMPLERS)}")
        if self.thin < 1:
            raise ValueError(f"thin {self.thin!r} is not allowed; allowed: a whole number >= 1")


class CacheError(ValueError):
    """``$PALSY_CACHE`` cannot hold a fit (a file, an unwritable folder): bad input, exit status 2."""


#: Errors of a disk rather than of a path: the cache is then skipped with a warning, never fatal.
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})
#: Free space below which a fit is warned, before it starts, that it may not be cached (a fit's entry
#: takes about 30 MB, its JAX programs a few MB).
MIN_FREE_BYTES = 100 * 2**20


def root() -> Path:
    """The cache folder: ``$PALSY_CACHE``, else the platform's cache folder for palsy (platformdirs:
    ``$XDG_CACHE_HOME/palsy`` or ``~/.cache/palsy`` on Linux, ``~/Library/Caches/palsy`` on macOS,
    ``%LOCALAPPDATA%\\palsy\\Cache`` on Windows).

    On Linux the XDG rule platformdirs applies is applied here (a test checks they agree): importing
    platformdirs takes 50-70 ms, 4-5% of a warm query, which otherwise imports only numpy, pyyaml and the
    standard library."""
    given = os.environ.get("PALSY_CACHE")
    if given:
        return Path(given)
    xdg, home = os.environ.get("XDG_CACHE_HOME", ""), os.environ.get("HOME", "")
    if sys.platform.startswith("linux") and (os.path.isabs(xdg) or os.path.isabs(home)):
        return Path(xdg if os.path.isabs(xdg) else os.path.join(home, ".cache"), "palsy")
    import platformdirs

    return Path(platformdirs.user_cache_dir("palsy", appauthor=False))


def check_root() -> Path:
    """The cache folder, created if needed and proven writable (a probe file is written and removed).

    Called before a fit, so a bad ``$PALSY_CACHE`` is reported before minutes of sampling. A full or
    failing disk is not bad input: it is warned about, and the fit goes on without being cached.

    Raises
    ------
    CacheError
        Naming ``PALSY_CACHE``, its value and the problem (a file in the way, no permission, a
        read-only file system).
    """
    path = root()
    name = f"PALSY_CACHE={path}" if os.environ.get("PALSY_CACHE") else f"the cache folder {path}"
    allowed = "set PALSY_CACHE to a folder palsy can create and write (default: the platform's cache folder)"
    if path.exists() and not path.is_dir():
        raise CacheError(f"{name}: is a file, not a folder; {allowed}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe.", suffix=".tmp")
        try:
            os.write(fd, b"palsy")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        if exc.errno in DISK_ERRORS:
            warnings.warn(f"palsy: {name}: cannot be written ({exc.strerror or exc}); the fit will not be cached",
                          stacklevel=2)
            return path
        raise CacheError(f"{name}: cannot be written ({exc.strerror or exc}); {allowed}") from None
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(path).free
        if free < MIN_FREE_BYTES:
            warnings.warn(f"palsy: {name}: only {free / 2**20:.0f} MB free; the fit may not be cached", stacklevel=2)
    return path


#: The modules of ``palsy.model`` (relative to its folder; a name ending in ``/`` is a whole subfolder) that
#: the fit never imports, so that no change to them can change the draws: the answer's side, the checks,
#: teaching, the registry's log and summaries, the published JSON Schemas. tests/test_cache_sources.py
#: proves it: none of them is in the import closure of ``fit.py`` (its imports inside functions included).
NOT_FIT = ("answer.py", "api.py", "atypicality.py", "brief.py", "contributions.py", "criticism/", "decision.py",
           "exact.py", "fhir_example.py", "file_models/published.py", "game.py", "guidance.py", "lookahead.py", "psis.py",
           "registry_feedback.py", "registry_simulate.py", "registry_summary.py", "summaries.py", "teach.py",
           "validated.py")


def _model_sources() -> tuple[str, ...]:
    """Every ``.py`` under palsy's ``model`` folder, its subfolders included, except :data:`NOT_FIT`, sorted."""
    here = Path(__file__).parent
    found = []
    for dirpath, dirnames, filenames in os.walk(here):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = Path(dirpath).relative_to(here).as_posix()
        found += [name if rel == "." else f"{rel}/{name}" for name in filenames if name.endswith(".py")]
    return tuple(sorted(n for n in found
                        if n not in NOT_FIT and not any(x.endswith("/") and n.startswith(x) for x in NOT_FIT)))


#: The sources a change to which invalidates cached fits: every module of ``model/`` (new ones included)
#: except those the fit is proven never to import (:data:`NOT_FIT`). Among them: the model's structure,
#: design, likelihood and its CSF part (``lp.py``), the prior, the sampler, the evidence and registry
#: readers (``registry_counts.py`` too), the draws file and the provenance (``rests_on.py``).
MODEL_SOURCES = _model_sources()

#: The libraries whose versions can change the draws (the sampler, the compiler, the numerics).
LIBRARIES = ("pymc", "pytensor", "blackjax", "jax", "jaxlib", "nutpie", "numba", "numpy", "scipy")


def _normal(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


@functools.cache
def library_versions() -> dict[str, str]:
    """The installed version of each of :data:`LIBRARIES` (``absent`` if not installed).

    Read from the ``name-version.dist-info`` folder names on ``sys.path``, first match winning as for
    imports (a scan of a few folders, about a millisecond); ``importlib.metadata`` only for a library
    the scan does not find."""
    wanted = {_normal(n): n for n in LIBRARIES}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for fname in names:
            stem, dot, kind = fname.rpartition(".")
            if not dot or kind not in ("dist-info", "egg-info"):
                continue
            dist, _, version = stem.partition("-")
            lib = wanted.get(_normal(dist))
            if lib and lib not in found and version:
                found[lib] = version.split("-")[0]
    for lib in LIBRARIES:
        if lib not in found:
            from importlib import metadata

            try:
                found[lib] = metadata.version(lib)
            except metadata.PackageNotFoundError:
                found[lib] = "absent"
    return {lib: found[lib] for lib in LIBRARIES}


def environment() -> dict[str, object]:
    """What, besides palsy's own code, changes the draws: library versions, Python, machine type."""
    return {"libraries": library_versions(), "python": platform.python_version(), "machine": platform.machine()}


def code_hash(folder: Path | None = None) -> str:
    """SHA-256 of the model-defining sources, :data:`MODEL_SOURCES` (part of the cache key, with the
    version): each one's name, length and bytes, so that code moved between modules changes it too.
    ``folder``: where to read them (default: palsy's ``model`` folder)."""
    folder = folder or Path(__file__).parent
    h = hashlib.sha256()
    for name in MODEL_SOURCES:
        data = (folder / name).read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def key(evidence_hash: str, variant: str, settings: Settings, registry: str | None = None) -> str:
    """The cache key of a fit (``registry``: the content hash of a hospital registry it uses, if any:
    :func:`palsy.model.registry.key`)."""
    payload = {"evidence": evidence_hash, "variant": variant, "version": __version__, "code": code_hash(),
               "environment": environment(), **dataclasses.asdict(settings)}
    if registry is not None:
        payload["registry"] = registry
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def folder(evidence_hash: str, variant: str, settings: Settings, registry: str | None = None) -> Path:
    """Where that fit's ``posterior.nc`` and ``draws.npz`` live."""
    return root() / f"{variant}-{key(evidence_hash, variant, settings, registry)}"


@contextlib.contextmanager
def fitting(folder: Path):
    """Hold the lock of one cache entry while it is fitted: a second process that wants the same fit
    waits for the first and then reads its draws instead of fitting it again (a test run on two workers,
    two terminals). The lock is filelock's (``flock`` on POSIX, ``msvcrt`` locking on Windows): advisory,
    and released when the process ends, however it ends. A lock file that cannot be made (a full disk)
    does not stop the fit: it runs unlocked, with a warning.
    """
    import filelock  # only before a fit (its import takes about 0.1 s)

    path = folder.parent / f".{folder.name}.lock"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path), thread_local=False)
        lock.acquire()
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        warnings.warn(f"palsy: cannot lock {path} ({exc.strerror or exc}); fitting without the lock", stacklevel=3)
        yield
        return
    try:
        yield
    finally:
        lock.release()


#: A JAX compilation-cache entry written this recently may be another process's write in progress.
JAX_BUSY_SECONDS = 60


def _zlib_whole(data: bytes) -> bytes:
    """zlib's decompression, refusing a stream that stops before its end (a truncated file whose last
    block happens to be whole would otherwise pass)."""
    import zlib

    d = zlib.decompressobj()
    out = d.decompress(data)
    if not d.eof or d.unused_data:
        raise ValueError("incomplete or truncated stream")
    return out


def _decompressor():
    """JAX's decompression of its compilation-cache entries (the same choice JAX makes: zstd if
    installed, else zlib)."""
    try:
        from compression import zstd  # Python 3.14

        return zstd.decompress
    except ImportError:
        pass
    try:
        import zstandard

        return zstandard.ZstdDecompressor().decompress
    except ImportError:
        return _zlib_whole


def clean_jax_cache(folder: Path | None = None) -> list[Path]:
    """Remove the entries of JAX's compilation cache (``$PALSY_CACHE/jax``) that cannot be read back
    (truncated by a killed process, altered on disk), with their access-time files. JAX would warn about
    such an entry and recompile at every fit, but keep it; an entry written in the last
    :data:`JAX_BUSY_SECONDS` is left alone (another process may be writing it). Returns what was removed."""
    folder = folder or root() / "jax"
    removed: list[Path] = []
    try:
        entries = [p for p in folder.iterdir() if p.name.endswith("-cache")]
    except OSError:
        return removed
    decompress = _decompressor()
    now = time.time()
    for entry in entries:
        try:
            if now - entry.stat().st_mtime < JAX_BUSY_SECONDS:
                continue
            ok = len(decompress(entry.read_bytes())) > 4  # 4 bytes of compile time, then the executable
        except OSError:
            continue
        except Exception:  # noqa: BLE001  # any decompression error: the entry cannot be read back
            ok = False
        if not ok:
            for path in (entry, entry.with_name(entry.name[: -len("-cache")] + "-atime")):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed

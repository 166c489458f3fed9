"""The content-addressed posterior cache under ``$PALSY_CACHE`` (default ``~/.cache/palsy``).

The key hashes everything that changes the draws: the evidence files, the variant, the sampler
settings, the package version, the model-defining sources, and the versions of the libraries that
compute the draws (PyMC, PyTensor, BlackJAX, JAX, nutpie, numba, NumPy, SciPy), the Python version and the machine
type. The library versions are read from the installed distributions' metadata folders: a warm
query never imports PyMC (nor ``importlib.metadata``, whose import alone costs about 0.2 s).
Standard library only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from palsy.model import __version__

DEFAULT_SEED = 20261122


#: The NUTS samplers a fit may use (:mod:`palsy.model.nuts`); the first is the default.
SAMPLERS = ("blackjax", "nutpie")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sampler settings that are part of the cache key."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = DEFAULT_SEED
    synthesis: bool = True  # random effects, case selection and orderings (False: the plain configuration)
    sampler: str = SAMPLERS[0]  # model.nuts runs them

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler {self.sampler!r} is not allowed; allowed: {', '.join(SAMPLERS)}")


class CacheError(ValueError):
    """``$PALSY_CACHE`` cannot hold a fit (a file, an unwritable folder): bad input, exit status 2."""


def root() -> Path:
    """The cache folder."""
    return Path(os.environ.get("PALSY_CACHE") or Path.home() / ".cache" / "palsy")


def check_root() -> Path:
    """The cache folder, created if needed and proven writable (a probe file is written and removed).

    Called before a fit, so a bad ``$PALSY_CACHE`` is reported before minutes of sampling.

    Raises
    ------
    CacheError
        Naming ``PALSY_CACHE``, its value and the problem.
    """
    path = root()
    name = f"PALSY_CACHE={path}" if os.environ.get("PALSY_CACHE") else f"the cache folder {path}"
    allowed = "set PALSY_CACHE to a folder palsy can create and write (default ~/.cache/palsy)"
    if path.exists() and not path.is_dir():
        raise CacheError(f"{name}: is a file, not a folder; {allowed}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CacheError(f"{name}: cannot be written ({exc.strerror or exc}); {allowed}") from None
    return path


#: The sources that define the model and its draws: a change to any of them invalidates cached fits.
MODEL_SOURCES = ("structure.py", "design.py", "likelihood.py", "prior.py", "build.py", "fit.py", "variants.py",
                 "rates.py", "evidence.py", "findings.py", "safe_yaml.py", "draws.py", "nuts.py")

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


def code_hash() -> str:
    """SHA-256 of the model-defining sources (part of the cache key, with the version)."""
    h = hashlib.sha256()
    for name in MODEL_SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def key(evidence_hash: str, variant: str, settings: Settings) -> str:
    """The cache key of a fit."""
    payload = {"evidence": evidence_hash, "variant": variant, "version": __version__, "code": code_hash(),
               "environment": environment(), **dataclasses.asdict(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def folder(evidence_hash: str, variant: str, settings: Settings) -> Path:
    """Where that fit's ``posterior.nc`` and ``draws.npz`` live."""
    return root() / f"{variant}-{key(evidence_hash, variant, settings)}"


@contextlib.contextmanager
def fitting(folder: Path):
    """Hold the lock of one cache entry while it is fitted: a second process that wants the same fit
    waits for the first and then reads its draws instead of fitting it again (a test run on two workers,
    two terminals). The lock is advisory (``flock``) and released when the process ends, however it ends.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)

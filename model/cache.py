"""The content-addressed posterior cache under ``$PALSY_CACHE`` (default ``~/.cache/palsy``).

The key hashes the evidence files, the variant, the sampler settings and the package version.
Standard library and numpy only: a warm query never imports PyMC.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from model import __version__

DEFAULT_SEED = 20261122


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sampler settings that are part of the cache key."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = DEFAULT_SEED
    synthesis: bool = True  # random effects, case selection and orderings (False: the plain configuration)


def root() -> Path:
    """The cache folder."""
    return Path(os.environ.get("PALSY_CACHE") or Path.home() / ".cache" / "palsy")


#: The sources that define the model: a change to any of them invalidates cached fits.
MODEL_SOURCES = ("structure.py", "design.py", "likelihood.py", "prior.py", "build.py", "fit.py", "variants.py")


def code_hash() -> str:
    """SHA-256 of the model-defining sources (part of the cache key, with the version)."""
    h = hashlib.sha256()
    for name in MODEL_SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def key(evidence_hash: str, variant: str, settings: Settings) -> str:
    """The cache key of a fit."""
    payload = {"evidence": evidence_hash, "variant": variant, "version": __version__, "code": code_hash(),
               **dataclasses.asdict(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def folder(evidence_hash: str, variant: str, settings: Settings) -> Path:
    """Where that fit's ``posterior.nc`` and ``draws.npz`` live."""
    return root() / f"{variant}-{key(evidence_hash, variant, settings)}"

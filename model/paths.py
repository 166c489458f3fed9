"""Where palsy's own files are, in a checkout and in an installed package alike.

The evidence (``priors/``) and the source patients (``patients/``) are package data of
:mod:`palsy.priors` and :mod:`palsy.patients`; their folders are found through those packages, so the
same code reads the repository's folders in a checkout and the installed copies in a wheel. Files that
only a checkout has (the vignettes of the tests, the SBC results of ``docs/``) are reached through
:func:`checkout`, which is None in an installed package.
"""

from __future__ import annotations

from pathlib import Path


def priors() -> Path:
    """The evidence folder shipped with palsy."""
    import palsy.priors

    return Path(palsy.priors.__file__).parent


def patients() -> Path:
    """The source patients (the three documents palsy grew from) shipped with palsy."""
    import palsy.patients

    return Path(palsy.patients.__file__).parent


def checkout() -> Path | None:
    """The repository's root when palsy runs from a checkout, else None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "tests").is_dir() else None

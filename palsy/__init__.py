"""palsy: leukaemic infiltration of the facial nerve against the causes that mimic it.

The installed package holds the repository's layers as subpackages: :mod:`palsy.model` (computation),
:mod:`palsy.reports` (presentation), :mod:`palsy.scripts` (entry points) and :mod:`palsy.priors` (the
evidence, as package data). This module stays light: importing it loads nothing else until
:func:`answer` is called.

    >>> import palsy
    >>> a = palsy.answer({"lineage": "T-ALL", "laterality": "bilateral"})
    >>> a.probability["mean"], a.to_dict()["causes"], a.to_datatree()
"""

from __future__ import annotations

from typing import Any

__version__ = "0.3.0"
__all__ = ["__version__", "answer"]


def answer(patient: Any, **options: Any) -> Any:
    """One patient's differential, as ``palsy posterior`` gives it: :func:`palsy.model.api.answer`."""
    from palsy.model import api

    return api.answer(patient, **options)

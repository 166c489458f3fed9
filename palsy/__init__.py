"""palsy: leukaemic infiltration of the facial nerve against the causes that mimic it.

The installed package holds the repository's layers as subpackages: :mod:`palsy.model` (computation),
:mod:`palsy.reports` (presentation), :mod:`palsy.scripts` (entry points) and :mod:`palsy.priors` (the
evidence, as package data). This module stays light: importing it loads nothing else.
"""

__version__ = "0.3.0"

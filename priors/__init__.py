"""The evidence (docs/design.md §3) as package data: ``importlib.resources.files("palsy.priors")`` is this folder."""

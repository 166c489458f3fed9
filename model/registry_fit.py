"""What a fit needs of a registry (docs/registry.md): its cells from rows or exported counts, its hash, and
after the fit how far it moved the base rate and each cause's share (prior against posterior).

``from_settings(evidence)`` reads the registry ``priors/registry.yaml`` names (None without one);
``from_files(evidence, rows=..., counts=...)`` the files given on the command line. Both give a
:class:`RegistryInput`, which :func:`palsy.model.fit.posterior` takes (its hash is part of the cache key).
Numpy only (the rate model's prior draws use SciPy for its truncated factors).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import rates as R
from palsy.model import registry as RG
from palsy.model import registry_likelihood as RL
from palsy.model import structure as ST

#: The site parameters a fit with a registry adds (the rate block's are :func:`palsy.model.rates.rate_parameters`).
SITE_PARAMETERS = ("registry_site_sd", "registry_site_z")
CI = 0.9


@dataclasses.dataclass(frozen=True)
class RegistryInput:
    """A registry as a fit takes it: cells, censored strata, sites, the site effect's prior scale, the hash
    of everything that defines it, and what it holds (``counts``: rows by kind; ``other``: the texts of the
    rows whose cause the model does not have)."""

    cells: tuple[RL.Cell, ...]
    censored: tuple[RL.Censored, ...]
    sites: tuple[str, ...]
    site_sigma: float
    hash: str
    sources: tuple[str, ...]
    counts: dict[str, int]
    other: dict[str, int]
    counts_from_rows: bool = True  # False for a site's exported counts

    def design(self, st: ST.Structure, causes: tuple[str, ...]) -> RL.RegistryDesign:
        """The padded arrays of the likelihood (:func:`palsy.model.registry_likelihood.build`)."""
        return RL.build(list(self.cells), list(self.censored), st, causes, self.site_sigma, self.hash, self.sites)


def parameters(context: tuple[str, ...]) -> tuple[str, ...]:
    """Every parameter NUTS samples with a registry besides :data:`palsy.model.prior.SAMPLED`."""
    return (*R.rate_parameters(context), *SITE_PARAMETERS)


def row_counts(registry: RG.Registry) -> tuple[dict[str, int], dict[str, int]]:
    """How many rows of each kind (``rows``, ``fitted``, ``modelled``, ``undetermined``, ``other``,
    ``out_of_scope``) and the ``other`` rows' causes in words."""
    rows = registry.rows
    inside = [r for r in rows if r.in_scope]
    counts = {"rows": len(rows), "fitted": sum(r.cause != RG.OTHER for r in inside),
              "modelled": sum(r.modelled for r in inside),
              "undetermined": sum(r.cause == RG.UNDETERMINED for r in inside),
              "other": sum(r.cause == RG.OTHER for r in inside), "out_of_scope": len(rows) - len(inside)}
    other = dict(Counter(r.other_text for r in inside if r.cause == RG.OTHER).most_common())
    return counts, other


def from_registry(registry: RG.Registry, site_sigma: float, extra_hash: str = "") -> RegistryInput:
    """The fit's input for registry rows."""
    counts, other = row_counts(registry)
    cells = RL.aggregate(RL.row_cells(registry.rows, registry.causes))
    digest = hashlib.sha256(f"{registry.hash}|{site_sigma!r}|{extra_hash}".encode()).hexdigest()
    return RegistryInput(tuple(cells), (), registry.sites, site_sigma, digest, registry.sources, counts, other)


def merge(parts: list[RegistryInput]) -> RegistryInput:
    """Several inputs (rows and sites' counts) as one. A site's rows may be in several rows files (a file per
    year, say); a site given as counts may come from that one counts file only. Site codes are compared
    without regard to case (``A`` and ``a`` are one site).

    Raises
    ------
    findings.InputError
        When a site is in a counts file and in another input (its patients would be counted twice).
    """
    if len(parts) == 1:
        return parts[0]
    seen: dict[str, tuple[str, bool, str]] = {}  # site (lower case) -> its code, whether from counts, the sources
    problems = []
    for part in parts:
        is_counts = not part.counts_from_rows
        for s in part.sites:
            key = s.lower()
            if key in seen:
                code, counts_before, where = seen[key]
                if counts_before or is_counts:
                    same = f"site {s!r}" if code == s else f"site {code!r} (and {s!r}: codes are compared without regard to case)"
                    problems.append(f"{same} is in {where} and in {', '.join(part.sources)}: its patients would be "
                                    "counted twice; give a site's counts once, and never as rows and as counts")
                continue
            seen[key] = (s, is_counts, ", ".join(part.sources))
    if problems:
        raise F.InputError(problems, "registry")
    h = hashlib.sha256("|".join(p.hash for p in parts).encode()).hexdigest()
    # rows files of one site: its code as first given, so that "A" and "a" share one site effect
    canon = {s.lower(): s for p in reversed(parts) for s in p.sites}
    parts = [dataclasses.replace(p, cells=tuple(dataclasses.replace(c, site=canon[c.site.lower()]) for c in p.cells),
                                 censored=tuple(dataclasses.replace(c, site=canon[c.site.lower()]) for c in p.censored),
                                 sites=tuple(canon[s.lower()] for s in p.sites)) for p in parts]
    counts: Counter = Counter()
    other: Counter = Counter()
    for part in parts:
        counts.update(part.counts)
        other.update(part.other)
    return RegistryInput(tuple(c for p in parts for c in p.cells), tuple(h_ for p in parts for h_ in p.censored),
                         tuple(dict.fromkeys(s for p in parts for s in p.sites)), parts[0].site_sigma, h,
                         tuple(s for p in parts for s in p.sources), dict(counts), dict(other.most_common()))


def from_files(evidence, rows: list[str | Path] = (), counts: list[str | Path] = (),
               settings: RG.Settings | None = None) -> RegistryInput | None:
    """The fit's input for registry files (rows: CSV/YAML; counts: JSON from ``export-counts``), None when none
    is given. The site effect's prior scale comes from the evidence's ``registry.yaml``.

    Raises
    ------
    findings.InputError
        Naming the file, the row and the field of every problem.
    """
    s = settings or RG.settings(evidence.directory)
    parts = []
    for path in rows:
        parts.append(from_registry(RG.read(path, evidence.schema, evidence.causes), s.site_sigma))
    for path in counts:
        from palsy.model import registry_counts as RC

        parts.append(RC.read(path, evidence.schema, evidence.causes, s.site_sigma))
    return merge(parts) if parts else None


def from_settings(evidence) -> RegistryInput | None:
    """The registry the evidence folder's ``registry.yaml`` names (None when it names none)."""
    s = RG.settings(evidence.directory)
    if not s.used:
        return None
    reg = from_files(evidence, list(s.rows), list(s.counts), settings=s)
    # the key the answer's path computes from the files' bytes alone (registry.key), so that a query finds
    # the registry's fit without parsing the registry
    return dataclasses.replace(reg, hash=RG.content_hash(s))


# --- after the fit: what the registry moved ----------------------------------------------------------

def cause_shares(params: dict[str, np.ndarray], r: R.RateArrays) -> np.ndarray:
    """P(cause) before any finding, per draw (draw, cause): the base rate is infiltration's."""
    log_prior, _ = LK.cause_strata(LK.NUMPY, params, r)
    return np.exp(log_prior)


def _summary(x: np.ndarray) -> dict[str, float]:
    lo, hi = np.quantile(x, [(1 - CI) / 2, (1 + CI) / 2])
    return {"mean": float(x.mean()), "lower": float(lo), "upper": float(hi)}


def report(reg: RegistryInput, params: dict[str, np.ndarray], r: R.RateArrays, causes: tuple[str, ...],
           seed: int) -> dict[str, Any]:
    """What the fit's metadata says about the registry: that one was used, its hash, its rows (numbers),
    and each cause's share before any finding, prior against posterior (the base rate is infiltration's),
    with how far the mean moved and how much the 90% interval narrowed.

    The metadata is copied into every answer's JSON (``model.registry``) and the service's brief, so it
    holds the sites' short codes and numbers only: no file names and never the ``other`` rows' texts, which
    are free text a clinician typed (``palsy registry summary`` shows them from the rows). A feedback-log
    line keeps less (:func:`palsy.model.registry.for_answer`).

    The prior is the rate model's own (exact draws, :func:`palsy.model.rates.sample_prior`); the share the
    modelled causes miss is the ``other`` rows' share among the rows in the population, with a Beta(1, 1)
    prior (mean and 90% interval).
    """
    n = len(next(iter(params.values())))
    prior = R.sample_prior(r, max(n, 4000), np.random.default_rng([seed, 23]))
    pr, po = cause_shares(prior, r), cause_shares(params, r)
    shares = {}
    for j, c in enumerate(causes):
        a, b = _summary(pr[:, j]), _summary(po[:, j])
        shares[c] = {"prior": a, "posterior": b, "moved": b["mean"] - a["mean"],
                     "width_ratio": (b["upper"] - b["lower"]) / max(a["upper"] - a["lower"], 1e-300)}
    k, m = reg.counts.get("other", 0), reg.counts.get("fitted", 0)
    rng = np.random.default_rng([seed, 24])
    other = _summary(rng.beta(1 + k, 1 + m, 20_000))
    out = {"used": True, "hash": reg.hash, "sites": list(reg.sites),
           "rows": dict(reg.counts), "censored_strata": len(reg.censored),
           "base_rate": shares.get("infiltration"), "cause_shares": shares,
           "other": {"rows": k, "share": other,
                     "what": "share of the registry's palsies in the population whose final cause the model does not "
                             "have (Beta(1, 1) prior; mean and 90% interval)"}}
    if "registry_site_sd" in params:
        out["site_sd"] = _summary(params["registry_site_sd"])
    return out

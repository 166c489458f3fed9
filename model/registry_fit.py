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
    """Several inputs (rows and sites' counts) as one; a site may come from one input only.

    Raises
    ------
    findings.InputError
        When two inputs hold the same site (its patients would be counted twice).
    """
    if len(parts) == 1:
        return parts[0]
    seen: dict[str, str] = {}
    problems = []
    for part in parts:
        for s in part.sites:
            if s in seen:
                problems.append(f"site {s!r} is in {seen[s]} and in {', '.join(part.sources)}: its patients would be "
                                "counted twice; give each site once (as rows or as counts)")
            seen[s] = ", ".join(part.sources)
    if problems:
        raise F.InputError(problems, "registry")
    h = hashlib.sha256("|".join(p.hash for p in parts).encode()).hexdigest()
    counts: Counter = Counter()
    other: Counter = Counter()
    for part in parts:
        counts.update(part.counts)
        other.update(part.other)
    return RegistryInput(tuple(c for p in parts for c in p.cells), tuple(h_ for p in parts for h_ in p.censored),
                         tuple(s for p in parts for s in p.sites), parts[0].site_sigma, h,
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
    """What the fit's metadata (and the answer's JSON, ``palsy check``) say about the registry: that one was
    used, its rows, and each cause's share before any finding, prior against posterior (the base rate is
    infiltration's), with how far the mean moved and how much the 90% interval narrowed.

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
    out = {"used": True, "hash": reg.hash, "sources": [Path(s).name for s in reg.sources], "sites": list(reg.sites),
           "rows": dict(reg.counts), "censored_strata": len(reg.censored),
           "base_rate": shares.get("infiltration"), "cause_shares": shares,
           "other": {"rows": k, "share": other, "causes": dict(reg.other),
                     "what": "share of the registry's palsies in the population whose final cause the model does not "
                             "have (Beta(1, 1) prior; mean and 90% interval)"}}
    if "registry_site_sd" in params:
        out["site_sd"] = _summary(params["registry_site_sd"])
    return out

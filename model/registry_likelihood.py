"""The registry's likelihood (docs/registry.md): the answer's own likelihood of a patient's findings, for
registry rows and for the counts sites export, written once for numpy and PyTensor (``ops``).

A *cell* is a group of registry patients from one site with the same context findings (as recorded:
unknown ones marginalised), the same other findings and the same final-cause information. Its
log-likelihood per patient is

    log sum_{c in num} P(c, x, ctx | site)  -  log sum_{c in den} P(c, ctx | site)

where P(c, x, ctx | site) = P(c) exp(u_site,c) P(x, ctx | c) is computed exactly as the answer computes
it (:class:`palsy.model.game.Game`: the context through the rate model's strata, each tree finding's
level, each LP through the CSF model summed over whether blasts circulate, the CSF profile jointly with
the first LP), and u_site,c is the site's effect on the cause's log rate (sites differ in case mix). So

- a row with a modelled final cause y (num {y}, den all) contributes log P(y, x | ctx, site): the cause
  share given the context findings and the finding frequencies given the cause, with no selection term
  (registry patients are every adjudicated palsy, not published ones);
- an ``undetermined`` row (num all, den all) contributes log P(x | ctx, site): the mixture over causes;
- the counts a site exports split the same sum (:mod:`palsy.model.registry_counts`): a cause-table cell
  (num {y}, den all, no findings) log P(y | ctx, site) and a findings cell (num {y}, den {y})
  log P(x | y, ctx); with nothing suppressed the two give the same log density as the rows;
- a stratum whose cause counts were suppressed below the threshold enters as *censored* counts: the
  multinomial probability of its counts summed over every completion of the suppressed cells that is
  consistent with the stratum's total.

The cells' arrays are padded to powers of two (rows that add nothing), so that a registry of another size
in the same class reuses the compiled sampler (:mod:`palsy.model.nuts`). Numpy only at import.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

import numpy as np

from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import structure as ST

#: Added inside logarithms of sums that can be exactly 0 (a context that excludes circulating blasts), so that
#: PyTensor's gradients stay finite; exp(log(TINY)) is below any probability the model computes.
TINY = 1e-300
#: The trauma states of an LP, in the order of the kappa values of :func:`_lp_terms`.
TRAUMA = ("no", "yes", None)
PREFIX = "registry_"


@dataclasses.dataclass(frozen=True)
class Cell:
    """Patients of one site with the same findings and final-cause information (see the module's docstring)."""

    site: str
    patient: F.Patient  # context and other findings (id and description unused)
    num: tuple[str, ...]
    den: tuple[str, ...]
    count: int

    def key(self) -> str:
        d = self.patient.to_dict()
        d.pop("id", None)
        d.pop("description", None)
        return json.dumps([self.site, d, self.num, self.den], sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Censored:
    """A stratum (site, context) whose cause counts are censored: every completion of its counts."""

    site: str
    patient: F.Patient  # the context findings only
    completions: np.ndarray  # (completion, cause) counts
    log_coef: np.ndarray  # (completion,) log multinomial coefficient


def aggregate(cells: Iterable[Cell]) -> list[Cell]:
    """Identical cells merged (their counts added), in order of first appearance."""
    out: dict[str, Cell] = {}
    for c in cells:
        k = c.key()
        out[k] = dataclasses.replace(out[k], count=out[k].count + c.count) if k in out else c
    return list(out.values())


@dataclasses.dataclass(frozen=True)
class RegistryDesign:
    """The arrays of the registry's likelihood (padded), its sites and what it holds.

    ``arrays`` (names without :data:`PREFIX`): ``ctx`` (cell, stratum) 0/1; ``obs`` (observation, level)
    and ``obs_cell`` (cell, observation) counts, the tree findings' level groups (the CSF profile after
    a known first LP among them); ``lp_mask`` (LP type, 4) patterns, ``lp_trauma`` (LP type, 3) one-hot
    over no, yes, unknown, ``lp_cell`` (cell, LP type) counts; ``prof_cell`` (cell, profile level) 0/1,
    the profile without a known LP; ``num``, ``den`` (cell, cause) 0/1; ``site`` (cell, site) 0/1;
    ``count`` (cell,); ``cens_ctx`` (stratum, stratum of the grid), ``cens_site``, ``cens_counts``
    (stratum, completion, cause), ``cens_logcoef`` (stratum, completion); ``site_sigma`` ().
    """

    sites: tuple[str, ...]
    causes: tuple[str, ...]
    arrays: dict[str, np.ndarray]
    n_cells: int
    n_censored: int
    n_patients: int  # patients the cells count (a censored stratum's total included)
    hash: str

    def layout(self) -> dict[str, np.ndarray]:
        """The arrays by their ``pm.Data`` names (:data:`PREFIX` + name)."""
        return {PREFIX + k: v for k, v in self.arrays.items()}

    @property
    def signature(self) -> tuple:
        """What the compiled sampler depends on: the padded shapes."""
        return tuple((k, v.shape) for k, v in sorted(self.arrays.items()))


def pad_size(n: int) -> int:
    """The next power of two at or above ``n`` (at least 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def cell_observations(patient: F.Patient, st: ST.Structure) -> tuple[list[np.ndarray], list[tuple[tuple, str | None]], str | None]:
    """A patient's tree observations (level masks), LPs ((pattern mask, trauma)) and the CSF profile's level
    when no LP is known (read through the first LP's class otherwise, as a tree observation)."""
    sc = patient.schema
    obs = []
    for name in st.tree_findings:
        v = patient.level(name)
        if v is not None:
            obs.append(st.group_mask(name, st.expand(name, v)))
    lps = [(tuple(LP.obs_mask(dict(lp.results), st.methods)), lp.traumatic) for lp in patient.csf]
    marginal = None
    prof = patient.level(sc.profile)
    if prof is not None:
        if patient.csf:
            cls = "positive" if patient.csf[0].positive else "negative"
            obs.append(st.group_mask(st.profile_item(cls), (prof,)))
        else:
            marginal = prof
    return obs, lps, marginal


def build(cells: list[Cell], censored: list[Censored], st: ST.Structure, causes: tuple[str, ...],
          site_sigma: float, digest: str, sites: tuple[str, ...] | None = None) -> RegistryDesign:
    """The padded arrays of ``cells`` and ``censored`` strata (:class:`RegistryDesign`)."""
    cells = aggregate(cells)
    sites = tuple(sites) if sites is not None else tuple(dict.fromkeys([c.site for c in cells] + [h.site for h in censored]))
    G, H, S, C = pad_size(len(cells)), pad_size(len(censored)), pad_size(len(sites)), len(causes)
    prof_levels = st.items[st.profile_item("negative")]
    obs_keys: dict[tuple, int] = {}
    lp_keys: dict[tuple, int] = {}
    per_cell = []
    for c in cells:
        obs, lps, marginal = cell_observations(c.patient, st)
        o_idx = [obs_keys.setdefault(tuple(m), len(obs_keys)) for m in obs]
        l_idx = [lp_keys.setdefault(k, len(lp_keys)) for k in lps]
        per_cell.append((o_idx, l_idx, marginal))
    n_obs, T = pad_size(len(obs_keys)), pad_size(len(lp_keys))
    a = {
        "ctx": np.ones((G, st.n_strata)), "obs": np.ones((n_obs, st.n_levels)), "obs_cell": np.zeros((G, n_obs)),
        "lp_mask": np.ones((T, LP.N_PATTERNS)), "lp_trauma": np.tile([0.0, 0.0, 1.0], (T, 1)),
        "lp_cell": np.zeros((G, T)), "prof_cell": np.zeros((G, len(prof_levels))),
        "num": np.ones((G, C)), "den": np.ones((G, C)), "site": np.zeros((G, S)), "count": np.zeros(G),
        "cens_ctx": np.ones((H, st.n_strata)), "cens_site": np.zeros((H, S)),
        "site_sigma": np.asarray(float(site_sigma)),
    }
    a["site"][:, 0] = 1.0
    a["cens_site"][:, 0] = 1.0
    for m, j in obs_keys.items():
        a["obs"][j] = m
    for (mask, trauma), j in lp_keys.items():
        a["lp_mask"][j] = mask
        a["lp_trauma"][j] = np.eye(3)[TRAUMA.index(trauma)]
    for g, (c, (o_idx, l_idx, marginal)) in enumerate(zip(cells, per_cell, strict=True)):
        a["ctx"][g] = st.stratum_mask({n: c.patient.level(n) for n in st.context})
        for j in o_idx:
            a["obs_cell"][g, j] += 1
        for j in l_idx:
            a["lp_cell"][g, j] += 1
        if marginal is not None:
            a["prof_cell"][g, prof_levels.index(marginal)] = 1.0
        a["num"][g] = [float(x in c.num) for x in causes]
        a["den"][g] = [float(x in c.den) for x in causes]
        a["site"][g] = np.eye(S)[sites.index(c.site)]
        a["count"][g] = c.count
    M = max([len(h.completions) for h in censored] or [1])
    a["cens_counts"] = np.zeros((H, M, C))
    a["cens_logcoef"] = np.full((H, M), -1e4)
    a["cens_logcoef"][:, 0] = 0.0  # a padded stratum: one completion of no counts (log-likelihood 0)
    for h, cs in enumerate(censored):
        a["cens_ctx"][h] = st.stratum_mask({n: cs.patient.level(n) for n in st.context})
        a["cens_site"][h] = np.eye(S)[sites.index(cs.site)]
        a["cens_counts"][h, :len(cs.completions)] = cs.completions
        a["cens_logcoef"][h] = -1e4
        a["cens_logcoef"][h, :len(cs.log_coef)] = cs.log_coef
    n = sum(c.count for c in cells if c.den == causes) + sum(int(h.completions[0].sum()) for h in censored)
    return RegistryDesign(sites, causes, a, len(cells), len(censored), n, digest)


# --- the formulas (numpy over draws, or PyTensor) ---------------------------------------------------

def _swap(x):
    return x.swapaxes(-1, -2)


def _mm(a, x):
    """``a @ x`` for a 2-d data array ``a`` and parameters ``x`` (..., N, K); over numpy draws one BLAS call
    (a broadcast matmul loops over the draws)."""
    if isinstance(x, np.ndarray) and x.ndim > 2:
        return np.moveaxis(np.tensordot(a, x, axes=([1], [x.ndim - 2])), 0, -2)
    return a @ x


def _rm(x, b):
    """``x @ b`` for parameters ``x`` (..., K, L) and a 2-d data array ``b``; one BLAS call over numpy draws."""
    if isinstance(x, np.ndarray) and x.ndim > 2:
        return (x.reshape(-1, x.shape[-1]) @ b).reshape(*x.shape[:-1], b.shape[-1])
    return x @ b


def _lp_terms(ops, theta, ix: LP.Index):
    """P(LP patterns | component) (..., 3, K, 4) for kappa 0 (no contamination), contamination (traumatic
    tap, blasts circulating) and contamination x P(traumatic) (trauma unknown, blasts circulating)."""
    c = theta[..., 0, ix.contamination]
    t = theta[..., 0, ix.traumatic]
    kap = ops.stack([c * 0.0, c, c * t], axis=-1)[..., :, None]  # (..., 3, 1)
    return LP.patterns(ops, theta[..., None, :, :], ix, kap)


def site_effects(p, a):
    """u (..., site, cause): each site's effect on each cause's log rate, sigma x z."""
    return p["registry_site_sd"][..., None, None] * p["registry_site_z"]


def log_joint(ops, p, a, r, st: ST.Structure, ix: LP.Index):
    """(J, D): log P(c) + u_site,c + log P(x, ctx | c) and log P(c) + u_site,c + log P(ctx | c), each
    (..., cell, cause)."""
    theta = p["theta"]
    log_prior, log_sk = LK.component_strata(ops, p, r)  # (..., C), (..., K, N)
    _, log_sc = LK.cause_strata(ops, p, r)  # (..., C, N)
    p_sk = _swap(ops.exp(log_sk))  # (..., N, K)
    blasts = _blasts_masks(st)
    ctx = [ops.log(_mm(a["ctx"] * blasts[b], p_sk) + TINY) for b in (0, 1)]  # (..., G, K) each
    lv = LK.level_logp(ops, theta, st)  # (..., K, L)
    tree = _mm(a["obs_cell"], _swap(ops.log(_rm(ops.exp(lv), a["obs"].T))))  # (..., G, K)
    pat = _lp_terms(ops, theta, ix)  # (..., 3, K, 4)
    lp_l = [_rm(pat[..., i, :, :], a["lp_mask"].T) for i in range(3)]  # (..., K, T)
    tr = a["lp_trauma"]
    lp_b = [ops.log(lp_l[0]), ops.log(lp_l[0] * tr[:, 0] + lp_l[1] * tr[:, 1] + lp_l[2] * tr[:, 2])]
    lp = [_mm(a["lp_cell"], _swap(x)) for x in lp_b]  # (..., G, K)
    pos = LP.positive_mask(ix.methods, ix.methods)
    levels = st.items[st.profile_item("negative")]
    after_pos = ops.exp(ops.stack([lv[..., st.level_index[(st.profile_item("positive"), v)]] for v in levels], axis=-1))
    after_neg = ops.exp(ops.stack([lv[..., st.level_index[(st.profile_item("negative"), v)]] for v in levels], axis=-1))
    prof = []
    for i in (0, 2):  # blasts absent (no contamination), present (trauma unknown)
        pp = (pat[..., i, :, :] @ pos)[..., None]  # (..., K, 1)
        prof.append(_mm(a["prof_cell"], _swap(ops.log(pp * after_pos + (1.0 - pp) * after_neg))))  # (..., G, K)
    b_terms = ops.stack([ctx[b] + lp[b] + prof[b] for b in (0, 1)], axis=-1)
    comp = tree + ops.logsumexp(b_terms, axis=-1)  # (..., G, K): log P(x, ctx, k | cause of k)
    cc = r.component_cause  # (K, C)
    m = ops.logsumexp(comp, axis=-1)[..., None]  # a per-cell scale for the sums over components
    by_cause = ops.log(_rm(ops.exp(comp - m), cc) + TINY) + m  # (..., G, C)
    u = _mm(a["site"], site_effects(p, a))  # (..., G, C)
    base = log_prior[..., None, :] + u
    ctx_c = _swap(ops.log(_rm(ops.exp(log_sc), a["ctx"].T) + TINY))  # (..., G, C)
    return base + by_cause, base + ctx_c


def cell_loglik(ops, p, a, r, st: ST.Structure, ix: LP.Index):
    """The log-likelihood of one patient of each cell (..., cell) (see the module's docstring)."""
    j, d = log_joint(ops, p, a, r, st, ix)
    num = ops.logsumexp(j + ops.log(a["num"] + TINY), axis=-1)
    den = ops.logsumexp(d + ops.log(a["den"] + TINY), axis=-1)
    return num - den


def censored_loglik(ops, p, a, r, st: ST.Structure):
    """The log-likelihood of each censored stratum (..., stratum): the multinomial probability of its cause
    counts, summed over every completion of its suppressed cells."""
    log_prior, log_sc = LK.cause_strata(ops, p, r)
    u = _mm(a["cens_site"], site_effects(p, a))  # (..., H, C)
    d = log_prior[..., None, :] + u + _swap(ops.log(_rm(ops.exp(log_sc), a["cens_ctx"].T) + TINY))
    log_p = d - ops.logsumexp(d, axis=-1)[..., None]  # (..., H, C): log P(c | ctx, site)
    terms = a["cens_logcoef"] + (a["cens_counts"] * log_p[..., :, None, :]).sum(axis=-1)  # (..., H, M)
    return ops.logsumexp(terms, axis=-1)


def total(ops, p, a, r, st: ST.Structure, ix: LP.Index):
    """The registry's log-likelihood (...,): every cell's patients and every censored stratum."""
    out = (a["count"] * cell_loglik(ops, p, a, r, st, ix)).sum(axis=-1)
    return out + censored_loglik(ops, p, a, r, st).sum(axis=-1)


def _blasts_masks(st: ST.Structure) -> np.ndarray:
    """(2, stratum) 0/1: the strata where blasts do not / do circulate (the LPs' contamination)."""
    finding, level = st.schema.lp.contamination
    blasts = st.stratum_mask({finding: level})
    return np.stack([1.0 - blasts, blasts])


def row_cells(rows, causes: tuple[str, ...]) -> list[Cell]:
    """The cells of registry rows (those that enter the fit: in scope, cause modelled or undetermined)."""
    out = []
    for row in rows:
        if not row.in_scope or row.cause == "other":
            continue
        num = causes if row.cause == "undetermined" else (row.cause,)
        out.append(Cell(row.site, row.patient, num, causes, 1))
    return out
